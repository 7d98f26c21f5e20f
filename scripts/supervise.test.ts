// scripts/supervise.ts on real child processes: stop() that arrives while a restart is still starting its process
// (the private Redis's restart waits for a PING answer after the spawn) must stop that process too, not leave it
// running after npm start has exited.
import { spawn, type ChildProcess } from 'node:child_process';
import { createLogger } from '../shared/logger';
import { supervise } from './supervise';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const exited = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;

test('stop() during a restart that is still starting its process stops that process as well', async () => {
  const children: ChildProcess[] = [];
  const sup = await supervise({
    name: 'slow-start',
    log: createLogger('test', 'silent'),
    backoff: { initialMs: 10, maxMs: 10, stableMs: 60_000 },
    start: async () => {
      const c = spawn('sleep', ['30'], { stdio: 'ignore' });
      children.push(c);
      // The first start is quick; a restart is still "starting" (waiting to be ready) for 300 ms.
      if (children.length > 1) await sleep(300);
      return c;
    },
  });
  children[0].kill('SIGKILL');
  // The restart has spawned its process and is waiting for it to be ready. Its spawn follows the exit's notice and
  // the 10 ms backoff, which a loaded machine can push past any fixed pause: wait for it (stop() must come during
  // the 300 ms start that follows, so poll often).
  for (const deadline = Date.now() + 10_000; children.length < 2 && Date.now() < deadline;) await sleep(5);
  expect(children).toHaveLength(2);
  await sup.stop('SIGTERM', 2000);
  await sleep(400);
  try {
    expect(children.map(exited)).toEqual([true, true]);
    expect(sup.current()).toBeUndefined();
  } finally {
    for (const c of children) if (!exited(c)) c.kill('SIGKILL');
  }
});
