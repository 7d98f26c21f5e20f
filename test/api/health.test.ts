// The API's probes against a real Redis that is frozen (SIGSTOP) and then killed: /livez (and its old name
// /healthz) stays 200, /readyz turns 503 naming Redis within about a second, and is 200 again once Redis is back.
import { connectRedis } from '../../shared/redis';
import { startRedis, type TestRedis } from '../helpers/redis';
import { buildTestApp } from './helpers';

describe('API liveness and readiness', () => {
  let server: TestRedis;
  let redis: ReturnType<typeof connectRedis>;
  let app: Awaited<ReturnType<typeof buildTestApp>>;

  beforeAll(async () => {
    server = await startRedis();
    redis = connectRedis(server.url, 'producer');
    redis.on('error', () => undefined);
    await new Promise((r) => redis.once('ready', r));
    app = await buildTestApp(redis);
  });
  afterAll(async () => {
    server.process.kill('SIGCONT');
    await app?.close();
    redis?.disconnect();
    await server?.stop();
  });

  const get = (url: string) => app.inject({ method: 'GET', url });

  it('Redis frozen: /livez and /healthz 200, /readyz 503 with the Redis check failed; back to 200 after', async () => {
    expect((await get('/livez')).json()).toEqual({ status: 'ok' });
    expect((await get('/readyz')).statusCode).toBe(200);
    server.process.kill('SIGSTOP');
    try {
      expect((await get('/livez')).statusCode).toBe(200);
      expect((await get('/healthz')).statusCode).toBe(200);
      const ready = await get('/readyz');
      expect(ready.statusCode).toBe(503);
      expect(ready.json()).toMatchObject({ status: 'not ready', checks: { redis: { ok: false, detail: 'Redis did not answer within 1000 ms' }, models: { ok: true } } });
    } finally {
      server.process.kill('SIGCONT');
    }
    const deadline = Date.now() + 20_000;
    while ((await get('/readyz')).statusCode !== 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect((await get('/readyz')).statusCode).toBe(200);
  });

  it('Redis gone: /livez 200, /readyz 503 at once (no offline queue to wait in)', async () => {
    await server.stop();
    expect((await get('/livez')).statusCode).toBe(200);
    const t0 = Date.now();
    const ready = await get('/readyz');
    expect(ready.statusCode).toBe(503);
    expect(ready.json().checks.redis.ok).toBe(false);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
