// `npm run bench:api-search`: how long brute-force search and a worklist page take as the archive grows.
// Starts a private redis-server (unix socket, temp dir), writes N scored studies with random unit vectors of the
// given dimension in the shared/results.ts shape, and times GET /api/v1/search and GET /api/v1/worklist through
// app.inject() (no network), and the SCAN behind the page's "Not triaged" list,, with a random-vector embedder standing in for the text encoder (its own time is
// the model's, measured by the models bench). Usage: node dist/bench/api-search.js [N=10000] [DIM=512]
import { cpus } from 'node:os';
import { Registry } from 'prom-client';
import { createLogger } from '../shared/logger';
import { startPrivateRedis } from '../shared/private-redis';
import { connectRedis } from '../shared/redis';
import { resultKeys, worklistScore, type StudyResult } from '../shared/results';
import { keys } from '../shared/studies';
import { build } from '../services/api/app';
import type { Manifest } from '../shared/model-manifest';
import { vocabularyOf } from '../shared/language/vocabulary';
import { API_DEFAULTS } from '../services/api/settings';
import { float32ToLE } from '../shared/float32';
import { backfillUntriagedIndex } from '../services/worker/store';

function unit(dim: number): Float32Array {
  const v = Float32Array.from({ length: dim }, () => Math.random() - 0.5);
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 10_000);
  const dim = Number(process.argv[3] ?? 512);
  const server = await startPrivateRedis({ appendonly: false, stdio: 'ignore' });
  try {
    const redis = connectRedis(server.url, 'producer');
    await new Promise((r) => redis.once('ready', r));
    const model = { bundleId: 'bench', version: '1' };
    const priorities = ['STAT', 'URGENT', 'ROUTINE', 'ROUTINE', 'ROUTINE'] as const;
    for (let start = 0; start < n; start += 500) {
      const tx = redis.pipeline();
      for (let i = start; i < Math.min(n, start + 500); i++) {
        const uid = `1.2.3.${i + 1}`;
        const priority = priorities[i % priorities.length];
        const receivedAt = 1_760_000_000_000 + i * 1000;
        const result: StudyResult = {
          StudyInstanceUID: uid, AccessionNumber: `A${i}`, priority, findings: [], abnormalProbability: 0.5,
          sequencesUsed: ['T2', 'FLAIR', 'DWI', 'ADC'], sequencesMissing: [], series: [], confidence: 1, model, provider: 'cpu', priorityProbability: null,
          judgedWith: { querySetVersion: 'bench', classThresholds: {} },
          timingsMs: { decode: 0, preprocess: 0, inference: 0, scoring: 0, total: 0 }, receivedAt, scoredAt: receivedAt + 1,
        };
        tx.hset(keys.study(uid), { status: 'scored' })
          .set(resultKeys.result(uid), JSON.stringify(result))
          .hset(resultKeys.vectors(uid), { combined: float32ToLE(unit(dim)) })
          .zadd(resultKeys.worklist(), worklistScore(priority, receivedAt), uid);
      }
      await tx.exec();
    }
    const token = 'bench-token-0123456789';
    const app = await build({
      config: { DATA_DIR: server.dir, DISK_MIN_FREE_MB: 0 },
      settings: { ...API_DEFAULTS, API_RATE_LIMIT_MAX: 1_000_000, CALIBRATION_INTERVAL_SECONDS: 0 },
      tokens: [{ token, role: 'reader', name: 'bench' }],
      redis,
      logger: createLogger('bench', 'silent'),
      registry: new Registry(),
      embedText: async (texts) => texts.map(() => unit(dim)),
      // The parts of a bundle search reads: its normal-study sentence and the words the language check knows.
      modelStatus: () => ({
        loaded: true, ...model, combination: 'mean-embedding',
        manifest: { ...model, combination: 'mean-embedding', queries: [], normalQuery: { id: 'normal', text: 'normal brain', priority: 'ROUTINE' } } as unknown as Manifest,
        language: { vocabulary: vocabularyOf(['acute', 'infarct', 'warm', 'up', 'normal', 'brain'], 'known-words'), bank: null, offTopicBelow: null, mentionSimilarity: null, normalText: 'normal brain' },
      }),
      clock: Date.now,
      statusCacheMs: 0, // time the scan itself, not the cache in front of it
    });
    const headers = { authorization: `Bearer ${token}` };
    const time = async (url: string, runs: number) => {
      const ms: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t = process.hrtime.bigint();
        const res = await app.inject({ method: 'GET', url, headers });
        if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
        ms.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      return { p50: pct(ms, 50).toFixed(1), p95: pct(ms, 95).toFixed(1) };
    };
    await time('/api/v1/search?q=warm%20up', 2);
    const search = await time('/api/v1/search?q=acute%20infarct&limit=20', 20);
    const worklist = await time('/api/v1/worklist?limit=50', 50);
    const filtered = await time('/api/v1/worklist?limit=50&priority=URGENT', 50);
    const untriaged = await time('/api/v1/studies?status=failed,unsupported,received,queued,scoring', 20);
    // The page's own list (failed, unsupported) once a worker has built the untriaged index: 1 % of studies failed.
    for (let i = 0; i < n; i += 100) await redis.hset(keys.study(`1.2.3.${i + 1}`), { status: 'failed', lastReceivedAt: 1_760_000_000_000 + i * 1000 });
    const failedScan = await time('/api/v1/studies?status=failed,unsupported', 20);
    await backfillUntriagedIndex(redis);
    const failedIndexed = await time('/api/v1/studies?status=failed,unsupported', 20);
    console.log(JSON.stringify({ studies: n, dim, cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, searchMs: search, worklistPageMs: worklist, worklistUrgentPageMs: filtered, notTriagedScanMs: untriaged, failedScanMs: failedScan, failedIndexedMs: failedIndexed, redisKeys: await redis.dbsize() }, null, 2));
    await app.close();
    redis.disconnect();
  } finally {
    await server.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
