// Where a study's outcome is written: the result JSON and image vectors (shared/results.ts keys), the study's
// status, the worklist and the pending set, all in one Lua script so a reader never sees half a result. Every write
// is by key (SET, HSET, ZADD, SREM), so a re-delivered job overwrites instead of duplicating. The study leaves the
// pending set only when no instance arrived while it was scored (its status is still the job's 'scoring').
import type { Redis } from 'ioredis';
import { float32ToLE } from '../../shared/float32';
import type { Sequence } from '../../shared/model-manifest';
import { parseResult, type UNREADABLE } from '../../shared/result-schema';
import { RECENT_RESULTS_MS, resultKeys, worklistScore, type StudyResult } from '../../shared/results';
import { keys, scanStudyUids, type StudyStatus } from '../../shared/studies';

export async function setStudyStatus(redis: Redis, uid: string, status: StudyStatus, extra: Record<string, string | number> = {}): Promise<void> {
  await redis.hset(keys.study(uid), { status, statusAt: Date.now(), ...extra });
}

/**
 * What the listener recorded about the study: when its first instance arrived (the worklist's arrival order; now
 * when unknown), when its last one did (a provisional result waits from there) and its AccessionNumber when the
 * listener keeps it (the RIS keys its worklist on it).
 */
export async function studyMeta(redis: Redis, uid: string): Promise<{ receivedAt: number; lastReceivedAt: number; AccessionNumber?: string }> {
  const [first, last, accession] = await redis.hmget(keys.study(uid), 'firstReceivedAt', 'lastReceivedAt', 'AccessionNumber');
  const ms = (v: string | null) => (v !== null && Number.isFinite(Number(v)) && Number(v) > 0 ? Number(v) : null);
  const receivedAt = ms(first) ?? Date.now();
  return { receivedAt, lastReceivedAt: ms(last) ?? receivedAt, ...(accession ? { AccessionNumber: accession } : {}) };
}

/**
 * The result write. The result, vectors and worklist entry are always written (the worklist shows what was scored
 * at once), but the study becomes 'scored' and leaves the pending set only while its status is still 'scoring'
 * as the job set it: the listener's arrival script sets 'received' (then 'queued') on every new instance, so any
 * other status means an instance arrived during scoring. The study then stays pending with the listener's status,
 * and is scored again by the follow-up job the listener queues, or, should the listener die before queueing it,
 * by the re-queue of pending studies at the next listener start. Returns 1 when the study is done, 0 when not.
 * KEYS: result, vectors, study hash, worklist, untriaged index, pending set, recent-results index.
 * ARGV: result JSON, scoredAt, priority, worklist score, StudyInstanceUID, oldest scoredAt the recent index keeps,
 * then vector field/value pairs.
 */
const WRITE_RESULT = `
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
if #ARGV > 6 then redis.call('HSET', KEYS[2], unpack(ARGV, 7)) end
redis.call('HSET', KEYS[3], 'priority', ARGV[3])
redis.call('HDEL', KEYS[3], 'failureReason')
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5])
redis.call('ZREM', KEYS[5], ARGV[5])
redis.call('ZADD', KEYS[7], ARGV[2], ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. ARGV[6])
if redis.call('HGET', KEYS[3], 'status') ~= 'scoring' then return 0 end
redis.call('HSET', KEYS[3], 'status', 'scored', 'statusAt', ARGV[2])
redis.call('SREM', KEYS[6], ARGV[5])
return 1
`;

/**
 * Writes the scored study atomically and announces it on the scored channel. The result gets the study's next
 * resultVersion first (HINCRBY: a failed write only skips a number, versions never repeat). Resolves false when an
 * instance arrived while the study was scored: the study then stays pending (see WRITE_RESULT) and is scored again.
 * `norms` (each sequence's raw encoder output length) are stored beside the unit vectors (shared/results.ts).
 */
export async function writeResult(
  redis: Redis,
  result: StudyResult,
  vectors: Record<string, Float32Array>,
  norms: Partial<Record<Sequence, number>> = {},
): Promise<boolean> {
  const uid = result.StudyInstanceUID;
  result.resultVersion = await redis.hincrby(keys.study(uid), 'resultVersion', 1);
  const fields: (string | Buffer)[] = [];
  for (const [name, v] of Object.entries(vectors)) fields.push(name, float32ToLE(v));
  if (Object.keys(norms).length > 0) fields.push('norms', Buffer.from(JSON.stringify(norms)));
  const done = await redis.eval(
    WRITE_RESULT,
    7,
    resultKeys.result(uid), resultKeys.vectors(uid), keys.study(uid), resultKeys.worklist(), keys.untriagedStudies(), keys.pendingStudies(), resultKeys.recent(),
    JSON.stringify(result), String(result.scoredAt), result.priority, String(worklistScore(result.priority, result.receivedAt, result.priorityProbability)), uid,
    String(result.scoredAt - RECENT_RESULTS_MS),
    ...fields,
  );
  await redis.publish(resultKeys.scoredChannel(), uid);
  return done === 1;
}

/**
 * Once per Redis: indexes the studies that failed before the untriaged index existed (one SCAN of the study
 * hashes), then sets the flag that tells the API to read the index. Idempotent, so workers starting together may
 * both run it. Returns how many studies it indexed.
 */
export async function backfillUntriagedIndex(redis: Redis): Promise<number> {
  if ((await redis.exists(keys.untriagedIndexBuilt())) === 1) return 0;
  let indexed = 0;
  for await (const uids of scanStudyUids(redis)) {
    const read = redis.pipeline();
    for (const uid of uids) read.hmget(keys.study(uid), 'status', 'lastReceivedAt', 'statusAt');
    const rows = (await read.exec()) ?? [];
    const add: (string | number)[] = [];
    rows.forEach(([err, v], i) => {
      const [status, last, at] = (err ? [] : v) as (string | null)[];
      if (status === 'failed' || status === 'unsupported') add.push(Number(last ?? at ?? 0), uids[i]);
    });
    if (add.length > 0) await redis.zadd(keys.untriagedStudies(), ...add);
    indexed += add.length / 2;
  }
  await redis.set(keys.untriagedIndexBuilt(), String(Date.now()));
  return indexed;
}

/** Adds the study to the untriaged index at its lastReceivedAt (now when the listener recorded none). */
const INDEX_UNTRIAGED = `
local at = redis.call('HGET', KEYS[1], 'lastReceivedAt') or ARGV[1]
redis.call('ZADD', KEYS[2], at, ARGV[2])
`;

/**
 * Final failure: the study leaves the pending set with its status and a reason (no patient identity in it), and
 * joins the untriaged index the API lists.
 */
export async function markStudyFailed(redis: Redis, uid: string, status: 'failed' | 'unsupported', reason: string): Promise<void> {
  const now = Date.now();
  await redis
    .multi()
    .hset(keys.study(uid), { status, statusAt: now, failureReason: reason.slice(0, 500) })
    .srem(keys.pendingStudies(), uid)
    .eval(INDEX_UNTRIAGED, 2, keys.study(uid), keys.untriagedStudies(), String(now), uid)
    .exec();
}

/** The study's stored result; UNREADABLE when it is not one (shared/result-schema.ts), null when there is none. */
export async function readResult(redis: Redis, uid: string): Promise<StudyResult | null | typeof UNREADABLE> {
  const raw = await redis.get(resultKeys.result(uid));
  return raw === null ? null : parseResult(raw);
}

/**
 * Replaces a provisional result by its final version, only while it is still the study's latest result and the
 * study is not being scored again (new instances arrived): KEYS study hash, result, worklist, recent index;
 * ARGV expected resultVersion, final result JSON (with resultVersion + 1), worklist score, scoredAt, priority, uid.
 */
const FINALISE = `
if redis.call('HGET', KEYS[1], 'resultVersion') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'status') ~= 'scored' then return 0 end
redis.call('HINCRBY', KEYS[1], 'resultVersion', 1)
redis.call('HSET', KEYS[1], 'priority', ARGV[5], 'statusAt', ARGV[4])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[6])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[6])
return 1
`;

/** Writes `final` (the final version of provisional result `version`) if that is still current; true when written. */
export async function writeFinalResult(redis: Redis, version: number, final: StudyResult): Promise<boolean> {
  const uid = final.StudyInstanceUID;
  const body: StudyResult = { ...final, resultVersion: version + 1 };
  const written = await redis.eval(
    FINALISE, 4, keys.study(uid), resultKeys.result(uid), resultKeys.worklist(), resultKeys.recent(),
    String(version), JSON.stringify(body), String(worklistScore(body.priority, body.receivedAt, body.priorityProbability)), String(body.scoredAt), body.priority, uid,
  );
  if (written !== 1) return false;
  await redis.publish(resultKeys.scoredChannel(), uid);
  return true;
}
