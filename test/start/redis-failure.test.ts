// `npm start` (the built dist/scripts/start.js) whose private Redis cannot start: its socket already served by
// another Redis, redis-server not installed, redis-server exiting at start, its data dir not writable. Each is a setting or the host to change, so
// the output is that message alone (no Node stack) and the exit status is 78, as for any bad setting; no service
// was started. A private Redis that cannot start again after it died is logged the same way (one line, with what
// redis-server said), and started again once it can.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EXIT_CONFIG } from '../../shared/config';
import { startPrivateRedis, type PrivateRedis } from '../../shared/private-redis';
import { makeTinyBundle } from '../worker/bundle';
import { requireBuild } from '../worker/helpers';
import { freePort } from '../helpers/ports';
import { alive, descendants, startSystem, waitFor, type System } from './harness';

jest.setTimeout(120_000);

describe('npm start whose private Redis cannot start', () => {
  let root: string;
  let modelsDir: string;
  const systems: System[] = [];

  beforeAll(() => {
    requireBuild();
    root = mkdtempSync(path.join(tmpdir(), 'nt-redisfail-'));
    modelsDir = makeTinyBundle();
  });
  afterAll(() => {
    for (const s of systems) for (const pid of [s.proc.pid!, ...descendants(s.proc.pid!), ...s.allPids]) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(root, { recursive: true, force: true });
    rmSync(modelsDir, { recursive: true, force: true });
  });

  async function run(dataDir: string, env: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
    const sys = startSystem({ via: 'node', dataDir, modelsDir, dicomPort: await freePort(), apiPort: await freePort(), env });
    systems.push(sys);
    const exited = await Promise.race([sys.exited, new Promise<{ code: null }>((r) => setTimeout(() => r({ code: null }), 60_000))]);
    const output = sys.lines.join('\n');
    expect(output).not.toMatch(/^\s+at /m); // no stack frame
    expect(output).not.toMatch(/service started/);
    return { code: exited.code, output };
  }

  it('another Redis already serves its socket: names the dir, says to stop it or use another DATA_DIR', async () => {
    const dataDir = path.join(root, 'taken', 'data');
    let other: PrivateRedis | undefined;
    try {
      other = await startPrivateRedis({ dir: path.join(dataDir, 'redis'), stdio: 'ignore' });
      const { code, output } = await run(dataDir);
      expect(code).toBe(EXIT_CONFIG);
      expect(output).toMatch(/a Redis already answers on .*redis\.sock.*use another DATA_DIR/);
    } finally {
      await other?.stop();
    }
  });

  it('redis-server not installed: says so at once, with npm run setup and REDIS_URL as the ways out', async () => {
    const started = Date.now();
    const { code, output } = await run(path.join(root, 'missing', 'data'), { PATH: path.join(root, 'empty-path') });
    expect(code).toBe(EXIT_CONFIG);
    expect(output).toMatch(/redis-server .*not (installed|found)/);
    expect(output).toMatch(/npm run setup/);
    expect(output).toMatch(/REDIS_URL/);
    expect(Date.now() - started).toBeLessThan(8000); // not the 10 s start timeout
  });

  it('redis-server exits as it starts (its AOF manifest unreadable): names the dir, says to set DATA_DIR or REDIS_URL', async () => {
    const dataDir = path.join(root, 'bad-aof', 'data');
    mkdirSync(path.join(dataDir, 'redis', 'appendonlydir'), { recursive: true });
    writeFileSync(path.join(dataDir, 'redis', 'appendonlydir', 'appendonly.aof.manifest'), 'not a manifest\n');
    const { code, output } = await run(dataDir);
    expect(code).toBe(EXIT_CONFIG);
    expect(output).toMatch(/redis-server exited as it started/);
    expect(output).toContain(path.join(dataDir, 'redis'));
    expect(output).toMatch(/DATA_DIR.*REDIS_URL/);
    // What redis-server itself said (its log was discarded): the reason, on the same line.
    expect(output).toMatch(/redis-server exited as it started.*Redis said: .*Invalid AOF manifest file format$/m);
    // Not the warning a host with vm.overcommit_memory 0 gets at every start (it said nothing of this failure).
    expect(output).not.toMatch(/Redis said: .*Memory overcommit/);
  });

  it('the private Redis killed and its restart failing (its AOF manifest damaged meanwhile): one log line with the reason and Redis\'s own words, no stack; started again once repaired', async () => {
    const dataDir = path.join(root, 'restart', 'data');
    const sys = startSystem({ via: 'node', dataDir, modelsDir, dicomPort: await freePort(), apiPort: await freePort() });
    systems.push(sys);
    await sys.waitLine(/"msg":"worker ready"/, 120_000);
    const manifest = path.join(dataDir, 'redis', 'appendonlydir', 'appendonly.aof.manifest');
    const good = readFileSync(manifest);
    writeFileSync(manifest, 'not a manifest\n'); // read only at start: the running Redis does not notice
    const before = sys.pids.get('redis')!;
    const failed = sys.waitLine(/"child":"redis".*"msg":"service did not start/, 30_000);
    process.kill(before, 'SIGKILL');
    const line = await failed;
    // It was the error with its whole stack ("service did not start: trying again", the reason inside err).
    const entry = JSON.parse(line) as Record<string, unknown>;
    expect(entry.msg).toMatch(
      /^service did not start: redis-server exited as it started \(status 1\): is .*redis writable.*REDIS_URL.*Redis said: .*Invalid AOF manifest file format \(trying again\)$/,
    );
    expect(entry.msg).toContain(path.join(dataDir, 'redis'));
    expect(entry).toMatchObject({ child: 'redis', restartInMs: 2000 });
    expect(entry).not.toHaveProperty('err');
    expect(line).not.toMatch(/stack|\\n\s*at /);

    // Repaired before the next try: started again (a new pid), and the whole system stops as usual.
    writeFileSync(manifest, good);
    const after = await waitFor('Redis started again', async () => sys.pids.get('redis') !== before && sys.pids.get('redis'), 30_000);
    expect(alive(after)).toBe(true);
    sys.proc.kill('SIGTERM');
    expect((await sys.exited).code).toBe(0);
    expect(sys.lines.join('\n')).not.toMatch(/^\s+at /m);
  });

  it('its data dir cannot be made: names the dir, says to set DATA_DIR', async () => {
    // A file where DATA_DIR should be a directory (root may write anywhere, so permissions would not stop it).
    const blocker = path.join(root, 'blocked');
    mkdirSync(root, { recursive: true });
    writeFileSync(blocker, 'not a directory');
    const { code, output } = await run(path.join(blocker, 'data'));
    expect(code).toBe(EXIT_CONFIG);
    expect(output).toContain(path.join(blocker, 'data', 'redis'));
    expect(output).toMatch(/DATA_DIR/);
  });
});
