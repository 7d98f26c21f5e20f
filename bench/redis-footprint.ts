// `npm run bench:redis`: what Redis holds per study, measured. A private redis-server, the listener and the worker
// (trained bundle in onnx-models/, ONNX Runtime on CPU) run in this process; --n synthetic studies (tools/synth) are
// sent over DICOM and scored; then MEMORY USAGE of each of a study's keys (study hash, instances hash, result,
// vectors), its share of the worklist, and what BullMQ keeps of finished jobs, in bytes per study. These are the keys
// that have no TTL (docs/operations.md, "What grows in Redis"). Options: --n N (default 10), --matrix M (T2/FLAIR
// acquisition matrix; default: each synthetic scanner protocol's own), --seed S. Bounded by BENCH_REDIS_TIMEOUT_S (default 600 s); everything is stopped
// and the temp DATA_DIR removed at the end, also on failure.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { log as dimseLog } from 'dcmjs-dimse';
import { createLogger } from '../shared/logger';
import { startPrivateRedis } from '../shared/private-redis';
import { connectRedis } from '../shared/redis';
import { resultKeys } from '../shared/results';
import { keys } from '../shared/studies';
import { listenerSettings } from '../services/listener/config';
import { startListener } from '../services/listener/listener';
import { startWorker } from '../services/worker/main';
import { createStoreSender } from '../tools/synth/send';
import { generateStudy } from '../tools/synth/study';
import { failCli, parseOptions } from '../shared/cli-args';

const CALLING_AE = 'BENCH_REDIS';
const BUNDLE_DIR = path.resolve(__dirname, '..', '..', 'onnx-models');

async function main(): Promise<void> {
  const values = parseOptions({ n: { type: 'string', default: '10' }, matrix: { type: 'string' }, seed: { type: 'string', default: 'bench-redis' } });
  const n = Number(values.n);
  const matrix = values.matrix === undefined ? undefined : Number(values.matrix);
  if (!(n >= 1) || (matrix !== undefined && !(matrix >= 16))) throw new Error('--n must be >= 1 and --matrix >= 16');
  if (!existsSync(path.join(BUNDLE_DIR, 'manifest.json'))) throw new Error(`no trained model bundle in ${BUNDLE_DIR}: run npm run models:train first`);
  const timeout = setTimeout(() => {
    console.error('bench:redis: over BENCH_REDIS_TIMEOUT_S; stopping');
    process.exit(2);
  }, Number(process.env.BENCH_REDIS_TIMEOUT_S ?? 600) * 1000);
  timeout.unref();
  console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, node ${process.version}`);

  const dataDir = mkdtempSync(path.join(tmpdir(), 'nt-bench-redis-'));
  const redisServer = await startPrivateRedis();
  const redis = connectRedis(redisServer.url, 'worker');
  const log = createLogger('bench-redis', 'silent');
  dimseLog.setLevel('error');
  const settings = listenerSettings({
    REDIS_URL: redisServer.url, DATA_DIR: dataDir, DICOM_PORT: 0, METRICS_PORT: 0, DICOM_ALLOWED_CALLING_AES: CALLING_AE,
    DISK_MIN_FREE_MB: 64, STUDY_QUIET_SECONDS: 1, LOG_LEVEL: 'silent',
  });
  const listener = await startListener({ settings, log });
  const worker = await startWorker({
    env: { PATH: process.env.PATH ?? '', REDIS_URL: redisServer.url, DATA_DIR: dataDir, MODELS_DIR: BUNDLE_DIR, EXECUTION_PROVIDERS: 'cpu', WORKER_METRICS_PORT: '0', LOG_LEVEL: 'silent' },
    log,
  });
  try {
    const studies = Array.from({ length: n }, (_, i) => generateStudy(values.seed!, i, { normalFraction: 0.5, ...(matrix ? { matrix } : {}) }));
    const sender = createStoreSender({ host: '127.0.0.1', port: listener.port, calledAe: settings.DICOM_AE_TITLE }, CALLING_AE);
    for (const s of studies) {
      const r = await sender.sendStudy(s.files);
      if (r.failed > 0) throw new Error(`${r.failed} of ${r.instances} instances not stored`);
    }
    for (const s of studies) {
      while ((await redis.hget(keys.study(s.StudyInstanceUID), 'status')) !== 'scored') await new Promise((r) => setTimeout(r, 200));
    }
    const usage = async (key: string) => Number((await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0);
    const per: Record<string, number[]> = { 'study hash': [], 'instances hash': [], result: [], vectors: [] };
    for (const s of studies) {
      const uid = s.StudyInstanceUID;
      per['study hash'].push(await usage(keys.study(uid)));
      per['instances hash'].push(await usage(keys.studyInstances(uid)));
      per.result.push(await usage(resultKeys.result(uid)));
      per.vectors.push(await usage(resultKeys.vectors(uid)));
    }
    const bull = await redis.keys('bull:studies:*');
    let bullBytes = 0;
    for (const k of bull) bullBytes += await usage(k);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const instances = mean(studies.map((s) => s.files.length));
    console.log(`${n} studies scored, ${instances.toFixed(0)} instances each (matrix ${matrix ?? 'of each synthetic scanner protocol'}); MEMORY USAGE in bytes per study (mean):`);
    let total = 0;
    for (const [name, xs] of Object.entries(per)) {
      total += mean(xs);
      console.log(`  ${name.padEnd(16)} ${mean(xs).toFixed(0).padStart(7)}   (min ${Math.min(...xs)}, max ${Math.max(...xs)})`);
    }
    const worklist = (await usage(resultKeys.worklist())) / n;
    total += worklist;
    console.log(`  ${'worklist share'.padEnd(16)} ${worklist.toFixed(0).padStart(7)}`);
    console.log(`  ${'total'.padEnd(16)} ${total.toFixed(0).padStart(7)}   -> ${((total * 1e5) / 2 ** 30).toFixed(2)} GiB per 100,000 studies`);
    console.log(`BullMQ (bull:studies:*, finished jobs kept by removeOnComplete): ${bull.length} keys, ${(bullBytes / n).toFixed(0)} bytes per study now`);
  } finally {
    await worker.close();
    await listener.close();
    redis.disconnect();
    await redisServer.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (err: unknown) => failCli(err));
