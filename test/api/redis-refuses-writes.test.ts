// Redis up but refusing writes for a while: at maxmemory with noeviction ("OOM command not allowed"), or turned into
// a read-only replica (a failover: "READONLY You can't write against a read only replica"), while reads still work.
// A write route answers 503 naming the cause (with Retry-After), not a 500 to quote to the administrator; reads keep
// answering 200, and the write goes through once Redis takes writes again.
import type { Redis } from 'ioredis';
import { keys, studyStorageKey } from '../../shared/studies';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { ADMIN, READER, buildTestApp } from './helpers';

let redis: Redis;
let app: Awaited<ReturnType<typeof buildTestApp>>;

beforeAll(async () => {
  redis = await startRedisClient('producer');
  app = await buildTestApp(redis);
});
afterAll(() => stopRedisClient(redis, app));

/** A failed study ready to be re-scored, and the rescore request. */
async function failedStudy(uid: string) {
  const now = Date.now();
  await redis.hset(keys.studyInstances(uid), `${uid}.1.1`, `${studyStorageKey(uid)}/${uid}.1/${uid}.1.1.dcm`);
  await redis.hset(keys.study(uid), { status: 'failed', firstReceivedAt: now, lastReceivedAt: now, instances: 1 });
  return () => app.inject({ method: 'POST', url: `/api/v1/studies/${uid}/rescore`, headers: ADMIN });
}

/** While Redis refuses writes: rescore is a 503 with `detail`, reads are 200, nothing was half-written. */
async function refusedWhile(uid: string, rescore: () => Promise<{ statusCode: number; headers: Record<string, unknown>; json(): unknown }>, detail: string) {
  const refused = await rescore();
  expect(refused.statusCode).toBe(503);
  expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(refused.headers['retry-after']).toBe('5');
  expect(refused.json()).toMatchObject({ title: 'Service Unavailable', detail: `${detail}; try again shortly` });
  expect((await app.inject({ method: 'GET', url: `/api/v1/studies/${uid}`, headers: READER })).statusCode).toBe(200);
  expect((await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: READER })).statusCode).toBe(200);
  expect(await redis.hget(keys.study(uid), 'status')).toBe('failed');
}

test('writes refused by a read-only replica: rescore answers 503 saying so, reads 200; 202 once it is a primary again', async () => {
  const uid = '1.2.826.0.1.3680043.8.498.9302';
  const rescore = await failedStudy(uid);
  // A replica of a primary that is not there: read-only, still serving its (stale) data.
  await redis.call('REPLICAOF', '127.0.0.1', '1');
  try {
    await refusedWhile(uid, rescore, 'Redis is a read-only replica and refuses writes');
  } finally {
    await redis.call('REPLICAOF', 'NO', 'ONE');
  }
  expect((await rescore()).statusCode).toBe(202);
});

test('writes refused for memory: rescore answers 503 saying so, reads 200; 202 once Redis has room', async () => {
  const uid = '1.2.826.0.1.3680043.8.498.9301';
  const rescore = await failedStudy(uid);
  await redis.config('SET', 'maxmemory', '1'); // the default policy is noeviction
  try {
    await refusedWhile(uid, rescore, 'Redis is out of memory (maxmemory) and refuses writes');
  } finally {
    await redis.config('SET', 'maxmemory', '0');
  }
  const accepted = await rescore();
  expect(accepted.statusCode).toBe(202);
  expect(accepted.json()).toMatchObject({ StudyInstanceUID: uid, status: 'queued', previousStatus: 'failed' });
});
