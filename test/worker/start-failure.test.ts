// A worker whose start fails after the model bundle is loaded (here: the triage queries' Redis key holds another
// type, so reading them throws) rejects and leaves nothing behind in the process that embedded it: no loader
// process, no Redis connection, no listening /metrics port. Before, only the steps up to the bundle were undone.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { queryKeys } from '../../shared/queries';
import { connectRedis } from '../../shared/redis';
import { startWorker } from '../../services/worker/main';
import { freePort } from '../helpers/ports';
import { startRedis, type TestRedis } from '../helpers/redis';
import { makeTinyBundle } from './bundle';
import { requireBuild, waitFor, workerEnv } from './helpers';

/** Process ids of the loader processes forked from this process. */
function loaders(): number[] {
  try {
    const lines = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' }).split('\n');
    return lines.filter((l) => l.includes('load-process')).map((l) => Number(l.trim().split(' ')[0]));
  } catch {
    return []; // ps exits 1 when there are none
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

describe('a failed worker start', () => {
  let redis: TestRedis;
  let client: ReturnType<typeof connectRedis>;
  let dataDir: string;
  let modelsDir: string;

  beforeAll(async () => {
    requireBuild();
    redis = await startRedis();
    client = connectRedis(redis.url, 'worker');
    dataDir = mkdtempSync(path.join(tmpdir(), 'nt-worker-startfail-'));
    modelsDir = makeTinyBundle();
  });
  afterAll(async () => {
    await client?.quit();
    await redis?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(modelsDir, { recursive: true, force: true });
  });

  it('after the loader pool is up closes the pool, the Redis connections and the HTTP server', async () => {
    await client.set(queryKeys.queries(), 'a string where the site queries hash belongs');
        const clientsBefore = (await client.client('LIST') as string).trim().split('\n').length;
    const port = await freePort();

    const start = startWorker({ env: workerEnv({ redisUrl: redis.url, dataDir, modelsDir, extra: { WORKER_LOAD_PROCESSES: '2', WORKER_METRICS_PORT: String(port) } }) });
    // The pool is forked before the queries are read: wait for it, so the test knows the failure came after it.
    await waitFor('the loader processes', async () => loaders().length >= 2);
    await expect(start).rejects.toThrow(/WRONGTYPE/);

    await waitFor('no loader process left', async () => loaders().length === 0, 10_000);
    await waitFor('no worker Redis connection left', async () => (await client.client('LIST') as string).trim().split('\n').length === clientsBefore, 10_000);
    expect(await listening(port)).toBe(false);
  });
});
