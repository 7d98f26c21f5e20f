// Study assembly, held in Redis rather than in this process: each new instance is recorded atomically (instance
// hash, study hash, pending set) and pushes back the study's BullMQ job by the quiet period (deduplication in
// debounce mode: replace a delayed job, keep the last add while one is active). A study therefore gets one job
// after STUDY_QUIET_SECONDS without new instances, whichever listener received them and across restarts.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import {
  isUid,
  keys,
  PURGE_FENCE_MS,
  PURGED_FIELD,
  PURGING_FIELD,
  SCORE_STUDY_JOB,
  STUDY_JOB_OPTIONS,
  studyJobData,
  studyStorageKey,
  type StudyJobData,
  type StudyJobOptions,
} from '../../shared/studies';
import { recordRefusal, type RecordOutcome, type Refusal } from '../../shared/refusals';
import { BackendUnavailableError, StudyPurgingError } from './errors';

/**
 * Records one arrival. Returns 1 when the SOP Instance UID is new for the study; 0 when it was already recorded
 * (the instance counters stay as they are). With ARGV[8] = '1' (the caller has just written the file because it
 * was not in the store) an existing record still marks the study received and pending again: a crash between
 * this record and the directory fsync can leave a record whose file is gone, and the resent instance must be
 * scored. Returns -1, recording nothing, while retention is deleting the study's instances (PURGING_FIELD).
 * KEYS: instances hash, study hash, pending set. ARGV: SOPInstanceUID, instance storage key, now (ms), bytes,
 * StudyInstanceUID, study storage key, AccessionNumber (may be empty), file written ('1' or ''), purging field,
 * purge fence (ms).
 */
const RECORD_ARRIVAL = `
local purging = tonumber(redis.call('HGET', KEYS[2], ARGV[9]))
if purging and tonumber(ARGV[3]) - purging < tonumber(ARGV[10]) then return -1 end
local created = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
if created == 0 and ARGV[8] ~= '1' then return 0 end
redis.call('HSETNX', KEYS[2], 'firstReceivedAt', ARGV[3])
redis.call('HSET', KEYS[2], 'StudyInstanceUID', ARGV[5], 'storageKey', ARGV[6], 'lastReceivedAt', ARGV[3])
-- A study whose job is already held stays 'queued'; any other stage (new, scoring, scored...) goes back to 'received'.
if redis.call('HGET', KEYS[2], 'status') ~= 'queued' then redis.call('HSET', KEYS[2], 'status', 'received') end
if created == 1 then
  redis.call('HINCRBY', KEYS[2], 'instances', 1)
  redis.call('HINCRBY', KEYS[2], 'bytes', ARGV[4])
end
redis.call('SADD', KEYS[3], ARGV[5])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[2], 'AccessionNumber', ARGV[7]) end
return created
`;

/** 1 when recorded, 0 when not, -1 while retention purges the study. KEYS: instances, study. ARGV as RECORD_ARRIVAL's 1, 3, 9, 10. */
const IS_RECORDED = `
local purging = tonumber(redis.call('HGET', KEYS[2], ARGV[3]))
if purging and tonumber(ARGV[2]) - purging < tonumber(ARGV[4]) then return -1 end
return redis.call('HEXISTS', KEYS[1], ARGV[1])
`;

/** 'received' -> 'queued' once a job holds the study; later stages (scoring, scored...) are the worker's to set. */
const MARK_QUEUED = `
if redis.call('HGET', KEYS[1], 'status') == 'received' then
  redis.call('HSET', KEYS[1], 'status', 'queued', 'queuedAt', ARGV[1], 'jobId', ARGV[2])
  return 1
end
return 0
`;

/**
 * Makes a study pending again for rescore(): 1 when made pending; 0, changing nothing, when retention deleted its
 * instances (its purged mark, and no instance recorded since: what a replay wrote back is not the study) or -1 while
 * retention is deleting them (the instances recorded are going). KEYS: study hash, instances hash, pending set.
 * ARGV: StudyInstanceUID, now (ms), purged field, purging field, purge fence (ms).
 */
const MAKE_PENDING = `
local h = redis.call('HMGET', KEYS[1], ARGV[3], ARGV[4])
local purging = tonumber(h[2])
if purging and tonumber(ARGV[2]) - purging < tonumber(ARGV[5]) then return -1 end
if h[1] and redis.call('HLEN', KEYS[2]) == 0 then return 0 end
redis.call('SADD', KEYS[3], ARGV[1])
return 1
`;

type RedisWithArrival = Redis & {
  ntRecordArrival(instances: string, study: string, pending: string, ...args: (string | number)[]): Promise<number>;
  ntMarkQueued(study: string, now: number, jobId: string): Promise<number>;
  ntIsRecorded(instances: string, study: string, SOPInstanceUID: string, now: number, field: string, fenceMs: number): Promise<number>;
  ntMakePending(study: string, instances: string, pending: string, uid: string, now: number, purgedField: string, purgingField: string, fenceMs: number): Promise<number>;
};

export interface Arrival {
  StudyInstanceUID: string;
  SOPInstanceUID: string;
  /** Relative to DATA_DIR. */
  storageKey: string;
  bytes: number;
  AccessionNumber?: string;
  /**
   * The caller has just written the file because the store did not hold it. An existing record then still makes
   * the study pending again (see RECORD_ARRIVAL), so the instance is scored.
   */
  fileWritten?: boolean;
}

export type ScheduleTrigger = 'arrival' | 'release' | 'restart' | 'duplicate';

export interface StudyAssemblerOptions {
  redis: Redis;
  queue: Queue<StudyJobData>;
  quietMs: number;
  /** Called when a background schedule failed; the study stays pending and is retried. */
  onScheduleError?: (StudyInstanceUID: string, err: Error) => void;
  /** Study job retry policy; the worker may fail a job permanently with UnrecoverableError. */
  jobOptions?: StudyJobOptions;
  onScheduled?: (trigger: ScheduleTrigger) => void;
  /**
   * Let an arrival skip its add when this process added the study's delayed job less than `slack` ago (see
   * scheduleSlackMs). Turn off where something else may pull a job earlier (STUDY_COMPLETE_ON_RELEASE).
   */
  throttle?: boolean;
}

/**
 * Each add costs a BullMQ script (~0.4 ms of CPU here and a Redis call). An add that created a delayed job at t
 * fires it at t + quiet + slack, so an arrival recorded before t + slack is already followed by `quiet` of waiting
 * and needs no add of its own. Slack is small next to the quiet period: min(1 s, quiet / 4).
 */
export function scheduleSlackMs(quietMs: number): number {
  return Math.min(1000, Math.floor(quietMs / 4));
}

function backendError(err: unknown): BackendUnavailableError {
  return new BackendUnavailableError(`redis: ${(err as Error).message}`, { cause: err });
}

interface Debounce {
  running: Promise<void>;
  /** The latest request that arrived while `running` was in flight; one follow-up add covers all of them. */
  again?: { traceId: string; recordedAt: number };
}

const RETRY_MS = 1000;

export class StudyAssembler {
  private readonly redis: RedisWithArrival;
  private readonly debounces = new Map<string, Debounce>();
  private readonly retries = new Set<NodeJS.Timeout>();
  private closed = false;
  /** Study -> when this process's last add that created a delayed job started. */
  private readonly lastCreated = new Map<string, number>();
  private readonly slackMs: number;

  constructor(private readonly options: StudyAssemblerOptions) {
    this.redis = options.redis as RedisWithArrival;
    this.slackMs = options.throttle === false ? 0 : scheduleSlackMs(options.quietMs);
    if (typeof this.redis.ntRecordArrival !== 'function') {
      this.redis.defineCommand('ntRecordArrival', { numberOfKeys: 3, lua: RECORD_ARRIVAL });
      this.redis.defineCommand('ntMarkQueued', { numberOfKeys: 1, lua: MARK_QUEUED });
      this.redis.defineCommand('ntIsRecorded', { numberOfKeys: 2, lua: IS_RECORDED });
      this.redis.defineCommand('ntMakePending', { numberOfKeys: 3, lua: MAKE_PENDING });
    }
  }

  /**
   * Whether this SOP Instance UID is already recorded for the study (checked before writing the file again).
   * Throws StudyPurgingError while retention deletes the study's instances.
   */
  async isRecorded(StudyInstanceUID: string, SOPInstanceUID: string): Promise<boolean> {
    let recorded: number;
    try {
      recorded = await this.redis.ntIsRecorded(keys.studyInstances(StudyInstanceUID), keys.study(StudyInstanceUID), SOPInstanceUID, Date.now(), PURGING_FIELD, PURGE_FENCE_MS);
    } catch (err) {
      throw backendError(err);
    }
    if (recorded < 0) throw new StudyPurgingError('retention is deleting this study\'s stored instances');
    return recorded === 1;
  }

  /** Records an instance refused with a permanent failure for its study's result (shared/refusals.ts). */
  recordRefusal(refusal: Refusal): Promise<RecordOutcome> {
    return recordRefusal(this.redis, refusal);
  }

  /**
   * Records an instance; false means it was recorded before (another copy, or this one before a crash that lost
   * its file). With `fileWritten` the study is pending again either way and needs scheduling. Throws
   * StudyPurgingError (nothing recorded) while retention deletes the study's instances.
   */
  async recordArrival(arrival: Arrival): Promise<boolean> {
    let created: number;
    try {
      created = await this.batchArrival(arrival);
    } catch (err) {
      throw backendError(err);
    }
    if (created < 0) throw new StudyPurgingError('retention is deleting this study\'s stored instances');
    return created === 1;
  }

  /**
   * Group commit of arrival records: the records asked for while the event loop handles one batch of socket
   * events (several associations' instances finishing together) go to Redis as one pipeline, sent from
   * setImmediate. The record runs beside the directory fsync, which takes far longer, so the wait adds no latency.
   */
  private batchArrival(arrival: Arrival): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.arrivals.push({ arrival, resolve, reject });
      if (this.arrivals.length === 1) setImmediate(() => this.flushArrivals());
    });
  }

  private readonly arrivals: Array<{ arrival: Arrival; resolve: (created: number) => void; reject: (err: unknown) => void }> = [];

  private flushArrivals(): void {
    const batch = this.arrivals.splice(0);
    if (batch.length === 1) {
      this.redis.ntRecordArrival(...this.arrivalArgs(batch[0].arrival)).then(batch[0].resolve, batch[0].reject);
      return;
    }
    const pipeline = this.redis.pipeline() as unknown as { ntRecordArrival(...args: (string | number)[]): void; exec(): Promise<Array<[Error | null, unknown]> | null> };
    for (const { arrival } of batch) pipeline.ntRecordArrival(...this.arrivalArgs(arrival));
    pipeline.exec().then(
      (results) => {
        batch.forEach((b, i) => {
          const [err, value] = results?.[i] ?? [new Error('no reply'), undefined];
          if (err) b.reject(err);
          else b.resolve(value as number);
        });
      },
      (err: unknown) => batch.forEach((b) => b.reject(err)),
    );
  }

  private arrivalArgs(arrival: Arrival): [string, string, string, ...(string | number)[]] {
    return [
      keys.studyInstances(arrival.StudyInstanceUID),
      keys.study(arrival.StudyInstanceUID),
      keys.pendingStudies(),
      arrival.SOPInstanceUID,
      arrival.storageKey,
      Date.now(),
      arrival.bytes,
      arrival.StudyInstanceUID,
      studyStorageKey(arrival.StudyInstanceUID),
      arrival.AccessionNumber ?? '',
      arrival.fileWritten ? '1' : '',
      PURGING_FIELD,
      PURGE_FENCE_MS,
    ];
  }

  /**
   * Pushes the study's job back by the quiet period (or `delayMs`). While the job waits in delayed state it is
   * replaced; while it is active, the add is kept and becomes the next job when the active one finishes, so an
   * instance arriving during scoring is scored too. Restart and duplicate triggers do not queue a second job
   * behind an active one: they only make sure a job exists.
   */
  async schedule(StudyInstanceUID: string, traceId: string, trigger: ScheduleTrigger, delayMs?: number, follow = false): Promise<string | undefined> {
    const data = studyJobData(StudyInstanceUID, traceId);
    const followActive = follow || trigger === 'arrival' || trigger === 'release';
    // Our own job id tells whether this add created the job: a deduplicated add returns the existing job's id.
    const jobId = `study-${randomUUID()}`;
    const startedAt = Date.now();
    try {
      const job = await this.options.queue.add(SCORE_STUDY_JOB, data, {
        ...(this.options.jobOptions ?? STUDY_JOB_OPTIONS),
        jobId,
        delay: delayMs ?? this.options.quietMs + this.slackMs,
        deduplication: { id: StudyInstanceUID, extend: true, replace: true, keepLastIfActive: followActive },
      });
      if (job.id === jobId && delayMs === undefined) this.lastCreated.set(StudyInstanceUID, startedAt);
      else this.lastCreated.delete(StudyInstanceUID);
      if (job.id && job.id !== jobId && followActive) await this.promoteHeld(job.id);
      if (this.lastCreated.size > 10_000) this.lastCreated.clear();
      // Counted once per study each time a job comes to hold it (received -> queued), not per instance that moves
      // the job along within the quiet period.
      if ((await this.redis.ntMarkQueued(keys.study(StudyInstanceUID), Date.now(), job.id ?? '')) === 1) this.options.onScheduled?.(trigger);
      return job.id;
    } catch (err) {
      this.lastCreated.delete(StudyInstanceUID);
      throw backendError(err);
    }
  }

  /**
   * A study re-scored in bulk waits behind new arrivals (tools/rescore.ts: a BullMQ priority), and a deduplicated add
   * cannot replace a job that is waiting. New instances of the study make it an arrival again: its job loses the
   * priority, so it is scored in arrival order rather than after the bulk run. One HGET when nothing is to change.
   */
  private async promoteHeld(id: string): Promise<void> {
    if (Number(await this.redis.hget(this.options.queue.toKey(id), 'priority')) > 0) {
      await (await this.options.queue.getJob(id))?.changePriority({ priority: 0 });
    }
  }

  /** True when a delayed job this process created fires late enough for an arrival recorded at `recordedAt`. */
  private coveredBy(StudyInstanceUID: string, recordedAt: number): boolean {
    const created = this.lastCreated.get(StudyInstanceUID);
    return created !== undefined && recordedAt - created < this.slackMs;
  }

  /**
   * Schedules after an arrival without holding up the C-STORE response. The arrival record (pending set) is
   * already durable, so a schedule lost to a crash is redone by requeuePending() at the next start; one lost to a
   * Redis error is retried here. Adds for one study never overlap: requests made while one is in flight collapse
   * into one follow-up add, which starts after them and so pushes the job past each of them by the quiet period.
   */
  scheduleInBackground(StudyInstanceUID: string, traceId: string, recordedAt = Date.now()): void {
    if (this.coveredBy(StudyInstanceUID, recordedAt)) return;
    const current = this.debounces.get(StudyInstanceUID);
    if (current) {
      current.again = { traceId, recordedAt };
      return;
    }
    const entry: Debounce = { running: Promise.resolve() };
    this.debounces.set(StudyInstanceUID, entry);
    entry.running = (async () => {
      let next: { traceId: string; recordedAt: number } | undefined = { traceId, recordedAt };
      while (next) {
        entry.again = undefined;
        // The add that just finished may already cover arrivals recorded while it ran.
        if (this.coveredBy(StudyInstanceUID, next.recordedAt)) break;
        try {
          await this.schedule(StudyInstanceUID, next.traceId, 'arrival');
        } catch (err) {
          this.options.onScheduleError?.(StudyInstanceUID, err as Error);
          this.retryLater(StudyInstanceUID, next.traceId);
        }
        next = entry.again;
      }
      this.debounces.delete(StudyInstanceUID);
    })();
  }

  private retryLater(StudyInstanceUID: string, traceId: string): void {
    if (this.closed) return;
    const timer = setTimeout(() => {
      this.retries.delete(timer);
      if (!this.closed) this.scheduleInBackground(StudyInstanceUID, traceId);
    }, RETRY_MS);
    timer.unref();
    this.retries.add(timer);
  }

  /** Waits for scheduled adds to finish (before the queue and Redis close); pending retries are dropped to restart. */
  async drain(): Promise<void> {
    this.closed = true;
    for (const t of this.retries) clearTimeout(t);
    this.retries.clear();
    while (this.debounces.size > 0) await Promise.allSettled([...this.debounces.values()].map((d) => d.running));
  }

  /** Waits for this study's background adds, so an explicit schedule (release) comes after them. */
  async settled(StudyInstanceUID: string): Promise<void> {
    while (this.debounces.has(StudyInstanceUID)) await this.debounces.get(StudyInstanceUID)?.running;
  }

  /**
   * Re-schedules every study with stored instances and no finished job (the worker removes finished ones).
   * Operators add to the pending set by hand to score a study again (docs/operations.md), so an entry that is not
   * a UID (a typo, a pasted placeholder) is removed and counted in `invalid` rather than failing the listener's
   * start: one bad entry must not stop DICOM intake. Its text is never returned or logged (it could be anything).
   */
  async requeuePending(): Promise<{ requeued: number; invalid: number }> {
    let cursor = '0';
    let requeued = 0;
    let invalid = 0;
    do {
      const [next, uids] = await this.redis.sscan(keys.pendingStudies(), cursor, 'COUNT', 500);
      cursor = next;
      for (const uid of uids) {
        if (!isUid(uid)) {
          invalid += await this.redis.srem(keys.pendingStudies(), uid);
          continue;
        }
        await this.schedule(uid, randomUUID(), 'restart');
        requeued += 1;
      }
    } while (cursor !== '0');
    return { requeued, invalid };
  }

  /**
   * Scores a study again (its files were repaired from the write-ahead log after a crash, and a worker may have
   * read them broken): pending again, as an operator makes a study pending by hand, and a job that follows one
   * being scored now (that one may be reading the broken files). A study retention deleted or is deleting is left
   * alone ('purged', 'purging'): what the replay wrote back is not the study, and the next retention run removes it.
   */
  async rescore(StudyInstanceUID: string, traceId: string): Promise<'scheduled' | 'purged' | 'purging'> {
    let made: number;
    try {
      made = await this.redis.ntMakePending(
        keys.study(StudyInstanceUID), keys.studyInstances(StudyInstanceUID), keys.pendingStudies(),
        StudyInstanceUID, Date.now(), PURGED_FIELD, PURGING_FIELD, PURGE_FENCE_MS,
      );
    } catch (err) {
      throw backendError(err);
    }
    if (made < 0) return 'purging';
    if (made === 0) return 'purged';
    await this.schedule(StudyInstanceUID, traceId, 'restart', undefined, true);
    return 'scheduled';
  }

  /** True while the study has stored instances and no finished job. */
  async isPending(StudyInstanceUID: string): Promise<boolean> {
    try {
      return (await this.redis.sismember(keys.pendingStudies(), StudyInstanceUID)) === 1;
    } catch (err) {
      throw backendError(err);
    }
  }
}
