// The built worker's /livez, /readyz and /metrics with Redis frozen (SIGSTOP) and with no model bundle yet:
// liveness never waits on Redis, readiness says why it is not ready within about a second, and /metrics answers
// with its last sampled values instead of hanging.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRedis, type TestRedis } from '../helpers/redis';
import { makeTinyBundle } from './bundle';
import { BUILT_WORKER, readyPort, requireBuild, waitFor, workerEnv } from './helpers';

const get = async (port: number, route: string) => {
  const res = await fetch(`http://127.0.0.1:${port}${route}`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: await res.text() };
};

describe('worker liveness and readiness (built worker process)', () => {
  let redis: TestRedis;
  let dataDir: string;
  let modelsDir: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    requireBuild();
    redis = await startRedis();
    dataDir = mkdtempSync(path.join(tmpdir(), 'nt-worker-health-'));
    modelsDir = makeTinyBundle();
  });
  afterAll(async () => {
    redis.process.kill('SIGCONT');
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await redis?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(modelsDir, { recursive: true, force: true });
  });

  const start = (env: Record<string, string>) => {
    const child = spawn(process.execPath, [BUILT_WORKER], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    return child;
  };

  it('Redis frozen: /livez 200, /readyz 503 naming Redis, /metrics still answers; ready again when Redis is back', async () => {
    const worker = start(workerEnv({ redisUrl: redis.url, dataDir, modelsDir, extra: { LOG_LEVEL: 'info' } }));
    const port = await readyPort(worker);
    expect(await get(port, '/livez')).toEqual({ status: 200, body: '{"status":"ok"}' });
    const ready = await get(port, '/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body).checks).toMatchObject({ redis: { ok: true }, models: { ok: true } });
    expect((await get(port, '/metrics')).body).toMatch(/neurotriage_worker_queue_jobs\{state="waiting"\} 0/);

    redis.process.kill('SIGSTOP');
    try {
      expect(await get(port, '/livez')).toEqual({ status: 200, body: '{"status":"ok"}' });
      const notReady = await get(port, '/readyz');
      expect(notReady.status).toBe(503);
      expect(JSON.parse(notReady.body).checks.redis).toEqual({ ok: false, detail: 'Redis did not answer within 1000 ms' });
      const metrics = await get(port, '/metrics');
      expect(metrics.status).toBe(200);
      expect(metrics.body).toMatch(/neurotriage_worker_queue_jobs\{state="waiting"\} 0/); // the last sampled value
    } finally {
      redis.process.kill('SIGCONT');
    }
    await waitFor('/readyz 200 again', async () => (await get(port, '/readyz')).status === 200, 30_000, 200);
    worker.kill('SIGTERM');
    await new Promise((r) => worker.once('exit', r));
    expect(worker.exitCode).toBe(0);
  }, 120_000);

  it('no model bundle yet: alive, not ready (models), and SIGTERM stops it at once', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'nt-no-bundle-'));
    try {
      const worker = start(workerEnv({ redisUrl: redis.url, dataDir, modelsDir: empty, extra: { LOG_LEVEL: 'info' } }));
      const port = await readyPort(worker, 'listening');
      expect((await get(port, '/livez')).status).toBe(200);
      // The HTTP server listens before the Redis connection is up: read /readyz once Redis has answered it.
      const r = await waitFor('/readyz with Redis connected', async () => {
        const res = await get(port, '/readyz');
        return (JSON.parse(res.body) as { checks: { redis: { ok: boolean } } }).checks.redis.ok ? res : undefined;
      }, 30_000, 200);
      expect(r.status).toBe(503);
      expect(JSON.parse(r.body).checks).toMatchObject({ redis: { ok: true }, models: { ok: false, detail: expect.stringMatching(/waiting for the model bundle/) } });
      worker.kill('SIGTERM');
      await new Promise((res) => worker.once('exit', res));
      expect(worker.exitCode).toBe(0);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  }, 60_000);
});
