// Redis at maxmemory with noeviction: every write is refused ("OOM command not allowed") while reads still work.
// A write route answers 503 naming the cause (with Retry-After), not a 500 to quote to the administrator; reads keep
// answering 200, and the write goes through once Redis has room again.
import { connectRedis } from '../../shared/redis';
import { keys, studyStorageKey } from '../../shared/studies';
import { startRedis, type TestRedis } from '../helpers/redis';
import { ADMIN, READER, buildTestApp } from './helpers';

let server: TestRedis;
let redis: ReturnType<typeof connectRedis>;
let app: Awaited<ReturnType<typeof buildTestApp>>;

beforeAll(async () => {
  server = await startRedis();
  redis = connectRedis(server.url, 'producer');
  await new Promise((r) => redis.once('ready', r));
  app = await buildTestApp(redis);
});
afterAll(async () => {
  await app?.close();
  redis?.disconnect();
  await server?.stop();
});

test('writes refused for memory: rescore answers 503 saying so, reads 200; 202 once Redis has room', async () => {
  const uid = '1.2.826.0.1.3680043.8.498.9301';
  const now = Date.now();
  await redis.hset(keys.studyInstances(uid), '1.2.826.0.1.3680043.8.498.9301.1.1', `${studyStorageKey(uid)}/1.2.826.0.1.3680043.8.498.9301.1/1.2.826.0.1.3680043.8.498.9301.1.1.dcm`);
  await redis.hset(keys.study(uid), { status: 'failed', firstReceivedAt: now, lastReceivedAt: now, instances: 1 });
  const rescore = () => app.inject({ method: 'POST', url: `/api/v1/studies/${uid}/rescore`, headers: ADMIN });

  await redis.config('SET', 'maxmemory', '1'); // the default policy is noeviction
  try {
    const refused = await rescore();
    expect(refused.statusCode).toBe(503);
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(refused.headers['retry-after']).toBe('5');
    expect(refused.json()).toMatchObject({ title: 'Service Unavailable', detail: 'Redis is out of memory (maxmemory) and refuses writes; try again shortly' });
    expect((await app.inject({ method: 'GET', url: `/api/v1/studies/${uid}`, headers: READER })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: READER })).statusCode).toBe(200);
    expect(await redis.hget(keys.study(uid), 'status')).toBe('failed'); // nothing was half-written
  } finally {
    await redis.config('SET', 'maxmemory', '0');
  }
  const accepted = await rescore();
  expect(accepted.statusCode).toBe(202);
  expect(accepted.json()).toMatchObject({ StudyInstanceUID: uid, status: 'queued', previousStatus: 'failed' });
});
