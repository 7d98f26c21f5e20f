// Scoring a study again from its stored instances, when an administrator asks (POST
// /api/v1/studies/:uid/rescore, or tools/rescore.ts for many): after the cause of a failure is fixed, for a result
// that cannot be read, or for a study scored by an earlier model bundle. The job is the listener's own (shared/studies.ts: same data, options and
// deduplication on the StudyInstanceUID), so a study never has two jobs and the worker cannot tell the difference;
// the new result is a new result version, delivered by outbound as any other. What retention deleted cannot be
// scored again here: the PACS must send the study again.
import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  keys,
  PURGE_FENCE_MS,
  PURGED_FIELD,
  PURGING_FIELD,
  SCORE_STUDY_JOB,
  STUDY_JOB_OPTIONS,
  studyJobData,
  type StudyJobData,
  type StudyStatus,
} from './studies';

export type RescoreOutcome =
  | { outcome: 'queued'; jobId: string; previousStatus: StudyStatus | null }
  /** A job already holds the study (waiting out the quiet period, queued or being scored): nothing added. */
  | { outcome: 'already-queued'; jobId: string; status: StudyStatus | null }
  | { outcome: 'not-received' }
  /** No instance recorded (every one refused at intake, or the records are gone). */
  | { outcome: 'no-instances' }
  /** Retention deleted the instances at `at` (ms epoch). */
  | { outcome: 'purged'; at: number }
  /** Retention is deleting them now. */
  | { outcome: 'purging' };

/**
 * Checks the study can be scored from what is stored and, when it can, puts it in the pending set first: retention
 * leaves pending studies alone, and should the job be lost the listener re-queues the study at its next start.
 * KEYS: study hash, instances hash, pending set. ARGV: StudyInstanceUID, now (ms), purged field, purging field,
 * purge fence (ms), '1' to only check (a dry run: nothing made pending), '1' to take the instances as recorded (a
 * dry run of tools/recover.ts, which would record them first). Returns { verdict, status }. Retention's purged mark
 * stays on the study hash for good, but retention deletes the instance records with the files: instances recorded
 * now were stored after the purge (the PACS sent the study again, as the 410 advises), so they are scored; the mark
 * answers only when none is recorded.
 */
const PREPARE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {ARGV[7] == '1' and 'ok' or 'not-received', ''} end
local h = redis.call('HMGET', KEYS[1], 'status', ARGV[3], ARGV[4])
local status = h[1] or ''
local purging = tonumber(h[3])
if purging and tonumber(ARGV[2]) - purging < tonumber(ARGV[5]) then return {'purging', status} end
if ARGV[7] ~= '1' and redis.call('HLEN', KEYS[2]) == 0 then
  if h[2] then return {'purged', h[2]} end
  return {'no-instances', status}
end
if ARGV[6] ~= '1' then redis.call('SADD', KEYS[3], ARGV[1]) end
return {'ok', status}
`;

/**
 * The study is 'queued' under the new job, unless a worker has picked the job up already: then the worker's own
 * status wins ('scoring', or already 'scored'/'failed' when the job ended before this ran: marking it 'queued' then
 * would leave it so for good, with no job). A job a worker took has processedOn; one gone was taken and removed.
 * KEYS: study hash, the job's BullMQ hash. ARGV: now (ms), job id.
 */
const MARK_QUEUED = `
if redis.call('HEXISTS', KEYS[2], 'processedOn') == 1 or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'status') == 'scoring' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued', 'statusAt', ARGV[1], 'queuedAt', ARGV[1], 'jobId', ARGV[2])
return 1
`;

export interface RescoreOptions {
  /**
   * BullMQ priority (1 = first of the prioritised; none = before every prioritised job, as new arrivals are queued).
   * Bulk re-scores set one so that studies arriving meanwhile are scored first.
   */
  priority?: number;
  /**
   * Instances were recorded for the study just now (tools/recover.ts): a job being scored already read the folder
   * without them, so a next job is kept to follow it, as the listener does for an arrival. Without this, the
   * study was left pending ('received') with no job until the listener's next start.
   */
  followActive?: boolean;
}

/** What rescore() would answer now, with 'would-queue' for 'queued'. */
export type RescoreCheck = Exclude<RescoreOutcome, { outcome: 'queued' }> | { outcome: 'would-queue' };

export interface Rescorer {
  rescore(StudyInstanceUID: string, options?: RescoreOptions): Promise<RescoreOutcome>;
  /**
   * A dry run's answer: what rescore() would do now, changing nothing. `instancesRecorded` takes the study's
   * instances as recorded (tools/recover.ts records them before it re-scores).
   */
  check(StudyInstanceUID: string, options?: { instancesRecorded?: boolean }): Promise<RescoreCheck>;
}

export function createRescorer(deps: { redis: Redis; queue: Queue<StudyJobData>; clock?: () => number }): Rescorer {
  const now = deps.clock ?? Date.now;
  const prepare = async (uid: string, checkOnly: boolean, instancesRecorded: boolean) => {
    const [verdict, detail] = (await deps.redis.eval(
      PREPARE, 3, keys.study(uid), keys.studyInstances(uid), keys.pendingStudies(),
      uid, String(now()), PURGED_FIELD, PURGING_FIELD, String(PURGE_FENCE_MS), checkOnly ? '1' : '', instancesRecorded ? '1' : '',
    )) as [string, string];
    const status = (detail || null) as StudyStatus | null;
    if (verdict === 'not-received') return { outcome: 'not-received' } as const;
    if (verdict === 'purged') return { outcome: 'purged', at: Number(detail) } as const;
    if (verdict === 'purging') return { outcome: 'purging' } as const;
    if (verdict === 'no-instances') return { outcome: 'no-instances' } as const;
    return status;
  };
  return {
    async check(uid, options = {}) {
      const verdict = await prepare(uid, true, options.instancesRecorded ?? false);
      if (typeof verdict === 'object' && verdict !== null) return verdict;
      // rescore()'s add is deduplicated on the study: a job that holds it now would be kept and reported.
      const held = await deps.queue.getDeduplicationJobId(uid);
      return held ? { outcome: 'already-queued', jobId: held, status: verdict } : { outcome: 'would-queue' };
    },
    async rescore(uid, options = {}) {
      const verdict = await prepare(uid, false, false);
      if (typeof verdict === 'object' && verdict !== null) return verdict;
      const status = verdict;
      const jobId = `study-${randomUUID()}`;
      const job = await deps.queue.add(
        SCORE_STUDY_JOB,
        studyJobData(uid, randomUUID()),
        // No delay: the study is complete. The listener's deduplication id, without replace: an existing job (a
        // quiet period still running, a job waiting or active) is left as it is and reported.
        {
          ...STUDY_JOB_OPTIONS, jobId, deduplication: { id: uid, ...(options.followActive ? { keepLastIfActive: true } : {}) },
          ...(options.priority ? { priority: options.priority } : {}),
        },
      );
      if (job.id !== jobId) return { outcome: 'already-queued', jobId: String(job.id), status };
      await deps.redis.eval(MARK_QUEUED, 2, keys.study(uid), deps.queue.toKey(jobId), String(now()), jobId);
      return { outcome: 'queued', jobId, previousStatus: status };
    },
  };
}
