// `npm run bench:malformed -- [--seed 1] [--size bench|test] [--mutated 25] [--good 2] [--models DIR] [--loaders 2]
// [--concurrency 3]`: the malformed-study set (bench/malformed-studies.ts) plus seeded single-instance mutations of
// a good study and a few good studies, all queued at once (as the listener queues them) to the built worker process
// with a private Redis. Prints, per study, how it ended (scored / not triaged with the reason) and the seconds from
// queueing to that; the worker's peak resident memory (its own process, its loader processes, and the sum, sampled
// every 100 ms from /proc); and whether the worker process ever went down. Exit code 1 if a malformed study was
// scored, a study was not decided, or the worker died.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Queue } from 'bullmq';
import { residentMb } from '../services/worker/load-pool';
import { startPrivateRedis } from '../shared/private-redis';
import { connectRedis } from '../shared/redis';
import { resultKeys, type StudyResult } from '../shared/results';
import { keys, SCORE_STUDY_JOB, STUDY_QUEUE, studyStorageKey, type StudyJobData } from '../shared/studies';
import { goodStudy, malformedStudies, mutatedStudies, type MalformedStudy } from './malformed-studies';
import { failCli, parseOptions } from '../shared/cli-args';

const ROOT = path.resolve(__dirname, '..', '..');

/** Resident MB of a process and of its children together (the loader processes), from /proc. */
function rssTree(pid: number): { self: number; children: number } {
  const rss = (p: number) => residentMb(p) ?? 0;
  let children = 0;
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) children += rss(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return { self: rss(pid), children };
}

function store(dataDir: string, s: { StudyInstanceUID: string; files: MalformedStudy['files'] }): void {
  for (const f of s.files) {
    const dir = path.join(dataDir, studyStorageKey(s.StudyInstanceUID), f.SeriesInstanceUID);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `${f.SOPInstanceUID}.dcm`), f.data);
  }
}

async function main(): Promise<void> {
  const values = parseOptions({
    seed: { type: 'string', default: '1' },
    size: { type: 'string', default: 'bench' },
    mutated: { type: 'string', default: '25' },
    good: { type: 'string', default: '2' },
    models: { type: 'string' },
    loaders: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '3' },
  });
  const seed = Number(values.seed);
  const size = values.size === 'test' ? 'test' : 'bench';
  const modelsDir = path.resolve(values.models ?? path.join(ROOT, 'onnx-models'));
  if (!existsSync(path.join(modelsDir, 'manifest.json'))) throw new Error(`no model bundle in ${modelsDir} (--models DIR, or npm run models:train)`);

  console.log(`generating the sets (seed ${seed}, ${size} size)...`);
  const bad = malformedStudies(seed, size);
  const mutated = mutatedStudies(seed, Number(values.mutated), size);
  const good = Array.from({ length: Number(values.good) }, (_, i) => ({ name: `good study ${i + 1}`, ...goodStudy(seed + 100 + i, size) }));
  const all: { name: string; StudyInstanceUID: string; files: MalformedStudy['files']; kind: 'malformed' | 'mutated' | 'good'; expect?: MalformedStudy['expect'] }[] = [
    ...bad.map((s) => ({ ...s, kind: 'malformed' as const })),
    ...mutated.map((s) => ({ ...s, kind: 'mutated' as const })),
    ...good.map((s) => ({ ...s, kind: 'good' as const })),
  ];

  const tmp = mkdtempSync(path.join(tmpdir(), 'nt-bench-bad-'));
  const dataDir = path.join(tmp, 'data');
  for (const s of all) store(dataDir, s);
  const redisServer = await startPrivateRedis({ appendonly: false, stdio: 'ignore' });
  const redis = connectRedis(redisServer.url, 'worker');
  const worker = spawn(process.execPath, [path.join(ROOT, 'dist', 'services', 'worker', 'main.js')], {
    env: {
      ...process.env, REDIS_URL: redisServer.url, DATA_DIR: dataDir, MODELS_DIR: modelsDir, EXECUTION_PROVIDERS: process.env.EXECUTION_PROVIDERS ?? 'cpu',
      WORKER_METRICS_PORT: '0', WORKER_LOAD_PROCESSES: values.loaders, WORKER_CONCURRENCY: values.concurrency, LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let workerExit: string | undefined;
  worker.once('exit', (code, signal) => (workerExit = `${signal ?? code}`));
  const lost: string[] = [];
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: worker.stdout! }).on('line', (line) => {
      if (line.includes('"msg":"worker ready"')) resolve();
      if (line.includes('a loader process ended while reading a study')) lost.push(/"reason":"([^"]+)"/.exec(line)?.[1] ?? '?');
    });
    worker.once('exit', () => reject(new Error('the worker exited before it was ready')));
  });

  const peak = { self: 0, children: 0, total: 0 };
  const sampler = setInterval(() => {
    if (workerExit) return;
    const r = rssTree(worker.pid!);
    peak.self = Math.max(peak.self, r.self);
    peak.children = Math.max(peak.children, r.children);
    peak.total = Math.max(peak.total, r.self + r.children);
  }, 100);

  const queue = new Queue<StudyJobData>(STUDY_QUEUE, { connection: redis });
  const t0 = Date.now();
  for (const s of all) {
    await redis.multi().hset(keys.study(s.StudyInstanceUID), { status: 'queued', firstReceivedAt: Date.now() }).sadd(keys.pendingStudies(), s.StudyInstanceUID).exec();
    await queue.add(SCORE_STUDY_JOB, { StudyInstanceUID: s.StudyInstanceUID, storageKey: studyStorageKey(s.StudyInstanceUID), traceId: `bench-${s.StudyInstanceUID}` }, {
      jobId: `study-${s.StudyInstanceUID}`, attempts: 3, backoff: { type: 'exponential', delay: 10_000 },
    });
  }
  const ended = new Map<string, { status: string; reason: string; seconds: number; note?: string }>();
  const deadline = Date.now() + 10 * 60_000;
  while (ended.size < all.length && Date.now() < deadline && !workerExit) {
    for (const s of all) {
      if (ended.has(s.StudyInstanceUID)) continue;
      const [status, reason] = await redis.hmget(keys.study(s.StudyInstanceUID), 'status', 'failureReason');
      if (status === 'scored' || status === 'failed' || status === 'unsupported') {
        const seconds = (Date.now() - t0) / 1000;
        let note: string | undefined;
        if (status === 'scored') {
          // What the result says about the damage: the confidence and the images it left out.
          const result = JSON.parse((await redis.get(resultKeys.result(s.StudyInstanceUID))) ?? '{}') as Partial<StudyResult>;
          const dropped = (result.series ?? []).flatMap((x) => (x.dropped ?? []).map((d) => `${d.images} ${d.reason}${x.used ? '' : ' (unused series)'}`));
          note = `confidence ${result.confidence}${dropped.length ? `; left out: ${dropped.join(', ')}` : ''}`;
        }
        ended.set(s.StudyInstanceUID, { status, reason: (reason ?? '').split(':')[0], seconds, note });
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  clearInterval(sampler);

  const rows = all.map((s) => ({ s, e: ended.get(s.StudyInstanceUID) }));
  console.log(`\n${all.length} studies queued at once (${bad.length} malformed, ${mutated.length} mutated, ${good.length} good); worker: ${values.concurrency} jobs, ${values.loaders} loader processes; bundle ${modelsDir}`);
  console.log('kind       outcome       reason                  s   study');
  for (const { s, e } of rows) {
    const outcome = e ? (e.status === 'scored' ? 'scored' : `not triaged`) : 'UNDECIDED';
    console.log(`${s.kind.padEnd(10)} ${outcome.padEnd(13)} ${(e?.reason || (e?.status === 'scored' ? '-' : '')).padEnd(22)} ${(e?.seconds ?? NaN).toFixed(1).padStart(5)}  ${s.name}${e?.note ? ` (${e.note})` : ''}`);
  }
  const notTriaged = rows.filter((r) => r.e && r.e.status !== 'scored');
  const wrong = rows.filter((r) => (r.s.kind === 'malformed' && (r.e?.status !== r.s.expect!.status || r.e?.reason !== r.s.expect!.reason)) || (r.s.kind === 'good' && r.e?.status !== 'scored') || !r.e);
  const maxNotTriaged = Math.max(0, ...notTriaged.map((r) => r.e!.seconds));
  console.log(`\npeak resident memory: worker process ${peak.self.toFixed(0)} MB, loader processes ${peak.children.toFixed(0)} MB, together ${peak.total.toFixed(0)} MB`);
  console.log(`not triaged: ${notTriaged.length}, slowest ${maxNotTriaged.toFixed(1)} s after queueing; scored: ${rows.filter((r) => r.e?.status === 'scored').length}; undecided: ${rows.filter((r) => !r.e).length}`);
  console.log(`worker process: ${workerExit ? `EXITED (${workerExit})` : 'alive throughout'}; loader processes lost: ${lost.length}${lost.length ? ` (${lost.join(', ')})` : ''}; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  if (wrong.length > 0) console.log(`UNEXPECTED: ${wrong.map((r) => r.s.name).join('; ')}`);

  const died = workerExit !== undefined;
  await queue.close();
  if (!workerExit) {
    const gone = new Promise((r) => worker.once('exit', r));
    worker.kill('SIGTERM');
    await gone;
  }
  await redis.quit();
  await redisServer.stop();
  rmSync(tmp, { recursive: true, force: true });
  process.exit(wrong.length > 0 || died ? 1 : 0);
}

main().catch((err: unknown) => failCli(err, { stack: true }));
