// Where a study's outcome is written: the result JSON and image vectors (shared/results.ts keys), the study's
// status, the worklist and the pending set, all in one MULTI so a reader never sees half a result. Every write is
// by key (SET, HSET, ZADD, SREM), so a re-delivered job overwrites instead of duplicating.
import type { Redis } from 'ioredis';
import { resultKeys, worklistScore, type StudyResult } from '../../shared/results';
import { keys, scanStudyUids, type StudyStatus } from '../../shared/studies';

/** Float32 little-endian bytes, whatever the host's byte order (the API reads them back with readFloatLE). */
export function vectorToBuffer(v: Float32Array): Buffer {
  const b = Buffer.alloc(v.length * 4);
  for (let i = 0; i < v.length; i++) b.writeFloatLE(v[i], i * 4);
  return b;
}

export function bufferToVector(b: Buffer): Float32Array {
  const v = new Float32Array(b.length / 4);
  for (let i = 0; i < v.length; i++) v[i] = b.readFloatLE(i * 4);
  return v;
}

export async function setStudyStatus(redis: Redis, uid: string, status: StudyStatus, extra: Record<string, string | number> = {}): Promise<void> {
  await redis.hset(keys.study(uid), { status, statusAt: Date.now(), ...extra });
}

/**
 * What the listener recorded about the study: when its first instance arrived (the worklist's arrival order; now
 * when unknown) and its AccessionNumber when the listener keeps it (the RIS keys its worklist on it).
 */
export async function studyMeta(redis: Redis, uid: string): Promise<{ receivedAt: number; AccessionNumber?: string }> {
  const [first, accession] = await redis.hmget(keys.study(uid), 'firstReceivedAt', 'AccessionNumber');
  const n = Number(first);
  return { receivedAt: first !== null && Number.isFinite(n) && n > 0 ? n : Date.now(), ...(accession ? { AccessionNumber: accession } : {}) };
}

/**
 * Writes the scored study atomically and announces it on the scored channel. The result gets the study's next
 * resultVersion first (HINCRBY: a failed write only skips a number, versions never repeat).
 */
export async function writeResult(redis: Redis, result: StudyResult, vectors: Record<string, Float32Array>): Promise<void> {
  const uid = result.StudyInstanceUID;
  result.resultVersion = await redis.hincrby(keys.study(uid), 'resultVersion', 1);
  const fields: Record<string, Buffer> = {};
  for (const [name, v] of Object.entries(vectors)) fields[name] = vectorToBuffer(v);
  const tx = redis
    .multi()
    .set(resultKeys.result(uid), JSON.stringify(result))
    .del(resultKeys.vectors(uid));
  if (Object.keys(fields).length > 0) tx.hset(resultKeys.vectors(uid), fields);
  tx.hset(keys.study(uid), { status: 'scored', statusAt: result.scoredAt, priority: result.priority })
    .hdel(keys.study(uid), 'failureReason')
    .zadd(resultKeys.worklist(), worklistScore(result.priority, result.receivedAt, result.priorityProbability), uid)
    .zrem(keys.untriagedStudies(), uid)
    .srem(keys.pendingStudies(), uid);
  const res = await tx.exec();
  const failed = res?.find(([err]) => err);
  if (!res || failed) throw new Error(`writing the result failed: ${failed?.[0]?.message ?? 'transaction aborted'}`);
  await redis.publish(resultKeys.scoredChannel(), uid);
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
