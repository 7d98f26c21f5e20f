// The built worker started while Redis is at maxmemory with noeviction (every write refused): it waits, saying why,
// instead of exiting (a supervisor would restart it into the same refusal: a crash loop), and becomes ready once
// Redis has room again. /readyz says not ready while Redis refuses the writes that taking a job needs, at start and
// later, though Redis answers PING.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { connectRedis } from '../../shared/redis';
import { startRedis, type TestRedis } from '../helpers/redis';
import { makeTinyBundle } from './bundle';
import { BUILT_WORKER, requireBuild, waitFor, workerEnv } from './helpers';

let redis: TestRedis;
let client: ReturnType<typeof connectRedis>;
let dataDir: string;
let modelsDir: string;
let worker: ChildProcess | undefined;

beforeAll(async () => {
  requireBuild();
  redis = await startRedis();
  client = connectRedis(redis.url, 'worker');
  dataDir = mkdtempSync(path.join(tmpdir(), 'nt-worker-start-oom-'));
  modelsDir = makeTinyBundle();
});
afterAll(async () => {
  if (worker && worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
  await client?.quit();
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(modelsDir, { recursive: true, force: true });
});

test('Redis refusing writes at start: the worker waits saying so, then is ready once Redis has room', async () => {
  await client.config('SET', 'maxmemory', '1'); // the default policy is noeviction
  const child = spawn(process.execPath, [BUILT_WORKER], { env: workerEnv({ redisUrl: redis.url, dataDir, modelsDir, extra: { LOG_LEVEL: 'info' } }), stdio: ['ignore', 'pipe', 'pipe'] });
  worker = child;
  const messages: string[] = [];
  let port = 0;
  let exited = false;
  child.once('exit', () => (exited = true));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (process.env.TEST_LOG_LEVEL) process.stdout.write(`${line}\n`);
    if (!line.startsWith('{')) return;
    const entry = JSON.parse(line) as { msg: string; httpPort?: number };
    messages.push(entry.msg);
    if (entry.httpPort) port = entry.httpPort;
  });
  const readyz = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, checks: ((await res.json()) as { checks: Record<string, { ok: boolean; detail: string }> }).checks };
  };
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    await waitFor('the worker to say it waits for Redis (or to exit: the bug)', async () => exited || messages.some((m) => /refuses writes: the worker waits to start/.test(m)), 60_000, 100);
    expect({ exited, stderr }).toEqual({ exited: false, stderr: '' });
    expect(messages).not.toContain('worker ready');
    expect(await readyz()).toEqual({
      status: 503,
      checks: {
        redis: { ok: true, detail: 'PONG' },
        models: { ok: true, detail: expect.any(String) },
        jobs: { ok: false, detail: 'starting: Redis is out of memory (maxmemory) and refuses writes' },
      },
    });
  } finally {
    await client.config('SET', 'maxmemory', '0');
  }
  await waitFor('worker ready', async () => exited || messages.includes('worker ready'), 60_000, 100);
  expect(exited).toBe(false);
  expect(await readyz()).toMatchObject({ status: 200, checks: { jobs: { ok: true, detail: 'taking study jobs' } } });

  // Later, Redis full again: PING still answers, but the idle worker cannot fetch a job.
  await client.config('SET', 'maxmemory', '1');
  try {
    const notReady = await waitFor('/readyz 503 for the refused fetch', async () => {
      const r = await readyz();
      return r.status === 503 ? r : undefined;
    }, 30_000, 200);
    expect(notReady.checks).toMatchObject({ redis: { ok: true }, jobs: { ok: false, detail: 'Redis is out of memory (maxmemory) and refuses writes: fetching study jobs paused' } });
    // Redis still full: the worker stays not ready (a probe never sees it ready while it can take no job).
    const seen: number[] = [];
    for (const until = Date.now() + 40_000; Date.now() < until;) {
      seen.push((await readyz()).status);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen.filter((s) => s === 200).length).toBe(0);
  } finally {
    await client.config('SET', 'maxmemory', '0');
  }
  await waitFor('/readyz 200 once Redis has room', async () => (await readyz()).status === 200, 30_000, 200);
  child.kill('SIGTERM');
  await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
  expect(child.exitCode).toBe(0);
}, 150_000);
