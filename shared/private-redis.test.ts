// The private Redis of `npm start`: one per data dir. A second start on a dir whose Redis still runs (an earlier
// npm start whose supervisor was SIGKILLed leaves its children running) must refuse instead of starting a second
// redis-server on the same socket and AOF.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startPrivateRedis } from './private-redis';

jest.setTimeout(30_000);

test('a second private Redis on a dir whose Redis still answers is refused, naming the socket', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nt-pr-'));
  const first = await startPrivateRedis({ dir, stdio: 'ignore' });
  try {
    await expect(startPrivateRedis({ dir, stdio: 'ignore' })).rejects.toThrow(`a Redis already answers on ${path.join(dir, 'redis.sock')}`);
    // The first one still serves its socket and is the only writer of the AOF.
    expect(first.process.exitCode).toBeNull();
    expect(readdirSync(dir)).toContain('redis.sock');
  } finally {
    await first.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('after the first one stopped, the same dir starts again (a stale socket file does not count)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nt-pr-'));
  try {
    const first = await startPrivateRedis({ dir, stdio: 'ignore' });
    first.process.kill('SIGKILL');
    await new Promise((r) => first.process.once('exit', r));
    const second = await startPrivateRedis({ dir, stdio: 'ignore' });
    await second.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
