// The study queue's consumer side (Medplum's queue-module shape): initStudyWorker(config, deps) returns
// {queue, worker}; execStudyJob(job, deps) is the plain function BullMQ calls and tests call directly.
// A job: status 'scoring' -> pipeline -> one atomic result write (store.ts). Failures: permanent ones end the
// job with UnrecoverableError, a dead-letter copy and status 'failed'/'unsupported'; transient ones are retried
// with exponential backoff; the last failed attempt is dead-lettered too. A worker stopping with jobs still running
// hands them back to the queue (StudyWorker.handBack) instead of leaving them to stall.
import path from 'node:path';
import { DelayedError, Queue, UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../shared/logger';
import { UNREADABLE } from '../../shared/result-schema';
import { readRefusals } from '../../shared/refusals';
import { handleWorkerErrors, WRITES_REFUSED_PAUSE_MS, type WriteRefusals } from '../../shared/write-refusals';
import { redisOutageLog, type RedisOutageLog } from '../../shared/redis-outage';
import { assertUid, FINALISE_STUDY_JOB, SCORE_STUDY_JOB, STUDY_DEAD_LETTER_QUEUE, STUDY_QUEUE, studyJobData, type StudyJobData } from '../../shared/studies';
import type { WorkerConfig } from './config';
import { asPermanent, PermanentStudyError } from './errors';
import { countFlags, type WorkerMetrics } from './metrics';
import { finalResult } from './finalise';
import { scoreStudyFolder, type PartialPolicy, type PipelineDeps } from './pipeline';
import type { QuerySource } from './query-vectors';
import { markStudyFailed, readResult, setStudyStatus, studyMeta, writeFinalResult, writeResult } from './store';

/** What a dead-lettered study job carries: enough for an operator (and the API) to see why, no patient identity. */
export interface DeadLetterData extends StudyJobData {
  jobId: string;
  status: 'failed' | 'unsupported';
  reason: string;
  message: string;
  attempts: number;
  failedAt: number;
}
export const DEAD_LETTER_JOB = 'dead-letter';

export interface StudyJobDeps {
  redis: Redis;
  /** Absolute DATA_DIR; job storage keys are relative to it. */
  dataDir: string;
  pipeline: PipelineDeps;
  queries: QuerySource;
  deadLetters: Queue<DeadLetterData>;
  metrics: WorkerMetrics;
  log: Logger;
  /** Used when the producer's job options set no attempts: the worker then retries on its own schedule. */
  retry: { attempts: number; backoffMs: number };
  /** How long a partial study's result stays provisional (WORKER_PARTIAL_WAIT_SECONDS); absent: final at once. */
  partial?: PartialPolicy;
  /** Queues the check that makes a provisional result final at `at` (initStudyWorker adds a delayed job). */
  scheduleFinalise?: (job: StudyJobData & { resultVersion: number }, at: number) => Promise<void>;
  /** Where Redis connection errors go, once per outage (shared/redis-outage.ts); default one of this worker's own. */
  redisErrors?: RedisOutageLog;
  /** How long a failed study's record is retried while Redis refuses it (default DEAD_LETTER_PATIENCE_MS). */
  deadLetterPatienceMs?: number;
  /** Whether this worker has handed the job back to the queue (it is stopping): the job then writes and records nothing more. */
  handedBack?: (jobId: string) => boolean;
  /**
   * Called before the job's result write: false when the job was handed back (it writes nothing); true marks the
   * job as writing, and a hand-back from then on leaves it to finish.
   */
  beginWrite?: (jobId: string) => boolean;
}

export interface StudyJobReturn {
  priority: string;
  flagged: string[];
  totalMs: number;
}

function studyDir(dataDir: string, storageKey: string): string {
  const dir = path.resolve(dataDir, storageKey);
  // Job data comes from Redis: never let it point outside the store.
  if (!dir.startsWith(path.resolve(dataDir) + path.sep)) throw new PermanentStudyError('storageKey lies outside DATA_DIR', 'bad-job-data');
  return dir;
}

/** Attempt number (1-based) and limit for this run, whoever owns the retry schedule. */
function attemptInfo(job: Job<StudyJobData>, deps: StudyJobDeps): { attempt: number; attempts: number; producerRetries: boolean } {
  const producerRetries = (job.opts.attempts ?? 1) > 1;
  return producerRetries
    ? { attempt: job.attemptsMade + 1, attempts: job.opts.attempts!, producerRetries }
    : // attemptsStarted counts every pickup, including after a stall or a worker-scheduled delay.
      { attempt: Math.max(1, job.attemptsStarted), attempts: deps.retry.attempts, producerRetries };
}

export async function deadLetter(
  deps: Pick<StudyJobDeps, 'deadLetters' | 'metrics' | 'redis'>,
  job: Job<StudyJobData>,
  err: PermanentStudyError,
  attempts: number,
): Promise<void> {
  const { StudyInstanceUID, storageKey, traceId } = job.data;
  // jobId derived from the study job: a re-delivered failure does not add a second copy.
  await deps.deadLetters.add(
    DEAD_LETTER_JOB,
    {
      StudyInstanceUID, storageKey, traceId, jobId: String(job.id), status: err.outcome, reason: err.reason,
      message: err.message.slice(0, 1000), attempts, failedAt: Date.now(),
    },
    { jobId: `dead-${job.id}` },
  );
  await markStudyFailed(deps.redis, StudyInstanceUID, err.outcome, `${err.reason}: ${err.message}`);
  deps.metrics.deadLetters.inc({ reason: err.reason });
  deps.metrics.jobs.inc({ outcome: err.outcome });
}

/** How long a failure's record (deadLetter) is retried while Redis refuses it before the job gives up anyway. */
export const DEAD_LETTER_PATIENCE_MS = 10 * 60_000;

/**
 * deadLetter, retried (0.5 s, doubling to 10 s) while Redis refuses it: out of memory under maxmemory with
 * noeviction ("OOM command not allowed"), or not reachable. The job's attempts are spent by then (Redis refused the
 * job's own writes too), so failing here as well left the study 'queued' or 'scoring' for ever, in no dead-letter
 * queue and no failed list, while BullMQ's own scripts still marked the job failed. The job keeps its slot meanwhile;
 * past `patienceMs`, or once the worker's connection is closed (shutdown), the error is thrown as before.
 */
export async function recordFailure(
  deps: Pick<StudyJobDeps, 'deadLetters' | 'metrics' | 'redis' | 'log'>,
  job: Job<StudyJobData>,
  err: PermanentStudyError,
  attempts: number,
  patienceMs = DEAD_LETTER_PATIENCE_MS,
): Promise<void> {
  const deadline = Date.now() + patienceMs;
  for (let wait = 500; ; wait = Math.min(wait * 2, 10_000)) {
    try {
      return await deadLetter(deps, job, err, attempts);
    } catch (writeErr) {
      // Past the patience, or the worker closed its connection (shutdown): nothing more to wait for.
      if (Date.now() + wait > deadline || deps.redis.status === 'end') throw writeErr;
      deps.log.error(
        { err: writeErr, StudyInstanceUID: job.data.StudyInstanceUID, jobId: job.id, retryInMs: wait },
        'recording the study\'s failure failed (Redis refuses writes?): retrying, the study is not lost',
      );
      await new Promise((r) => setTimeout(r, wait).unref());
    }
  }
}

export async function execStudyJob(job: Job<StudyJobData>, deps: StudyJobDeps, token?: string): Promise<StudyJobReturn> {
  const { StudyInstanceUID: uid, storageKey, traceId } = job.data;
  const { attempt, attempts, producerRetries } = attemptInfo(job, deps);
  const log = deps.log.child({ StudyInstanceUID: uid, traceId, jobId: job.id, attempt });
  log.info({ queuedMs: Date.now() - job.timestamp }, 'scoring study');
  try {
    assertUid(uid, 'StudyInstanceUID');
    await setStudyStatus(deps.redis, uid, 'scoring');
    const dir = studyDir(deps.dataDir, storageKey);
    const [querySet, meta, refused] = await Promise.all([deps.queries.current(), studyMeta(deps.redis, uid), readRefusals(deps.redis, uid)]);
    const { result, vectors, norms } = await scoreStudyFolder(deps.pipeline, dir, querySet, { StudyInstanceUID: uid, ...meta, refused }, deps.partial);
    // The result carries the job's trace id, so its deliveries (HL7, SR, webhook) log under the same one.
    if (traceId) result.traceId = traceId;
    // Handed back while scoring: the worker that takes the job next writes the result (once, as one version).
    if (deps.beginWrite && !deps.beginWrite(String(job.id))) throw new WaitingError();
    await writeResult(deps.redis, result, vectors, norms);
    if (result.provisional && deps.scheduleFinalise) {
      await deps.scheduleFinalise({ StudyInstanceUID: uid, storageKey, traceId, resultVersion: result.resultVersion! }, result.provisional.until);
    }

    const m = deps.metrics;
    for (const stage of ['decode', 'preprocess', 'inference', 'scoring', 'total'] as const) {
      m.stageSeconds.observe({ stage }, result.timingsMs[stage] / 1000);
    }
    // Only studies with a flagged finding are localised.
    if (result.timingsMs.localise !== undefined) m.stageSeconds.observe({ stage: 'localise' }, result.timingsMs.localise / 1000);
    m.jobs.inc({ outcome: 'scored' });
    m.timeToResult.observe({ priority: result.priority }, Math.max(0, result.scoredAt - result.receivedAt) / 1000);
    const flagged = result.findings.filter((f) => f.flagged);
    countFlags(m.flags, result.findings);
    log.info(
      {
        priority: result.priority, flagged: flagged.map((f) => f.queryId), sequencesMissing: result.sequencesMissing, resultVersion: result.resultVersion,
        ...(refused.length > 0 ? { refusedAtIntake: refused.reduce((n, r) => n + r.images, 0) } : {}),
        ...(result.provisional ? { provisionalUntil: result.provisional.until, waitingFor: result.provisional.waitingFor } : {}),
        timingsMs: result.timingsMs, execMs: Date.now() - (job.processedOn ?? Date.now()),
      },
      'study scored',
    );
    return { priority: result.priority, flagged: flagged.map((f) => f.queryId), totalMs: result.timingsMs.total };
  } catch (err) {
    // Handed back (loading interrupted by the stop, or the check above): the job waits in the queue, its attempt
    // not spent; WaitingError tells BullMQ it has moved already.
    if (deps.handedBack?.(String(job.id))) {
      log.info('worker stopping: study handed back to the queue, to be scored by the next worker');
      throw new WaitingError();
    }
    const permanent = asPermanent(err);
    if (permanent) {
      log.warn({ reason: permanent.reason, status: permanent.outcome, err: permanent.message }, 'study cannot be scored: dead-lettered');
      await recordFailure(deps, job, permanent, attempt, deps.deadLetterPatienceMs);
      throw new UnrecoverableError(`${permanent.reason}: ${permanent.message}`);
    }
    if (attempt >= attempts) {
      const last = new PermanentStudyError(`gave up after ${attempt} attempts: ${(err as Error).message}`, 'retries-exhausted', 'failed', { cause: err });
      log.error({ err }, 'study failed on its last attempt: dead-lettered');
      await recordFailure(deps, job, last, attempt, deps.deadLetterPatienceMs);
      throw new UnrecoverableError(last.message);
    }
    deps.metrics.jobs.inc({ outcome: 'retried' });
    await setStudyStatus(deps.redis, uid, 'queued').catch(() => undefined);
    if (producerRetries) {
      log.warn({ err, attempts }, 'transient failure: BullMQ retries with the job\'s backoff');
      throw err;
    }
    const delay = deps.retry.backoffMs * 2 ** (attempt - 1);
    log.warn({ err, attempts, retryInMs: delay }, 'transient failure: retrying with backoff');
    await job.moveToDelayed(Date.now() + delay, token);
    throw new DelayedError();
  }
}

export type FinaliseOutcome = 'finalised' | 'superseded' | 'no-result' | 'unreadable';

/**
 * A provisional result's wait is over: if it is still the study's latest result (no new instance arrived and
 * nothing re-scored it), its final version is written (finalise.ts) and announced like any result, so outbound
 * sends it as a correction. Otherwise nothing: the newer result has its own wait, or is final. A stored result that
 * cannot be read is left as it is (the API lists it as unreadable; an administrator has the study scored again).
 */
export async function execFinaliseJob(job: Pick<Job<StudyJobData>, 'data'>, deps: Pick<StudyJobDeps, 'redis' | 'log'>): Promise<FinaliseOutcome> {
  const { StudyInstanceUID: uid, resultVersion, traceId } = job.data;
  assertUid(uid, 'StudyInstanceUID');
  const current = await readResult(deps.redis, uid);
  if (!current) return 'no-result';
  if (current === UNREADABLE) {
    deps.log.warn({ StudyInstanceUID: uid, traceId, resultVersion }, 'stored result unreadable: not finalised; score the study again');
    return 'unreadable';
  }
  if (resultVersion === undefined || current.resultVersion !== resultVersion || !current.provisional) return 'superseded';
  const final = finalResult(current, Date.now());
  const written = await writeFinalResult(deps.redis, resultVersion, final);
  deps.log.info(
    { StudyInstanceUID: uid, traceId, resultVersion: resultVersion + 1, priority: final.priority, missing: final.incomplete?.missing, written },
    written ? 'provisional result made final: the missing sequences did not arrive' : 'provisional result changed meanwhile: not finalised',
  );
  return written ? 'finalised' : 'superseded';
}

export interface StudyWorker {
  queue: Queue<StudyJobData>;
  worker: Worker<StudyJobData, StudyJobReturn>;
  /**
   * For a stop past SHUTDOWN_TIMEOUT_SECONDS: puts every scoring job this worker still runs back at the head of the
   * queue, unspent. Left to its lock instead, each such job counted as stalled, and one stopped twice (two rolling
   * updates) was dead-lettered as if it had crashed its worker twice; one whose loading the stop interrupted spent
   * an attempt. A job that crashes its worker still stalls and is dead-lettered on its second stall. A job already
   * writing its result is left to finish. Returns how many were handed back.
   */
  handBack(): Promise<number>;
  /** Whether Redis refuses the writes that fetching a job needs, for now (readiness). */
  refusals: WriteRefusals;
}

/** BullMQ's error for a lock it could not renew, the job id after it (bullmq/dist/cjs/classes/lock-manager.js). */
const LOCK_RENEWAL_FAILED = 'could not renew lock for job ';

export function initStudyWorker(config: WorkerConfig, deps: StudyJobDeps): StudyWorker {
  const redisErrors = deps.redisErrors ?? redisOutageLog(deps.log);
  if (!deps.redisErrors) redisErrors.watch(deps.redis);
  const connection = deps.redis;
  const queue = new Queue<StudyJobData>(STUDY_QUEUE, { connection });
  const running = new Map<string, { job: Job<StudyJobData>; token?: string }>();
  const handedBack = new Set<string>();
  // Jobs past the hand-back point: their result is being written, so they finish here (handBack leaves them).
  const writing = new Set<string>();
  const withFinalise: StudyJobDeps = {
    ...deps,
    handedBack: (id) => handedBack.has(id),
    beginWrite: (id) => {
      if (handedBack.has(id)) return false;
      writing.add(id);
      return true;
    },
    // One delayed job per provisional version: a re-delivered scoring job adds nothing twice.
    scheduleFinalise: deps.scheduleFinalise ?? (async (data, at) => {
      await queue.add(FINALISE_STUDY_JOB, { ...studyJobData(data.StudyInstanceUID, data.traceId), resultVersion: data.resultVersion }, {
        jobId: `finalise-${data.StudyInstanceUID}-v${data.resultVersion}`,
        delay: Math.max(0, at - Date.now()),
        attempts: 5,
        backoff: { type: 'exponential', delay: 2000 },
        removeOnComplete: { count: 1000 },
        removeOnFail: { count: 1000 },
      });
    }),
  };
  const worker = new Worker<StudyJobData, StudyJobReturn>(
    STUDY_QUEUE,
    async (job, token) => {
      if (job.name === FINALISE_STUDY_JOB) {
        const outcome = await execFinaliseJob(job, deps);
        return { priority: outcome, flagged: [], totalMs: 0 };
      }
      if (job.name !== SCORE_STUDY_JOB) throw new UnrecoverableError(`unknown job name ${job.name}`);
      running.set(String(job.id), { job, token });
      try {
        return await execStudyJob(job, withFinalise, token);
      } finally {
        running.delete(String(job.id));
        writing.delete(String(job.id));
      }
    },
    {
      connection,
      concurrency: config.WORKER_CONCURRENCY,
      lockDuration: config.WORKER_LOCK_DURATION_MS,
      stalledInterval: config.WORKER_STALLED_INTERVAL_MS,
      maxStalledCount: 1,
      autorun: false,
    },
  );
  const refusals = handleWorkerErrors(worker, (err, refusal) => {
    if (refusal) return deps.log.error({ err: err.message, pausedMs: WRITES_REFUSED_PAUSE_MS }, `${refusal}: fetching study jobs paused`);
    // BullMQ renews a job's lock until its processor returns; a job handed back has none (expected, not a Redis fault).
    if (handedBack.has(err.message.slice(LOCK_RENEWAL_FAILED.length)) && err.message.startsWith(LOCK_RENEWAL_FAILED)) return;
    redisErrors.error('study worker', err);
  });
  queue.on('error', (err) => redisErrors.error('study queue', err));
  worker.on('stalled', (jobId) => deps.log.warn({ jobId }, 'study job stalled (its worker died or blocked): retried'));
  worker.on('failed', (job, err) => {
    // A job that stalled too often fails without our processor running: dead-letter it here.
    if (!job || !/stalled more than/i.test(err.message)) return;
    const e = new PermanentStudyError(err.message, 'stalled', 'failed');
    recordFailure(deps, job, e, job.attemptsStarted, deps.deadLetterPatienceMs).catch((dlErr: unknown) => deps.log.error({ err: dlErr }, 'dead-lettering a stalled job failed'));
  });
  const handBack = async (): Promise<number> => {
    let n = 0;
    for (const [id, { job, token }] of running) {
      // Its result is written or being written: handed back, the study went 'queued' over 'scored' and the next
      // worker scored it again (a second result version, a correction sent), while this one's completion failed on
      // the lock the hand-back had removed. It finishes within the close's last step instead.
      if (writing.has(id)) continue;
      handedBack.add(id);
      try {
        // The status first: the next worker may take the job the moment it is back, and sets 'scoring' itself.
        await setStudyStatus(deps.redis, job.data.StudyInstanceUID, 'queued');
        await job.moveToWait(token);
        n += 1;
      } catch (err) {
        deps.log.warn({ jobId: id, err: (err as Error).message }, 'handing a study job back failed: it is retried once its lock lapses');
      }
    }
    return n;
  };
  return { queue, worker, handBack, refusals };
}

/** BullMQ's delayed set scores a job by the time it is due (ms epoch) times 0x1000 plus a counter (getDelayedScore.lua). */
const DELAYED_SCORE_UNIT = 0x1000;

/**
 * Samples the study queue's depth by state for the metrics scrape. A delayed job past its quiet period is ready:
 * BullMQ moves it to waiting only when a worker asks for its next job, so while every worker slot is held (scoring
 * hung, or far slower than arrivals) the backlog stayed "delayed" and nothing read as waiting. It counts as waiting.
 * Due is read from the delayed set's score, the time BullMQ itself promotes the job at: a job's timestamp plus its
 * quiet period is long past for one waiting out a retry's backoff, which is not ready. `redis`: the queue's
 * connection (BullMQ 6's Queue keeps its client on a backend with no public accessor). A count and one read, whatever the backlog.
 */
export async function sampleQueueDepth(queue: Queue, metrics: WorkerMetrics, redis: Redis): Promise<void> {
  const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'prioritized');
  const now = Date.now();
  // Due at or before now: scheduled strictly before now + 1 ms, as promoteDelayedJobs.lua promotes them.
  const due = Math.min(counts.delayed ?? 0, await queue.getDelayedCount(now + 1));
  const [, earliest] = due > 0 ? await redis.zrange(queue.toKey('delayed'), '0', '0', 'WITHSCORES') : [];
  const firstDue = earliest === undefined ? undefined : Math.floor(Number(earliest) / DELAYED_SCORE_UNIT);
  counts.waiting = (counts.waiting ?? 0) + due;
  counts.delayed = (counts.delayed ?? 0) - due;
  for (const [state, n] of Object.entries(counts)) metrics.queueDepth.set({ state }, n);
  // A job became ready at its timestamp plus its delay (the quiet period).
  const readyAt = (j: Job) => j.timestamp + (j.opts.delay ?? 0);
  const [waiting] = await queue.getJobs(['waiting'], 0, 0, true);
  const [prioritized] = await queue.getJobs(['prioritized'], 0, 0, true);
  const readySince = [...[waiting, prioritized].filter(Boolean).map(readyAt), ...(firstDue === undefined ? [] : [firstDue])];
  metrics.oldestJobAge.set(readySince.length ? Math.max(0, now - Math.min(...readySince)) / 1000 : 0);
}

export { STUDY_DEAD_LETTER_QUEUE };
