// Pushing results out: one BullMQ queue per configured adapter ("outbound-hl7", "outbound-sr", "outbound-webhook"),
// jobId = delivery key (StudyInstanceUID + result version) so a duplicate enqueue is a no-op, attempts with
// exponential backoff, permanent failures ended at once with UnrecoverableError, and a dead-letter copy of every
// delivery given up. Job data holds UIDs and the version only; the result is read from Redis when the job runs.
// HL7 is ordered per RIS across every API replica: its queue has a BullMQ global concurrency of 1 (one message in
// flight in the whole deployment, so a newer version cannot overtake an older one in flight), and a per-study
// watermark of the newest version the RIS acknowledged stops an older version from being sent after it
// (docs/hl7-interface.md, "Ordering").
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { log as dimseLog } from 'dcmjs-dimse';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import type { Logger } from '../../../shared/logger';
import { connectRedis } from '../../../shared/redis';
import { PRIORITIES } from '../../../shared/model-manifest';
import { resultKeys, worklistClassRange, type StudyResult } from '../../../shared/results';
import { softwareVersion } from '../../../shared/version';
import { parseResult, UNREADABLE } from '../../../shared/result-schema';
import { createHl7Adapter, createSrAdapter, createWebhookAdapter, type OutboundAdapter } from './adapters';
import type { OutboundConfig } from './config';
import { asDeliveryError, isPermanent, PermanentDeliveryError, reasonOf, RESULT_UNREADABLE, RetryableDeliveryError, safeMessage, SkipDelivery, type Adapter } from './errors';
import { deliveryKey, resultKey, sentVersionKey } from './idempotency';
import { createOutboundMetrics, deadLetterReason, type OutboundMetrics } from './metrics';
import { handleWorkerErrors, WRITES_REFUSED_PAUSE_MS } from '../../../shared/write-refusals';
import { redisOutageLog, type RedisOutageLog } from '../../../shared/redis-outage';

export const OUTBOUND_QUEUES: Record<Adapter, string> = {
  hl7: 'outbound-hl7',
  sr: 'outbound-sr',
  webhook: 'outbound-webhook',
};
export const deadLetterQueueName = (adapter: Adapter): string => `${OUTBOUND_QUEUES[adapter]}-dead-letter`;
export const DELIVER_JOB = 'deliver';

/** Jobs one API process runs at once per adapter. */
const CONCURRENCY: Record<Adapter, number> = { hl7: 1, sr: 2, webhook: 4 };
/**
 * Jobs all API processes together run at once (BullMQ global concurrency, kept in Redis): HL7 has one message in
 * flight per RIS whatever the number of replicas; the others may overlap across replicas.
 */
const GLOBAL_CONCURRENCY: Partial<Record<Adapter, number>> = { hl7: 1 };

/**
 * The webhook jobs' backoff: exponential (OUTBOUND_BACKOFF_MS doubling), but never sooner than a Retry-After the
 * receiver sent. Jobs queued before it existed carry BullMQ's own "exponential" and keep it.
 */
const OUTBOUND_BACKOFF = 'outbound';
export function outboundBackoff(attemptsMade: number, type: string | undefined, err: Error | undefined, job: { opts: { backoff?: unknown } } | undefined): number {
  const delay = (job?.opts.backoff as { delay?: number } | undefined)?.delay ?? 0;
  const exponential = Math.round(2 ** (attemptsMade - 1) * delay);
  const retryAfter = err instanceof RetryableDeliveryError ? err.retryAfterMs ?? 0 : 0;
  return Math.max(exponential, retryAfter);
}

export interface OutboundJobData {
  StudyInstanceUID: string;
  /** Result version (scoredAt, ms epoch). */
  version: number;
  traceId?: string;
}

export interface DeadLetterData extends OutboundJobData {
  adapter: Adapter;
  reason: string;
  /** Our own error text: codes and UIDs only. */
  error: string;
  permanent: boolean;
  attemptsMade: number;
  failedAt: number;
}

export type JobOutcome =
  | { status: 'delivered'; detail: string; scoredAt: number }
  | { status: 'superseded' | 'skipped'; detail: string };

export interface OutboundDeps {
  /** redis://, rediss:// or unix:// (shared/redis.ts). */
  redisUrl: string;
  registry: Registry;
  logger: Logger;
  /** Where Redis connection errors go, once per outage (shared/redis-outage.ts); default one of its own. */
  redisErrors?: RedisOutageLog;
  /** Absolute DATA_DIR (the SR reads the source study's stored instances). */
  dataDir: string;
  /** Written into the SR's SoftwareVersions (default: this release, package.json's version). */
  softwareVersion?: string;
  /** Subscribe to resultKeys.scoredChannel() in start() and enqueue each result (default true). */
  subscribe?: boolean;
  fetch?: typeof fetch;
  now?: () => number;
}

export interface Outbound {
  /** The adapters that are configured. */
  readonly adapters: Adapter[];
  /** Queues the result for every configured adapter that wants it; returns those it was queued for. */
  enqueue(result: StudyResult, traceId?: string): Promise<Adapter[]>;
  /** Reads the stored result of a study and enqueues it; false when there is none. */
  enqueueStudy(StudyInstanceUID: string, traceId?: string): Promise<boolean>;
  /** Enqueues every result scored in the last `minutes` (start() runs it with the configured window); returns how many. */
  catchUp(minutes: number): Promise<number>;
  start(): Promise<void>;
  close(): Promise<void>;
  /** For tests and the operations runbook. */
  queue(adapter: Adapter): Queue<OutboundJobData>;
  deadLetterQueue(adapter: Adapter): Queue<DeadLetterData>;
}

/**
 * The study's stored result, or null when there is none. One that cannot be read (a write cut off, a hand edit,
 * another writer's format; the API's parseResult decides) will not heal by retrying: it is a permanent failure whose
 * message names the UID, never the stored text (it may hold an accession number).
 */
export async function readResult(redis: Redis, StudyInstanceUID: string): Promise<StudyResult | null> {
  const json = await redis.get(resultKeys.result(StudyInstanceUID));
  if (json === null) return null;
  const result = parseResult(json);
  if (result === UNREADABLE) {
    throw new PermanentDeliveryError(
      `the stored result of study ${StudyInstanceUID} is unreadable (not JSON, or not a StudyResult); score the study again`,
      RESULT_UNREADABLE,
    );
  }
  return result;
}

/**
 * Runs one delivery: the plain function behind the BullMQ processor (tests call it directly). A result that was
 * re-scored since the job was queued is not sent: the newer version has its own job. For an ordered adapter
 * (HL7) a version older than one the peer already acknowledged is not sent either, nor the version it acknowledged
 * (a job that ran past the ACK and its record but was killed before BullMQ marked it completed, and is retried after
 * the restart). The adapter raises the watermark with its own record of the ACK (adapters.ts `ordered`).
 */
export async function execOutboundJob(adapter: OutboundAdapter, data: OutboundJobData, redis: Redis): Promise<JobOutcome> {
  const result = await readResult(redis, data.StudyInstanceUID);
  if (!result) return { status: 'skipped', detail: 'result-missing' };
  if (Math.trunc(result.scoredAt) !== data.version) return { status: 'superseded', detail: `now v${Math.trunc(result.scoredAt)}` };
  const watermark = adapter.ordered ? sentVersionKey(adapter.name, data.StudyInstanceUID) : undefined;
  if (watermark) {
    const sent = Number((await redis.get(watermark)) ?? -1);
    if (sent > data.version) return { status: 'superseded', detail: `v${sent} already acknowledged` };
    if (sent === data.version) return { status: 'skipped', detail: 'acknowledged' };
  }
  // deliver gets what the judgment read, so a record that decides both is read once (adapters.ts Judgment).
  const { skip, context } = await adapter.skipReason(result);
  if (skip) return { status: 'skipped', detail: skip };
  try {
    const detail = await adapter.deliver(result, deliveryKey(data.StudyInstanceUID, data.version), context);
    return { status: 'delivered', detail, scoredAt: result.scoredAt };
  } catch (err) {
    if (err instanceof SkipDelivery) return { status: 'skipped', detail: err.reason };
    throw err;
  }
}

/** With no adapter configured: nothing to connect to, nothing to run. */
function disabledOutbound(): Outbound {
  const none = (adapter: Adapter): never => {
    throw new Error(`outbound adapter ${adapter} is not configured`);
  };
  return {
    adapters: [],
    enqueue: async () => [],
    enqueueStudy: async () => false,
    catchUp: async () => 0,
    start: async () => undefined,
    close: async () => undefined,
    queue: none,
    deadLetterQueue: none,
  };
}

export function createOutbound(config: OutboundConfig, deps: OutboundDeps): Outbound {
  if (!config.hl7 && !config.sr && !config.webhook) return disabledOutbound();
  const { logger } = deps;
  const now = deps.now ?? Date.now;
  // Producer connection fails fast; the worker connection waits (BullMQ's blocking commands need that).
  const redis = connectRedis(deps.redisUrl, 'producer');
  const workerRedis = connectRedis(deps.redisUrl, 'worker');
  const redisErrors = deps.redisErrors ?? redisOutageLog(logger);
  for (const r of [redis, workerRedis]) r.on('error', (err) => redisErrors.error('outbound Redis connection', err));
  redisErrors.watch(workerRedis);

  const adapters: OutboundAdapter[] = [];
  if (config.hl7) adapters.push(createHl7Adapter(config.hl7, { redis, logger, now, source: { redis, dataDir: deps.dataDir } }));
  if (config.sr) adapters.push(createSrAdapter(config.sr, { redis, dataDir: deps.dataDir, softwareVersion: deps.softwareVersion ?? softwareVersion(), now }));
  if (config.webhook) adapters.push(createWebhookAdapter(config.webhook, { redis, fetch: deps.fetch, now }));
  const metrics: OutboundMetrics = createOutboundMetrics(deps.registry, adapters.map((a) => a.name));

  const queues = new Map<Adapter, Queue<OutboundJobData>>();
  const deadLetters = new Map<Adapter, Queue<DeadLetterData>>();
  for (const a of adapters) {
    queues.set(a.name, new Queue<OutboundJobData>(OUTBOUND_QUEUES[a.name], {
      connection: redis,
      defaultJobOptions: {
        attempts: config.attempts,
        // Only the webhook has a Retry-After to honour; HL7 and SR keep BullMQ's own exponential backoff.
        backoff: { type: a.name === 'webhook' ? OUTBOUND_BACKOFF : 'exponential', delay: config.backoffMs },
        // Completed jobs stay a day so a duplicate enqueue of the same version stays a no-op.
        removeOnComplete: { age: 24 * 3600, count: 10_000 },
        removeOnFail: { age: 7 * 24 * 3600 },
      },
    }));
    deadLetters.set(a.name, new Queue<DeadLetterData>(deadLetterQueueName(a.name), { connection: redis }));
  }

  const workers: Worker[] = [];
  let subscriber: Redis | undefined;
  let running = false;

  async function runJob(adapter: OutboundAdapter, job: Job<OutboundJobData>): Promise<JobOutcome> {
    const name = adapter.name;
    const attempt = job.attemptsMade + 1;
    const started = now();
    const log = { adapter: name, StudyInstanceUID: job.data.StudyInstanceUID, version: job.data.version, traceId: job.data.traceId, attempt };
    try {
      const outcome = await execOutboundJob(adapter, job.data, redis);
      metrics.attemptSeconds.observe({ adapter: name, outcome: outcome.status }, (now() - started) / 1000);
      if (outcome.status === 'delivered') {
        metrics.sent.inc({ adapter: name });
        metrics.deliverySeconds.observe({ adapter: name }, Math.max(0, now() - outcome.scoredAt) / 1000);
        logger.info({ ...log, detail: outcome.detail, queuedMs: started - job.timestamp, execMs: now() - started }, 'outbound delivered');
        if (adapter.rejudgesNewer) await rejudgeNewer(adapter, job.data);
      } else {
        metrics.skipped.inc({ adapter: name, reason: outcome.status === 'superseded' ? 'superseded' : outcome.detail });
        logger.info({ ...log, status: outcome.status, detail: outcome.detail }, 'outbound not sent');
      }
      return outcome;
    } catch (thrown) {
      const err = asDeliveryError(thrown);
      const permanent = isPermanent(err);
      const reason = reasonOf(err);
      const message = err.message;
      metrics.attemptSeconds.observe({ adapter: name, outcome: 'failed' }, (now() - started) / 1000);
      metrics.failed.inc({ adapter: name, reason, permanent: String(permanent) });
      const final = permanent || attempt >= (job.opts.attempts ?? 1);
      if (final) {
        // The dead-letter copy is written before BullMQ marks the job failed, so a crash cannot lose it.
        await deadLetters.get(name)!.add('dead-letter', {
          ...job.data, adapter: name, reason, error: message, permanent, attemptsMade: attempt, failedAt: now(),
        }, { jobId: job.id, removeOnComplete: false, removeOnFail: false });
        metrics.deadLettered.inc({ adapter: name, reason: deadLetterReason(name, reason, permanent) });
        logger.error({ ...log, reason, err: message, permanent }, 'outbound delivery given up: dead-lettered');
      } else {
        logger.warn({ ...log, reason, err: message }, 'outbound delivery failed: will retry');
      }
      if (permanent) throw new UnrecoverableError(message);
      throw err;
    }
  }

  /**
   * A newer version of the study written while this one was in flight was judged by skipReason against a record
   * that lacked this one (the webhook: a STAT page in flight, its ROUTINE withdrawal skipped as below the minimum):
   * judged again now, and queued if it is wanted (the same job id, so a no-op where it was queued), under the trace
   * id of the job that scored it (or one of its own for a result written before results recorded it), never this
   * delivery's. A failure here is logged, not thrown: the delivery
   * itself succeeded and must not be sent again.
   */
  async function rejudgeNewer(adapter: OutboundAdapter, data: OutboundJobData): Promise<void> {
    try {
      const current = await readResult(redis, data.StudyInstanceUID);
      if (!current || Math.trunc(current.scoredAt) <= data.version || (await adapter.skipReason(current)).skip) return;
      const key = resultKey(current);
      await queues.get(adapter.name)!.add(DELIVER_JOB, { StudyInstanceUID: key.StudyInstanceUID, version: key.version, traceId: current.traceId ?? randomUUID() }, { jobId: key.jobId });
    } catch (err) {
      logger.error({ adapter: adapter.name, StudyInstanceUID: data.StudyInstanceUID, version: data.version, err: safeMessage(err) }, 'outbound: newer version not judged again after this delivery');
    }
  }

  /**
   * A delivery that used all its attempts (the RIS, PACS or pager was down longer than the backoff) is kept failed
   * for a week under its version's job id, which made every later enqueue of that version a no-op: after the
   * outage, restarting the API re-delivered nothing. Catch-up retries it, with its attempts reset, and drops the
   * dead-letter copy (a new one is written if it fails again). A permanent refusal (an AR, an unreadable result)
   * is left dead-lettered: sending it again cannot change the answer.
   */
  async function retryExhausted(adapter: Adapter, jobId: string): Promise<boolean> {
    const dead = await deadLetters.get(adapter)!.getJob(jobId);
    if (!dead || dead.data.permanent) return false;
    const job = await queues.get(adapter)!.getJob(jobId);
    if (!job || (await job.getState()) !== 'failed') return false;
    try {
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    } catch {
      return false; // another API replica's catch-up retried it first
    }
    await dead.remove().catch(() => undefined);
    return true;
  }

  const outbound: Outbound = {
    adapters: adapters.map((a) => a.name),

    async enqueue(result, traceId) {
      const key = resultKey(result);
      const queued: Adapter[] = [];
      for (const adapter of adapters) {
        const { skip } = await adapter.skipReason(result);
        if (skip) {
          metrics.skipped.inc({ adapter: adapter.name, reason: skip });
          continue;
        }
        const data: OutboundJobData = { StudyInstanceUID: key.StudyInstanceUID, version: key.version, ...(traceId ? { traceId } : {}) };
        await adapter.queued?.(result);
        await queues.get(adapter.name)!.add(DELIVER_JOB, data, { jobId: key.jobId });
        queued.push(adapter.name);
      }
      return queued;
    },

    async enqueueStudy(StudyInstanceUID, traceId) {
      const result = await readResult(redis, StudyInstanceUID);
      if (!result) return false;
      // A scored event names only the study: its deliveries log under the trace id of the job that scored it.
      await outbound.enqueue(result, traceId ?? result.traceId);
      return true;
    },

    async catchUp(minutes) {
      const since = now() - minutes * 60_000;
      // The worker indexes every result by scoredAt (resultKeys.recent, the last 7 days): the window is one range
      // read. Results written before that index existed are not in it, so while its oldest entry is younger than
      // the window (an upgrade, a new site), the worklist is read whole as well (it is ordered by priority, then
      // probability, then arrival, so no range of it is a time window).
      const uids = new Set(await redis.zrangebyscore(resultKeys.recent(), since, '+inf'));
      const oldest = await redis.zrange(resultKeys.recent(), '0', '0', 'WITHSCORES');
      if (oldest.length === 0 || Number(oldest[1]) > since) {
        for (const priority of PRIORITIES) {
          const [from, to] = worklistClassRange(priority);
          for (const uid of await redis.zrangebyscore(resultKeys.worklist(), from, to)) uids.add(uid);
        }
      }
      let count = 0;
      let retried = 0;
      const unreadable: string[] = [];
      for (const uid of uids) {
        let result: StudyResult | null;
        try {
          result = await readResult(redis, uid);
        } catch (err) {
          // One unreadable result must not stop the others (nor start()): left out, named by UID.
          if (!(err instanceof PermanentDeliveryError)) throw err;
          unreadable.push(uid);
          continue;
        }
        if (!result || result.scoredAt < since) continue;
        // Versions already delivered (their completed jobs are kept 24 h) are no-ops here.
        // Under the trace id of the job that scored it, as on its scored event; 'catch-up' for an older result.
        const queued = await outbound.enqueue(result, result.traceId ?? 'catch-up');
        for (const adapter of queued) if (await retryExhausted(adapter, resultKey(result).jobId)) retried += 1;
        count += 1;
      }
      if (retried > 0) logger.info({ retried, minutes }, 'outbound catch-up: deliveries that had used all their attempts retried');
      if (unreadable.length > 0) {
        for (const a of adapters) metrics.skipped.inc({ adapter: a.name, reason: RESULT_UNREADABLE }, unreadable.length);
        logger.warn({ studies: unreadable }, 'outbound catch-up: stored result unreadable, not enqueued (score the study again)');
      }
      return count;
    },

    async start() {
      if (running) return;
      running = true;
      // The producer connection has no offline queue (fail fast): wait until it is up before anything uses it.
      if (redis.status !== 'ready') await once(redis, 'ready');
      // dcmjs-dimse logs every association through a global loglevel logger; ours records outcomes per delivery.
      if (config.sr) dimseLog.setLevel('silent');
      for (const adapter of adapters) {
        const global = GLOBAL_CONCURRENCY[adapter.name];
        // Idempotent: every replica sets the same value at start.
        if (global !== undefined) await queues.get(adapter.name)!.setGlobalConcurrency(global);
        const worker = new Worker<OutboundJobData, JobOutcome>(OUTBOUND_QUEUES[adapter.name], (job) => runJob(adapter, job), {
          connection: workerRedis,
          concurrency: CONCURRENCY[adapter.name],
          autorun: false,
          settings: { backoffStrategy: outboundBackoff },
        });
        handleWorkerErrors(worker, (err, refusal) =>
          refusal
            ? logger.error({ adapter: adapter.name, err: err.message, pausedMs: WRITES_REFUSED_PAUSE_MS }, `${refusal}: outbound jobs paused`)
            : redisErrors.error(`outbound ${adapter.name} worker`, err),
        );
        workers.push(worker);
        void worker.run().catch((err: Error) => logger.error({ adapter: adapter.name, err: err.message }, 'outbound worker stopped'));
      }
      if (deps.subscribe !== false) {
        // Pub/sub is at-most-once: what is written while no API runs is caught up below, within the window.
        subscriber = connectRedis(deps.redisUrl, 'worker');
        subscriber.on('error', (err) => redisErrors.error('outbound subscriber', err));
        subscriber.on('message', (_channel: string, uid: string) => {
          outbound.enqueueStudy(uid).catch((err: Error) => logger.error({ StudyInstanceUID: uid, err: err.message }, 'outbound enqueue failed'));
        });
        await subscriber.subscribe(resultKeys.scoredChannel());
      }
      if (config.catchUpMinutes > 0) {
        const count = await outbound.catchUp(config.catchUpMinutes);
        if (count > 0) logger.info({ count, minutes: config.catchUpMinutes }, 'outbound catch-up: recent results re-enqueued');
      }
    },

    async close() {
      if (subscriber) await subscriber.quit().catch(() => undefined);
      await Promise.all(workers.map((w) => w.close()));
      await Promise.all(adapters.map((a) => a.close()));
      await Promise.all([...queues.values(), ...deadLetters.values()].map((q) => q.close()));
      await Promise.all([redis.quit(), workerRedis.quit()].map((p) => p.catch(() => undefined)));
    },

    queue(adapter) {
      const q = queues.get(adapter);
      if (!q) throw new Error(`outbound adapter ${adapter} is not configured`);
      return q;
    },
    deadLetterQueue(adapter) {
      const q = deadLetters.get(adapter);
      if (!q) throw new Error(`outbound adapter ${adapter} is not configured`);
      return q;
    },
  };
  return outbound;
}
