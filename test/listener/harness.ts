// Shared set-up for the listener's integration tests: a private Redis, a temp DATA_DIR, the listener in-process on
// an OS-chosen port, and a stand-in study worker (a real BullMQ Worker that records the jobs it gets and, like the
// real worker, removes the study from the pending set when done).
import { mkdtempSync, rmSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../helpers/redis';
import { connectRedis } from '../../shared/redis';
import { createLogger } from '../../shared/logger';
import { STUDY_QUEUE, keys, type StudyJobData } from '../../shared/studies';
import { listenerSettings, type ListenerSettings } from '../../services/listener/config';
import { startListener, type RunningListener } from '../../services/listener/listener';
import { LEASE_FILE, LOG_FILE } from '../../services/listener/instance-store';
import { waitFor as wait } from '../helpers/wait';

export const CALLED_AE = 'NEUROTRIAGE';
export const CALLING_AE = 'PACS_TEST';

export interface Harness {
  redis: TestRedis;
  client: Redis;
  dataDir: string;
  listener: RunningListener;
  settings: ListenerSettings;
  ae: { port: number; callingAe: string; calledAe: string };
  /** The listener's warnings and errors as JSON lines (printed instead when NT_TEST_LOG is set). */
  logLines: string[];
  stopListener(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Listener settings for an in-process test listener: OS-chosen ports, CALLING_AE allowed, a 1 MB disk watermark,
 * a short quiet time and shutdown limit. Every test that starts a listener beside other services uses these too.
 */
export function testListenerSettings(redisUrl: string, dataDir: string, overrides: Partial<ListenerSettings> = {}): ListenerSettings {
  return listenerSettings({
    REDIS_URL: redisUrl,
    DATA_DIR: dataDir,
    DICOM_PORT: 0,
    METRICS_PORT: 0,
    DICOM_ALLOWED_CALLING_AES: CALLING_AE,
    DISK_MIN_FREE_MB: 1,
    STUDY_QUIET_SECONDS: 0.3,
    SHUTDOWN_TIMEOUT_SECONDS: 5,
    LOG_LEVEL: 'silent',
    ...overrides,
  });
}

export async function startHarness(overrides: Partial<ListenerSettings> = {}, existing?: { redis: TestRedis; dataDir: string }): Promise<Harness> {
  const redis = existing?.redis ?? (await startRedis());
  const dataDir = existing?.dataDir ?? mkdtempSync(path.join(tmpdir(), 'nt-listener-'));
  const settings = testListenerSettings(redis.url, dataDir, overrides);
  const logLines: string[] = [];
  const log = process.env.NT_TEST_LOG
    ? createLogger('listener', process.env.NT_TEST_LOG)
    : createLogger('listener', 'warn', { write: (line: string) => void logLines.push(line) });
  const listener = await startListener({ settings, log });
  const client = connectRedis(redis.url, 'worker');
  let listenerStopped = false;
  return {
    redis,
    client,
    dataDir,
    listener,
    settings,
    ae: { port: listener.port, callingAe: CALLING_AE, calledAe: CALLED_AE },
    logLines,
    async stopListener() {
      if (listenerStopped) return;
      listenerStopped = true;
      await listener.close();
    },
    async stop() {
      if (!listenerStopped) await listener.close();
      client.disconnect();
      if (!existing) {
        await redis.stop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}

/** A stand-in for services/worker: records each study job and clears the study's pending flag when done. */
export function startStudyWorker(redisUrl: string): { jobs: StudyJobData[]; close(): Promise<void> } {
  const jobs: StudyJobData[] = [];
  const connection = connectRedis(redisUrl, 'worker');
  const worker = new Worker<StudyJobData>(
    STUDY_QUEUE,
    async (job: Job<StudyJobData>) => {
      jobs.push(job.data);
      await connection.srem(keys.pendingStudies(), job.data.StudyInstanceUID);
    },
    { connection, concurrency: 1 },
  );
  worker.on('error', () => undefined);
  return {
    jobs,
    async close() {
      await worker.close();
      connection.disconnect();
    },
  };
}

/** Study jobs in any state, for "exactly one job" assertions without a worker. */
export async function studyJobs(redisUrl: string): Promise<Job<StudyJobData>[]> {
  const connection = connectRedis(redisUrl, 'worker');
  const queue = new Queue<StudyJobData>(STUDY_QUEUE, { connection });
  try {
    return await queue.getJobs(['delayed', 'waiting', 'active', 'completed', 'failed', 'prioritized']);
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

/** Every file below a directory, relative to it. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

/**
 * Temp files under DATA_DIR/tmp that hold data: an instance half-written or never cleaned up. The listener also
 * keeps a few empty temp files created ahead of need (TempFilePool) and its lease file; those are not leftovers
 * while it runs, and its close() removes them.
 */
export function leftoverTempFiles(dataDir: string): string[] {
  const tmp = path.join(dataDir, 'tmp');
  return listFiles(tmp).filter((f) => path.basename(f) !== LEASE_FILE && path.basename(f) !== LOG_FILE && statSync(path.join(tmp, f)).size > 0);
}

/** test/helpers/wait.ts's waitFor with the probe first, as the listener tests call it. */
export function waitFor<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  return wait(what, probe, timeoutMs, 50);
}

export async function metricsText(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return res.text();
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}
