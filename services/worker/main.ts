// Wires the worker process: settings, the HTTP server (/metrics, /livez, /readyz, up first), model bundle, Redis
// connections, query vectors, the loader process pool, the BullMQ worker and graceful shutdown. startWorker() is
// also what tests and an in-process launcher call; run as a script (node dist/services/worker/main.js) it handles
// SIGTERM/SIGINT itself.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Queue } from 'bullmq';
import { ConfigError, dataDir, exitOnStartFailure, loadConfig } from '../../shared/config';
import { redisCheck, redisRefusal, type Check } from '../../shared/health';
import { createLogger, type Logger } from '../../shared/logger';
import { connectRedis } from '../../shared/redis';
import { redisOutageLog } from '../../shared/redis-outage';
import { STUDY_DEAD_LETTER_QUEUE } from '../../shared/studies';
import { batchingEmbedder } from './batcher';
import { executionProviders, loadWorkerConfig, sensitivitySettings } from './config';
import { operatingPointNotes } from '../../shared/models/decision';
import { startWorkerHttp } from './http';
import { createInlineLoader, createProcessLoader } from './load-pool';
import { createWorkerMetrics } from './metrics';
import { loadWorkerModels } from './models';
import { initStudyWorker, sampleQueueDepth, type DeadLetterData } from './queue';
import { createQuerySource } from './query-vectors';
import { backfillUntriagedIndex } from './store';

/** The most each closing step after the jobs (queues, loaders, Redis) may take: they wait on Redis, which may not answer. */
const CLOSE_STEP_MS = 5000;

export interface RunningWorker {
  /** Port /metrics, /livez and /readyz listen on (useful when WORKER_METRICS_PORT=0). */
  metricsPort: number;
  /** Loader process ids (none with WORKER_LOAD_PROCESSES=0). */
  loaderPids(): number[];
  provider: string;
  /** Stops taking jobs, lets active ones finish within SHUTDOWN_TIMEOUT_SECONDS, then closes everything. */
  close(): Promise<void>;
}

export interface StartWorkerDeps {
  env?: Record<string, string | undefined>;
  log?: Logger;
  /** Aborts the wait for a model bundle that is not there yet (SIGTERM before the worker is ready). */
  signal?: AbortSignal;
}

/**
 * A missing bundle (a fresh checkout before `npm run models:train`) is waited for, so `npm start` keeps the
 * listener and API running and studies queue up; a bundle that is present but does not verify fails at once.
 */
async function waitForBundle(dir: string, log: Logger, signal?: AbortSignal, everyMs = 5000): Promise<void> {
  let warnedAt = 0;
  while (!existsSync(path.join(dir, 'manifest.json'))) {
    if (signal?.aborted) throw new Error('stopped while waiting for the model bundle');
    if (Date.now() - warnedAt > 60_000) {
      log.error({ modelsDir: path.resolve(dir) }, 'no model bundle (manifest.json): waiting for one; studies stay queued (npm run models:train makes it)');
      warnedAt = Date.now();
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Runs a start step that writes to Redis (the query migration, the judging thresholds) again while Redis refuses
 * writes for a while (shared/health.ts redisRefusal: maxmemory with noeviction, its disk full, a replica): exiting
 * only restarted the worker into the same refusal, a crash loop with a raw stack each time. Studies stay queued meanwhile, as they do while Redis is not reachable.
 */
async function whileRedisRefuses<T>(work: () => Promise<T>, log: Logger, onRefusal: (refusal: string) => void, signal?: AbortSignal, everyMs = 5000): Promise<T> {
  let warnedAt = 0;
  for (;;) {
    try {
      return await work();
    } catch (err) {
      const refusal = redisRefusal(err);
      if (!refusal) throw err;
      onRefusal(refusal);
      if (signal?.aborted) throw new Error('stopped while Redis refused writes');
      if (Date.now() - warnedAt > 60_000) {
        log.error({ err: (err as Error).message, retryEveryMs: everyMs }, `${refusal}: the worker waits to start; studies stay queued`);
        warnedAt = Date.now();
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}

export async function startWorker(deps: StartWorkerDeps = {}): Promise<RunningWorker> {
  const env = deps.env ?? process.env;
  const config = loadConfig(env);
  const wc = loadWorkerConfig(env);
  if (!config.REDIS_URL) throw new ConfigError(['REDIS_URL: the worker needs Redis (npm start sets it when it starts a private one)']);
  const log = deps.log ?? createLogger('worker', config.LOG_LEVEL);

  const metrics = createWorkerMetrics({ defaultMetrics: true });
  // Readiness has its own connection without an offline queue: a lost Redis fails the PING at once.
  const healthRedis = connectRedis(config.REDIS_URL, 'producer');
  healthRedis.on('error', () => undefined); // the worker's own connections log Redis errors
  let modelsCheck: Check = { ok: false, detail: `waiting for the model bundle in ${path.resolve(wc.MODELS_DIR)}` };
  // Redis answering PING is not enough: at maxmemory (noeviction), a full disk or a read-only replica it refuses the
  // writes that taking a job needs, so a worker it refuses is not ready (a rolling update waits on it).
  let jobsCheck = (): Check => ({ ok: false, detail: 'starting' });
  const server = await startWorkerHttp({
    port: wc.WORKER_METRICS_PORT,
    host: wc.WORKER_METRICS_HOST,
    metrics,
    readiness: async () => ({ redis: await redisCheck(healthRedis), models: modelsCheck, jobs: jobsCheck() }),
  });
  log.info({ httpPort: server.port }, '/livez, /readyz and /metrics listening');
  // From here on, a failed start must not leave anything it opened behind (a launcher or a test that embeds the
  // worker lives on): each part is pushed here once open and closed, last first, if a later step throws.
  const opened: (() => Promise<unknown>)[] = [() => server.close(), async () => healthRedis.disconnect()];
  const step = <T>(work: Promise<T>): Promise<T> => work.catch(async (err: unknown) => {
    for (const close of opened.reverse()) await close().catch(() => undefined);
    throw err;
  });
  await step(waitForBundle(wc.MODELS_DIR, log, deps.signal));
  const models = await step(loadWorkerModels(wc.MODELS_DIR, {
    providers: executionProviders(wc),
    ...(wc.WORKER_ORT_THREADS > 0 ? { threads: wc.WORKER_ORT_THREADS } : {}),
  }));
  opened.push(() => models.close());
  const { manifest } = models;
  log.info(
    { bundleId: manifest.bundleId, version: manifest.version, provider: models.provider, fallbacks: models.fallbacks, sequences: models.sequences },
    'model bundle loaded',
  );
  modelsCheck = { ok: true, detail: `${manifest.bundleId} ${manifest.version} on ${models.provider}` };
  // preferred: the first configured provider; provider != preferred is a fallback (alert NeurotriageWorkerOnCpuFallback).
  metrics.provider.set({ provider: models.provider, preferred: executionProviders(wc)[0], model_version: `${manifest.bundleId}@${manifest.version}` }, 1);

  const redis = connectRedis(config.REDIS_URL, 'worker');
  const subscriber = connectRedis(config.REDIS_URL, 'worker');
  const redisErrors = redisOutageLog(log);
  for (const [name, conn] of [['redis', redis], ['subscriber', subscriber]] as const) {
    conn.on('error', (err) => redisErrors.error(`Redis connection (${name})`, err));
  }
  redisErrors.watch(redis);
  opened.push(async () => subscriber.disconnect(), async () => redis.disconnect());
  const loaderOpts = { preprocessing: manifest.preprocessing, sequences: models.sequences };
  const processLoader = wc.WORKER_LOAD_PROCESSES > 0
    ? createProcessLoader({
      processes: wc.WORKER_LOAD_PROCESSES,
      maxRssMb: wc.WORKER_LOAD_MAX_RSS_MB,
      timeoutMs: wc.WORKER_LOAD_TIMEOUT_SECONDS * 1000,
      ...loaderOpts,
      onLoaderLost: (e) => {
        metrics.loadersLost.inc({ reason: e.reason });
        log.warn(e, 'a loader process ended while reading a study: that study fails, the process is replaced');
      },
      onLoaderCannotStart: (e) => {
        metrics.loadersLost.inc({ reason: 'cannot-start' });
        log.error(e, 'a loader process ended before it could read any study (the build or a native codec?): replaced after a wait');
      },
    })
    : undefined;
  const loader = processLoader ?? createInlineLoader(loaderOpts);
  opened.push(() => loader.close());
  const sensitivity = sensitivitySettings(wc);
  for (const note of operatingPointNotes(manifest.decision, sensitivity)) log.warn({ sensitivity }, note);
  const queries = await step(whileRedisRefuses(
    () => createQuerySource({ redis, subscriber, manifest, text: models.text, log, sensitivity }),
    log,
    (refusal) => (jobsCheck = () => ({ ok: false, detail: `starting: ${refusal}` })),
    deps.signal,
  ));
  const image = batchingEmbedder(models.image, {
    maxBatch: wc.WORKER_BATCH_SIZE,
    maxWaitMs: wc.WORKER_BATCH_WAIT_MS,
    onBatch: (sequence, size) => metrics.batchSize.observe({ sequence }, size),
  });
  const deadLetters = new Queue<DeadLetterData>(STUDY_DEAD_LETTER_QUEUE, { connection: redis });
  deadLetters.on('error', (err) => redisErrors.error('dead-letter queue', err));

  const { queue, worker, handBack, refusals } = initStudyWorker(wc, {
    redis,
    redisErrors,
    dataDir: dataDir(config),
    pipeline: { loader, models, image, ...(wc.WORKER_LOCALISE ? {} : { localise: false as const }) },
    queries,
    deadLetters,
    metrics,
    log,
    retry: { attempts: wc.WORKER_JOB_ATTEMPTS, backoffMs: wc.WORKER_BACKOFF_MS },
    partial: { waitMs: wc.WORKER_PARTIAL_WAIT_SECONDS * 1000 },
  });
  // In the background: scoring does not wait for it, and until it sets its flag the API scans instead.
  backfillUntriagedIndex(redis).then(
    (indexed) => indexed > 0 && log.info({ indexed }, 'untriaged index built from earlier failures'),
    (err: unknown) => log.warn({ err }, 'untriaged index backfill failed; the API keeps scanning'),
  );
  server.setSample(() => sampleQueueDepth(queue, metrics, redis));
  worker.run().catch((err: unknown) => log.error({ err }, 'study worker stopped with an error'));
  jobsCheck = () => {
    const refusal = refusals.current();
    return refusal ? { ok: false, detail: `${refusal}: fetching study jobs paused` } : { ok: true, detail: 'taking study jobs' };
  };
  log.info(
    { concurrency: wc.WORKER_CONCURRENCY, batch: wc.WORKER_BATCH_SIZE, loadProcesses: wc.WORKER_LOAD_PROCESSES, ortThreads: wc.WORKER_ORT_THREADS, metricsPort: server.port },
    'worker ready',
  );

  let closing: Promise<void> | null = null;
  return {
    metricsPort: server.port,
    loaderPids: () => processLoader?.pids() ?? [],
    provider: models.provider,
    close() {
      closing ??= (async () => {
        const timeoutMs = config.SHUTDOWN_TIMEOUT_SECONDS * 1000;
        // Graceful: active jobs finish and complete. Past the limit: the jobs still running are handed back to the
        // head of the queue, their attempt not spent, then loading is interrupted; a job the hand-back could not
        // reach (Redis not answering) is left to its lock, which lapses so another worker retries it (the result
        // write is idempotent, so a half-finished job cannot duplicate). worker.close(true) cannot do this once the
        // graceful close has begun: BullMQ returns the close already in progress.
        // Every later step is bounded too: with Redis frozen or gone, BullMQ's close and QUIT never answer, and the
        // worker held its pod for the whole terminationGracePeriodSeconds.
        const within = <T>(work: Promise<T>, ms: number): Promise<T | 'timeout'> => {
          let timer: NodeJS.Timeout | undefined;
          const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
          return Promise.race([work, timedOut]).finally(() => clearTimeout(timer));
        };
        const workerClosed = worker.close().catch((err: unknown) => log.warn({ err }, 'closing the study worker failed'));
        if ((await within(workerClosed, timeoutMs)) === 'timeout') {
          const handedBack = await within(handBack(), CLOSE_STEP_MS);
          log.warn({ timeoutMs, handedBack }, 'active jobs did not finish in time: handed back to the queue for the next worker; stopping');
          await within(loader.close(), CLOSE_STEP_MS);
          await within(workerClosed, CLOSE_STEP_MS);
        }
        // In order (loaders and sessions after the queues, Redis last); past a step's bound the rest is skipped.
        const steps: (() => Promise<unknown>)[] = [
          () => Promise.allSettled([queue.close(), deadLetters.close(), queries.close(), server.close()]),
          () => Promise.allSettled([loader.close(), models.close()]),
          () => Promise.allSettled([subscriber.quit(), redis.quit(), healthRedis.quit()]),
        ];
        for (const step of steps) {
          if ((await within(step(), CLOSE_STEP_MS)) === 'timeout') {
            log.warn({ waitedMs: CLOSE_STEP_MS }, 'a closing step did not finish (Redis not answering?): closing the connections anyway');
            // The loader processes are never left behind: they are children of this process.
            await within(loader.close(), CLOSE_STEP_MS);
            break;
          }
        }
        for (const conn of [subscriber, redis, healthRedis]) conn.disconnect();
        log.info('worker stopped');
      })();
      return closing;
    },
  };
}

if (require.main === module) {
  const abort = new AbortController();
  let running: RunningWorker | undefined;
  const stop = (signal: string) => {
    abort.abort();
    if (!running) process.exit(0); // not started yet (e.g. waiting for the bundle): nothing to drain
    running.close().then(() => process.exit(0), (err: unknown) => {
      console.error(`worker: error while stopping on ${signal}:`, err);
      process.exit(1);
    });
  };
  // Every signal handled (stop is idempotent): a second Ctrl-C while it stops must not kill it mid-way, as the
  // listener and the API also keep stopping.
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  startWorker({ signal: abort.signal })
    .then((r) => {
      running = r;
    })
    .catch(exitOnStartFailure);
}
