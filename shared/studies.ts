// The contract between the listener (producer), the worker (consumer) and the API (reader): where a study's
// instances are stored, the Redis keys that record them, the study job on BullMQ and the study's life.
// Only UIDs, storage keys and counts cross this boundary: never a patient name, ID or birth date.
import path from 'node:path';
import type { JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';

/** BullMQ queue the listener fills with one job per completed study. */
export const STUDY_QUEUE = 'studies';
/** Job name on STUDY_QUEUE. */
export const SCORE_STUDY_JOB = 'score-study';
/**
 * Job name on STUDY_QUEUE, added by the worker itself (delayed) for a provisional result: when it runs and that
 * result (StudyJobData.resultVersion) is still the study's latest, the result is made final (docs/worker.md).
 */
export const FINALISE_STUDY_JOB = 'finalise-study';
/**
 * How a study job is retried and kept, whoever queues it (the listener on arrival, the API when an administrator
 * asks for a study to be scored again): 3 attempts 10 s, 20 s apart, the last 1,000 done and 5,000 failed kept.
 */
export type StudyJobOptions = Pick<JobsOptions, 'attempts' | 'backoff' | 'removeOnComplete' | 'removeOnFail'>;
export const STUDY_JOB_OPTIONS: StudyJobOptions = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 10_000 },
  removeOnComplete: { count: 1000 },
  removeOnFail: { count: 5000 },
};
/** Permanently failed study jobs are copied here with their reason. */
export const STUDY_DEAD_LETTER_QUEUE = 'studies-dead-letter';

export interface StudyJobData {
  StudyInstanceUID: string;
  /** Folder of the study relative to DATA_DIR, e.g. "store/1.2.3"; instances lie in <SeriesInstanceUID>/ below it. */
  storageKey: string;
  /** Correlates log lines across services for one study delivery. */
  traceId: string;
  /** FINALISE_STUDY_JOB only: the provisional result version to make final. */
  resultVersion?: number;
}

export type StudyStatus = 'received' | 'queued' | 'scoring' | 'scored' | 'failed' | 'unsupported';

/** Redis key prefix of everything neurotriage keeps outside BullMQ. */
export const KEY_PREFIX = 'nt';

export const keys = {
  /** Hash: status, firstReceivedAt, lastReceivedAt (ms epoch), instances, bytes, plus stage fields. */
  study: (uid: string) => `${KEY_PREFIX}:study:${uid}`,
  /** Hash: SOPInstanceUID -> storage key relative to DATA_DIR. HSETNX here is the duplicate check. */
  studyInstances: (uid: string) => `${KEY_PREFIX}:study:${uid}:instances`,
  /**
   * Hash: "<SeriesInstanceUID>|<refusal code>|<DICOM status>" -> instances of the series the listener refused at
   * C-STORE for that reason (shared/refusals.ts). Bounded (a cap on fields) and expiring; the worker reads it.
   */
  studyRefused: (uid: string) => `${KEY_PREFIX}:study:${uid}:refused`,
  /**
   * Hash: refused SOPInstanceUID -> its studyRefused field (capped): an instance sent again is counted once, and
   * one stored after all (a later resend that passed) is not reported as refused.
   */
  studyRefusedInstances: (uid: string) => `${KEY_PREFIX}:study:${uid}:refused:instances`,
  /**
   * Sorted set: StudyInstanceUID -> when its refused-instance record expires (unix s), for the cap on studies with
   * a record (shared/refusals.ts REFUSED_STUDIES_CAP); entries past their time are dropped at the next new record.
   */
  refusedStudies: () => `${KEY_PREFIX}:refused:studies`,
  /** Set of StudyInstanceUIDs that have stored instances but no finished job (re-queued at listener start). */
  pendingStudies: () => `${KEY_PREFIX}:studies:pending`,
  /**
   * Sorted set of StudyInstanceUIDs whose last job ended failed or unsupported, score = the study's
   * lastReceivedAt: the API's "Not triaged" list without scanning every key. The worker adds on failure and removes
   * when the study is scored; a reader confirms each entry's status in the study hash (a study sent again after
   * failing is "received" again until its job ends).
   */
  untriagedStudies: () => `${KEY_PREFIX}:studies:untriaged`,
  /** Set once the worker has indexed the studies that failed before the index existed; readers scan until then. */
  untriagedIndexBuilt: () => `${KEY_PREFIX}:studies:untriaged:built`,
};

/**
 * Study hash field retention sets (ms epoch) while it deletes a study's stored instances; the listener refuses
 * (A700, retry later) any C-STORE for that study meanwhile, so nothing it acknowledges is deleted under it. A mark
 * older than PURGE_FENCE_MS is a retention run that died half-way and no longer fences anything.
 */
export const PURGING_FIELD = 'purgingSince';
export const PURGE_FENCE_MS = 10 * 60_000;
/** Study hash field retention sets (ms epoch) once the study's instances are gone: the API then answers 410. */
export const PURGED_FIELD = 'instancesPurgedAt';

const UID_PATTERN = /^[0-9]+(\.[0-9]+)*$/;

/** Digits and dots, at most 64 characters (PS3.5 9.1). */
export function isUid(uid: string): boolean {
  return uid.length <= 64 && UID_PATTERN.test(uid);
}

/** UIDs are digits and dots (PS3.5 9.1), so they are safe path segments; anything else is refused. */
export function assertUid(uid: string, what = 'UID'): string {
  if (!isUid(uid)) throw new Error(`invalid ${what}: not a DICOM UID`);
  return uid;
}

/**
 * Every StudyInstanceUID with a study hash, a SCAN batch at a time: O(keys in Redis), for the rare whole-archive
 * passes (retention, the untriaged-index backfill, the API's list by status). Only `nt:study:<uid>` hashes count;
 * a study's other keys (…:instances, …:vectors) have more parts. SCAN may return a key twice; callers are idempotent.
 */
export async function* scanStudyUids(redis: Redis, count = 5000): AsyncGenerator<string[]> {
  const prefix = keys.study('');
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', count, 'TYPE', 'hash');
    cursor = next;
    const uids = batch.map((k) => k.slice(prefix.length)).filter((uid) => UID_PATTERN.test(uid));
    if (uids.length > 0) yield uids;
  } while (cursor !== '0');
}

export const STORE_DIR = 'store';

export function studyStorageKey(StudyInstanceUID: string): string {
  return path.posix.join(STORE_DIR, assertUid(StudyInstanceUID, 'StudyInstanceUID'));
}

/** A score-study job's data, the same whoever queues it (the listener on arrival, an administrator's re-score). */
export function studyJobData(StudyInstanceUID: string, traceId: string): StudyJobData {
  return { StudyInstanceUID, storageKey: studyStorageKey(StudyInstanceUID), traceId };
}

export function instanceStorageKey(StudyInstanceUID: string, SeriesInstanceUID: string, SOPInstanceUID: string): string {
  return path.posix.join(
    studyStorageKey(StudyInstanceUID),
    assertUid(SeriesInstanceUID, 'SeriesInstanceUID'),
    `${assertUid(SOPInstanceUID, 'SOPInstanceUID')}.dcm`,
  );
}
