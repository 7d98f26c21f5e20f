// Instances the listener refused at C-STORE, per study, for the study's result (docs/worker.md "Instances refused
// at intake"). The listener records a refusal it answered with a permanent failure status when the data set named
// its study and series; the worker reads the record when it writes the result, so a series refused whole still
// has its line in `series[]`. Only UIDs, short codes, statuses and counts: never a patient identifier.
// Bounded: counts per (series, code, status) with a cap on distinct entries, the refused SOP Instance UIDs with a
// cap of their own (to count a resent instance once), and both expire REFUSED_TTL_S after the last refusal; at most
// REFUSED_STUDIES_CAP studies hold a record at once (an index of them, by expiry).
import type { Redis } from 'ioredis';
import { isUid, keys } from './studies';
import { hex4 } from './dicom-hex';

/**
 * Why an instance was refused, as the listener's permanent C-STORE failures name it (services/listener/errors.ts):
 * invalid-image (A900: an Image Pixel attribute missing or out of range, or pixel data that does not match what
 * the attributes describe), dataset-mismatch (A900: the data set's SOP Class/Instance UID differs from the
 * command's), malformed-dataset (C000: a data set structure that cannot be read), sop-class-not-on-context (0122:
 * the command's Affected SOP Class UID is not the abstract syntax of the presentation context it came on).
 */
export const REFUSAL_CODES = ['invalid-image', 'dataset-mismatch', 'malformed-dataset', 'sop-class-not-on-context'] as const;
export type RefusalCode = (typeof REFUSAL_CODES)[number];

/** Most distinct (series, code, status) entries one study records; a refusal that would add one more is not recorded. */
export const REFUSED_ENTRIES_CAP = 64;
/**
 * Most refused SOP Instance UIDs one study remembers (0.21 MB at the cap with 64-character UIDs; with
 * REFUSED_STUDIES_CAP the whole record stays under about 2.1 GB); beyond it a resent instance may be counted twice.
 */
export const REFUSED_INSTANCES_CAP = 1_000;
/** The record expires this long after the study's last refusal (as long as stored instances are kept by default). */
export const REFUSED_TTL_S = 30 * 86_400;
/**
 * Most studies holding a record at once: a refusal that would start the record of one more study is not recorded
 * (until older records expire). Without it a sender refusing instance after instance under fresh Study UIDs adds two
 * keys each, for 30 days, with no bound but its own rate (about 1 KB a study, measured at ~1,600 a second).
 */
export const REFUSED_STUDIES_CAP = 10_000;

/** One (series, code, status) entry: how many distinct instances of the series were refused so. */
export interface RefusedImages {
  SeriesInstanceUID: string;
  images: number;
  refusal: RefusalCode;
  /** The C-STORE response status the listener answered, four upper-case hex digits, e.g. "A900". */
  status: string;
}

export interface Refusal {
  StudyInstanceUID: string;
  SeriesInstanceUID: string;
  /** Counts the instance once however often it is sent; absent (not a UID): counted every time. */
  SOPInstanceUID?: string;
  refusal: RefusalCode;
  /** The DIMSE status answered, e.g. 0xA900. */
  status: number;
}

/** 1: counted; 0: this instance was counted before; -1: the study's record is full (not counted). */
export type RecordOutcome = 1 | 0 | -1;

/**
 * KEYS: counts hash, instances hash, index of the studies with a record (sorted set: StudyInstanceUID -> when its
 * record expires, s). ARGV: field, SOPInstanceUID ('' when none), entries cap, instances cap, ttl (s), study, studies
 * cap. Returns 1 when counted, 0 when the instance was counted before, -1 when a new entry would pass the study's
 * cap or a new study's record the studies cap (index entries past their expiry are dropped first).
 */
const RECORD_REFUSAL = `
if ARGV[2] ~= '' and redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 0 end
local now = tonumber(redis.call('TIME')[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZSCORE', KEYS[3], ARGV[6]) == false and redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[7]) then return -1 end
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[5])
if ARGV[2] ~= '' and redis.call('HLEN', KEYS[2]) < tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[5])
return 1
`;

type RedisWithRefusal = Redis & {
  ntRecordRefusal(
    counts: string, instances: string, index: string, field: string, sop: string,
    entriesCap: number, instancesCap: number, ttlS: number, study: string, studiesCap: number,
  ): Promise<number>;
};

function field(r: Pick<Refusal, 'SeriesInstanceUID' | 'refusal' | 'status'>): string {
  return `${r.SeriesInstanceUID}|${r.refusal}|${hex4(r.status)}`;
}

function parseField(f: string): Omit<RefusedImages, 'images'> | undefined {
  const [series, refusal, status, ...rest] = f.split('|');
  if (rest.length > 0 || !isUid(series ?? '') || !(REFUSAL_CODES as readonly string[]).includes(refusal ?? '') || !/^[0-9A-F]{4}$/.test(status ?? '')) return undefined;
  return { SeriesInstanceUID: series, refusal: refusal as RefusalCode, status };
}

/** Records one refused instance (the listener, after answering it with a permanent failure status). */
export async function recordRefusal(redis: Redis, r: Refusal): Promise<RecordOutcome> {
  if (!isUid(r.StudyInstanceUID) || !isUid(r.SeriesInstanceUID)) throw new Error('a refusal is recorded only under a study and series UID');
  const client = redis as RedisWithRefusal;
  if (typeof client.ntRecordRefusal !== 'function') client.defineCommand('ntRecordRefusal', { numberOfKeys: 3, lua: RECORD_REFUSAL });
  const sop = r.SOPInstanceUID && isUid(r.SOPInstanceUID) ? r.SOPInstanceUID : '';
  const out = await client.ntRecordRefusal(
    keys.studyRefused(r.StudyInstanceUID), keys.studyRefusedInstances(r.StudyInstanceUID), keys.refusedStudies(), field(r), sop,
    REFUSED_ENTRIES_CAP, REFUSED_INSTANCES_CAP, REFUSED_TTL_S, r.StudyInstanceUID, REFUSED_STUDIES_CAP,
  );
  return out as RecordOutcome;
}

/**
 * The study's refused instances by (series, code, status), series in UID order, less the instances that were
 * stored after all (a resend the listener accepted: its SOP Instance UID is in the study's instance record).
 * Empty when nothing was refused or the record expired.
 */
export async function readRefusals(redis: Redis, StudyInstanceUID: string): Promise<RefusedImages[]> {
  const [counts, instances] = await Promise.all([
    redis.hgetall(keys.studyRefused(StudyInstanceUID)),
    redis.hgetall(keys.studyRefusedInstances(StudyInstanceUID)),
  ]);
  if (Object.keys(counts).length === 0) return [];
  const left = new Map(Object.entries(counts).map(([f, n]) => [f, Number(n)]));
  const sops = Object.keys(instances);
  for (let i = 0; i < sops.length; i += 1000) {
    const batch = sops.slice(i, i + 1000);
    const stored = await redis.hmget(keys.studyInstances(StudyInstanceUID), ...batch);
    batch.forEach((sop, j) => {
      const f = instances[sop];
      if (stored[j] !== null && left.has(f)) left.set(f, left.get(f)! - 1);
    });
  }
  const out: RefusedImages[] = [];
  for (const [f, n] of left) {
    const parsed = parseField(f);
    if (parsed && Number.isInteger(n) && n > 0) out.push({ ...parsed, images: n });
  }
  return out.sort((a, b) => a.SeriesInstanceUID.localeCompare(b.SeriesInstanceUID) || a.refusal.localeCompare(b.refusal) || a.status.localeCompare(b.status));
}
