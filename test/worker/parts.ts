// The real parts the queue-module tests build a worker from (private Redis, the recipe's fixture bundle loaded in
// ONNX Runtime, the query source, the dead-letter queue, a temp DATA_DIR), set up before and torn down after the
// suite that calls workerParts(); and runWorker(), which runs initStudyWorker's BullMQ worker around a test body.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { createLogger, type Logger } from '../../shared/logger';
import { connectRedis } from '../../shared/redis';
import { STUDY_DEAD_LETTER_QUEUE } from '../../shared/studies';
import { startListener, type RunningListener } from '../../services/listener/listener';
import { WORKER_DEFAULTS } from '../../services/worker/config';
import { createInlineLoader } from '../../services/worker/load-pool';
import { createWorkerMetrics } from '../../services/worker/metrics';
import { loadWorkerModels, type WorkerModels } from '../../services/worker/models';
import { initStudyWorker, type DeadLetterData, type StudyJobDeps } from '../../services/worker/queue';
import { createQuerySource, type QuerySource } from '../../services/worker/query-vectors';
import { startRedis, type TestRedis } from '../helpers/redis';
import { testListenerSettings } from '../listener/harness';
import { makeTinyBundle } from './bundle';

export interface WorkerParts {
  redis: TestRedis;
  client: ReturnType<typeof connectRedis>;
  dataDir: string;
  modelsDir: string;
  models: WorkerModels;
  queries: QuerySource;
  dlq: Queue<DeadLetterData>;
  log: Logger;
}

/**
 * Registers beforeAll/afterAll for the suite; the returned object is filled in by beforeAll. `opts.log`: the parts' logger
 * (default silent); `opts.redis`: starts the Redis (default a private one in a temp dir).
 */
export function workerParts(name: string, opts: { log?: Logger; redis?: () => Promise<TestRedis> } = {}): WorkerParts {
  const parts = { log: opts.log ?? createLogger('test', process.env.TEST_LOG_LEVEL ?? 'silent') } as WorkerParts;
  beforeAll(async () => {
    parts.redis = await (opts.redis ?? startRedis)();
    parts.client = connectRedis(parts.redis.url, 'worker');
    parts.dataDir = mkdtempSync(path.join(tmpdir(), `nt-worker-${name}-`));
    parts.modelsDir = makeTinyBundle();
    parts.models = await loadWorkerModels(parts.modelsDir, { providers: ['cpu'] });
    parts.queries = await createQuerySource({ redis: parts.client, manifest: parts.models.manifest, text: parts.models.text, log: parts.log });
    parts.dlq = new Queue<DeadLetterData>(STUDY_DEAD_LETTER_QUEUE, { connection: parts.client });
  });
  afterAll(async () => {
    await parts.dlq?.close();
    await parts.queries?.close();
    await parts.models?.close();
    await parts.client?.quit();
    await parts.redis?.stop();
    if (parts.dataDir) rmSync(parts.dataDir, { recursive: true, force: true });
    if (parts.modelsDir) rmSync(parts.modelsDir, { recursive: true, force: true });
  });
  return parts;
}

/**
 * The real DICOM listener on the parts' Redis and DATA_DIR, started after them and closed before them (call it after
 * workerParts in the same suite): what the tests send over DICOM, the worker then scores.
 */
export function listenerBeside(parts: WorkerParts): { port: number } {
  const out = { port: 0 };
  let listener: RunningListener | undefined;
  beforeAll(async () => {
    listener = await startListener({ settings: testListenerSettings(parts.redis.url, parts.dataDir), log: createLogger('listener', process.env.TEST_LOG_LEVEL ?? 'silent') });
    out.port = listener.port;
  });
  afterAll(async () => {
    await listener?.close();
  });
  return out;
}

/** A study job's deps from the parts: loading in-process (no loader processes), 2 attempts 50 ms apart; `over` replaces. */
export function inlineJobDeps(parts: WorkerParts, over: Partial<StudyJobDeps> = {}): StudyJobDeps {
  return {
    redis: parts.client, dataDir: parts.dataDir,
    pipeline: { loader: createInlineLoader({ preprocessing: parts.models.manifest.preprocessing, sequences: parts.models.sequences }), models: parts.models },
    queries: parts.queries, deadLetters: parts.dlq, metrics: createWorkerMetrics(), log: parts.log, retry: { attempts: 2, backoffMs: 50 },
    ...over,
  };
}

/** Runs the study worker of initStudyWorker (concurrency 1) while `body` runs, then closes it. */
export async function runWorker(deps: StudyJobDeps, body: () => Promise<void>): Promise<void> {
  const { queue, worker } = initStudyWorker({ ...WORKER_DEFAULTS, WORKER_CONCURRENCY: 1 }, deps);
  void worker.run();
  try {
    await body();
  } finally {
    await worker.close();
    await queue.close();
  }
}
