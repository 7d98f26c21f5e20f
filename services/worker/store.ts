// Where a study's outcome is written: the result JSON and image vectors (shared/results.ts keys), the study's
// status, the worklist and the pending set, all in one MULTI so a reader never sees half a result. Every write is
// by key (SET, HSET, ZADD, SREM), so a re-delivered job overwrites instead of duplicating.
import type { Redis } from 'ioredis';
import { resultKeys, worklistScore, type StudyResult } from '../../shared/results';
import { keys, type StudyStatus } from '../../shared/studies';

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

/** Writes the scored study atomically and announces it on the scored channel. */
export async function writeResult(redis: Redis, result: StudyResult, vectors: Record<string, Float32Array>): Promise<void> {
  const uid = result.StudyInstanceUID;
  const fields: Record<string, Buffer> = {};
  for (const [name, v] of Object.entries(vectors)) fields[name] = vectorToBuffer(v);
  const tx = redis
    .multi()
    .set(resultKeys.result(uid), JSON.stringify(result))
    .del(resultKeys.vectors(uid));
  if (Object.keys(fields).length > 0) tx.hset(resultKeys.vectors(uid), fields);
  tx.hset(keys.study(uid), { status: 'scored', statusAt: result.scoredAt, priority: result.priority })
    .hdel(keys.study(uid), 'failureReason')
    .zadd(resultKeys.worklist(), worklistScore(result.priority, result.receivedAt), uid)
    .srem(keys.pendingStudies(), uid);
  const res = await tx.exec();
  const failed = res?.find(([err]) => err);
  if (!res || failed) throw new Error(`writing the result failed: ${failed?.[0]?.message ?? 'transaction aborted'}`);
  await redis.publish(resultKeys.scoredChannel(), uid);
}

/** Final failure: the study leaves the pending set with its status and a reason (no patient identity in it). */
export async function markStudyFailed(redis: Redis, uid: string, status: 'failed' | 'unsupported', reason: string): Promise<void> {
  await redis
    .multi()
    .hset(keys.study(uid), { status, statusAt: Date.now(), failureReason: reason.slice(0, 500) })
    .srem(keys.pendingStudies(), uid)
    .exec();
}
