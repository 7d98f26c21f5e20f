// SIGTERM to the built worker while its Redis does not answer (frozen with SIGSTOP: a Redis pod being rescheduled,
// a node under memory pressure): the worker still exits within SHUTDOWN_TIMEOUT_SECONDS plus its bounded closing
// steps, its loader processes with it. Before, BullMQ's close and Redis QUIT waited for an answer, so the worker held
// its pod until SIGKILL at the end of terminationGracePeriodSeconds.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRedis, type TestRedis } from '../helpers/redis';
import { alive, descendants } from '../start/harness';
import { makeTinyBundle } from './bundle';
import { BUILT_WORKER, readyPort, requireBuild, waitFor, workerEnv } from './helpers';

let redis: TestRedis;
let dataDir: string;
let modelsDir: string;
let child: ChildProcess | undefined;

beforeAll(async () => {
  requireBuild();
  redis = await startRedis();
  dataDir = mkdtempSync(path.join(tmpdir(), 'nt-worker-stop-'));
  modelsDir = makeTinyBundle();
});
afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  redis?.process.kill('SIGCONT');
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(modelsDir, { recursive: true, force: true });
});

test('SIGTERM (twice) while Redis does not answer: the worker and its loaders exit without waiting for Redis', async () => {
  const env = workerEnv({ redisUrl: redis.url, dataDir, modelsDir, extra: { LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT_SECONDS: '2' } });
  child = spawn(process.execPath, [BUILT_WORKER], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
  await readyPort(child, 'ready');
  const loaders = descendants(child.pid!);
  expect(loaders.length).toBeGreaterThan(0);

  redis.process.kill('SIGSTOP');
  try {
    child.kill('SIGTERM');
    // A second signal while it stops (Ctrl-C twice, a second kill) does not cut the stop short: the worker took its
    // signals once, and the second one killed it on the spot, its loader processes and jobs left to chance.
    await new Promise((r) => setTimeout(r, 500));
    child.kill('SIGTERM');
    // 2 s for jobs, at most 5 s for each closing step that waits on Redis: well under the pod's 120 s grace period.
    // Generous for a loaded machine; before the fix it waited for Redis however long that took.
    const code = await Promise.race([exited, new Promise<'still running'>((r) => setTimeout(() => r('still running'), 45_000))]);
    expect(code).toBe(0);
    await waitFor('the loader processes to end', () => loaders.every((pid) => !alive(pid)), 10_000, 100);
  } finally {
    redis.process.kill('SIGCONT');
  }
}, 120_000);
