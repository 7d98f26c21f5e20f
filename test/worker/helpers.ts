// Shared pieces of the worker's integration tests: an environment for startWorker / the built worker process,
// a study job enqueued the way the listener does, and polling helpers.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { keys, SCORE_STUDY_JOB, STUDY_QUEUE, studyStorageKey, type StudyJobData } from '../../shared/studies';

export const ROOT = path.resolve(__dirname, '..', '..');
export const BUILT_WORKER = path.join(ROOT, 'dist', 'services', 'worker', 'main.js');

/** The loader processes and the child-process tests run compiled JS: `npm test` builds before jest. */
export function requireBuild(): void {
  if (!existsSync(BUILT_WORKER) || !existsSync(path.join(ROOT, 'dist', 'services', 'worker', 'load-process.js'))) {
    throw new Error(`${BUILT_WORKER} is missing: run npm run build first (npm test does)`);
  }
}

export function workerEnv(opts: { redisUrl: string; dataDir: string; modelsDir: string; extra?: Record<string, string> }): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    REDIS_URL: opts.redisUrl,
    DATA_DIR: opts.dataDir,
    MODELS_DIR: opts.modelsDir,
    EXECUTION_PROVIDERS: 'cpu',
    WORKER_METRICS_PORT: '0',
    WORKER_CONCURRENCY: '1',
    WORKER_LOAD_PROCESSES: '1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    SHUTDOWN_TIMEOUT_SECONDS: '5',
    ...opts.extra,
  };
}

/** Writes instances where the listener would (DATA_DIR/store/<Study>/<Series>/<SOP>.dcm). */
export function storeInstances(dataDir: string, StudyInstanceUID: string, files: { SeriesInstanceUID: string; SOPInstanceUID: string; data: Uint8Array }[]): string {
  const storageKey = studyStorageKey(StudyInstanceUID);
  for (const f of files) {
    const dir = path.join(dataDir, storageKey, f.SeriesInstanceUID);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `${f.SOPInstanceUID}.dcm`), f.data);
  }
  return storageKey;
}

/** Records the study and enqueues its job as the listener does (status, pending set, one job per study). */
export async function enqueueStudy(redis: Redis, queue: Queue<StudyJobData>, StudyInstanceUID: string, opts: { attempts?: number } = {}): Promise<string> {
  await redis.multi()
    .hset(keys.study(StudyInstanceUID), { status: 'queued', firstReceivedAt: Date.now() })
    .sadd(keys.pendingStudies(), StudyInstanceUID)
    .exec();
  const job = await queue.add(
    SCORE_STUDY_JOB,
    { StudyInstanceUID, storageKey: studyStorageKey(StudyInstanceUID), traceId: `test-${StudyInstanceUID}` },
    { jobId: `study-${StudyInstanceUID}`, ...(opts.attempts ? { attempts: opts.attempts, backoff: { type: 'exponential', delay: 200 } } : {}) },
  );
  return job.id!;
}

export function studyQueue(redis: Redis): Queue<StudyJobData> {
  return new Queue<StudyJobData>(STUDY_QUEUE, { connection: redis });
}

import { waitFor } from '../helpers/wait';

export { waitFor };

/** Waits for a study's job to end (scored, failed or unsupported): its status and failure reason (null when none). */
export async function studyEnded(redis: Redis, StudyInstanceUID: string, timeoutMs = 90_000): Promise<{ status: string; reason: string | null }> {
  const status = await waitFor('the study to end', async () => {
    const s = await redis.hget(keys.study(StudyInstanceUID), 'status');
    return s === 'scored' || s === 'failed' || s === 'unsupported' ? s : undefined;
  }, timeoutMs, 100);
  return { status, reason: await redis.hget(keys.study(StudyInstanceUID), 'failureReason') };
}

/**
 * The HTTP port of a built worker started with LOG_LEVEL=info and stdout piped, from its log: `when` "ready" waits
 * for the "worker ready" line (models loaded, jobs taken), "listening" for the HTTP server's first line. The rest of
 * its log is passed through when TEST_LOG_LEVEL is set.
 */
export function readyPort(child: ChildProcess, when: 'ready' | 'listening' = 'ready'): Promise<number> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const pattern = when === 'ready' ? /"metricsPort":(\d+).*"msg":"worker ready"/ : /"httpPort":(\d+)/;
    lines.on('line', (line) => {
      if (process.env.TEST_LOG_LEVEL) process.stdout.write(`${line}\n`);
      const m = pattern.exec(line);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code, signal) => reject(new Error(`worker exited (${signal ?? code}) before it was ready`)));
  });
}
