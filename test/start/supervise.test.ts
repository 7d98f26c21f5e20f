// `npm start` supervises what it starts (the built dist/scripts/start.js with a temp DATA_DIR, the fixture model
// bundle, real Redis, DCMTK's storescu): each service and the private Redis is SIGKILLed in turn and intake and
// scoring resume by themselves, the others untouched; a bad setting stops everything instead of a restart loop; then
// SIGTERM and SIGINT to npm itself stop every process of the tree, none left behind.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EXIT_CONFIG } from '../../shared/config';
import { makeTinyBundle } from '../worker/bundle';
import { requireBuild } from '../worker/helpers';
import { alive, api, BUILT_START, descendants, scored, sendStudy, startSystem, waitFor, type System } from './harness';
import { freePort } from '../helpers/ports';

jest.setTimeout(600_000);

describe('npm start supervision', () => {
  let root: string;
  let modelsDir: string;
  const systems: System[] = [];

  beforeAll(() => {
    requireBuild();
    expect(BUILT_START).toBeTruthy();
    root = mkdtempSync(path.join(tmpdir(), 'nt-start-'));
    modelsDir = makeTinyBundle();
  });
  afterAll(() => {
    // Whatever a failed test left: the whole tree, by pid.
    for (const s of systems) {
      for (const pid of [s.proc.pid!, ...descendants(s.proc.pid!), ...s.allPids]) if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
    rmSync(root, { recursive: true, force: true });
    rmSync(modelsDir, { recursive: true, force: true });
  });

  async function boot(via: 'node' | 'npm', name: string): Promise<System> {
    const dataDir = path.join(root, name, 'data');
    const sys = startSystem({ via, dataDir, modelsDir, dicomPort: await freePort(), apiPort: await freePort() });
    systems.push(sys);
    await sys.waitLine(/"msg":"worker ready"/, 120_000);
    await waitFor('the API to answer /livez', async () => (await api(sys, '/livez')).status === 200, 60_000);
    return sys;
  }

  /** SIGKILLs the supervised child and waits for its replacement (a new pid). */
  async function killAndWaitForRestart(sys: System, child: string): Promise<number> {
    const before = sys.pids.get(child)!;
    expect(alive(before)).toBe(true);
    process.kill(before, 'SIGKILL');
    await sys.waitLine(new RegExp(`"child":"${child}","code":null,"signal":"SIGKILL".*"msg":"service exited: restarting it"`), 30_000);
    const after = await waitFor(`${child} restarted`, async () => sys.pids.get(child) !== before && sys.pids.get(child), 60_000);
    expect(alive(after)).toBe(true);
    return after;
  }

  it('each service and Redis killed in turn: intake and scoring resume, the others keep running', async () => {
    const sys = await boot('node', 'kill');
    const first = await sendStudy(sys, 41, 1);
    await scored(sys, first);
    let index = 2;

    for (const child of ['listener', 'worker', 'api', 'redis']) {
      const others = ['listener', 'worker', 'api', 'redis'].filter((c) => c !== child).map((c) => sys.pids.get(c)!);
      await killAndWaitForRestart(sys, child);
      for (const pid of others) expect(alive(pid)).toBe(true); // one crash never stops the others
      // Intake resumes (storescu retried until every instance is Success) and the study is scored.
      const uid = await sendStudy(sys, 41, index++, 120_000);
      const study = await scored(sys, uid);
      expect((study.result as { StudyInstanceUID: string }).StudyInstanceUID).toBe(uid);
    }
    // Redis came back with its AOF: the first study's result survived the Redis kill.
    expect((await api(sys, `/api/v1/studies/${first}`)).json?.status).toBe('scored');
    expect(sys.proc.exitCode).toBeNull();

    const tree = [sys.proc.pid!, ...descendants(sys.proc.pid!)];
    sys.proc.kill('SIGTERM');
    expect(await sys.exited).toEqual({ code: 0, signal: null });
    await waitFor('every process of the tree to exit', async () => tree.every((p) => !alive(p)), 30_000);
  });

  it('a service stopped by a bad setting is not restarted: everything stops, the exit status says configuration', async () => {
    const dataDir = path.join(root, 'bad-setting', 'data');
    // An API-only setting (the others start and run first): a webhook without its signing secret. Through npm, as
    // a user runs it: npm passes the status on.
    const sys = startSystem({ via: 'npm', dataDir, modelsDir, dicomPort: await freePort(), apiPort: await freePort(), env: { WEBHOOK_URL: 'http://127.0.0.1:9/hook' } });
    systems.push(sys);
    const exited = await Promise.race([sys.exited, new Promise((r) => setTimeout(() => r('still running'), 120_000))]);
    expect(exited).toEqual({ code: EXIT_CONFIG, signal: null });
    expect(sys.lines.some((l) => /WEBHOOK/.test(l) && !/"msg"/.test(l))).toBe(true); // the API's own message names the setting
    expect(sys.lines.some((l) => /"child":"api".*"msg":"service stopped on a bad setting/.test(l))).toBe(true);
    expect(sys.lines.some((l) => /"msg":"service exited: restarting it"/.test(l))).toBe(false);
    await waitFor('every started process to exit', async () => [...sys.allPids].every((p) => !alive(p)), 30_000);
  });

  it('a port another program holds stops everything as a bad setting, saying which and what to do, not a restart loop', async () => {
    // A second npm start beside a first one: its API met EADDRINUSE and was restarted every few seconds forever.
    const held = net.createServer();
    const apiPort = await freePort();
    await new Promise<void>((r) => held.listen(apiPort, '127.0.0.1', r));
    try {
      const sys = startSystem({ via: 'node', dataDir: path.join(root, 'port-taken', 'data'), modelsDir, dicomPort: await freePort(), apiPort });
      systems.push(sys);
      const exited = await Promise.race([sys.exited, new Promise((r) => setTimeout(() => r('still running'), 120_000))]);
      expect(exited).toEqual({ code: EXIT_CONFIG, signal: null });
      expect(sys.lines).toContainEqual(expect.stringMatching(new RegExp(`cannot listen on 127\\.0\\.0\\.1:${apiPort}: the address is already in use.*set this service's address or port setting`)));
      expect(sys.lines.some((l) => /"child":"api".*"msg":"service stopped on a bad setting/.test(l))).toBe(true);
      expect(sys.lines.some((l) => /"msg":"service exited: restarting it"/.test(l) || /EADDRINUSE/.test(l))).toBe(false);
      await waitFor('every started process to exit', async () => [...sys.allPids].every((p) => !alive(p)), 30_000);
    } finally {
      held.close();
    }
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('%s to npm itself stops start.js, Redis, listener, worker (and its loaders) and API', async (signal) => {
    const sys = await boot('npm', signal.toLowerCase());
    const tree = [sys.proc.pid!, ...descendants(sys.proc.pid!)];
    // npm, start.js, redis, listener, worker, the worker's loader process, api
    expect(tree.length).toBeGreaterThanOrEqual(7);
    for (const child of ['redis', 'listener', 'worker', 'api']) expect(tree).toContain(sys.pids.get(child));
    sys.proc.kill(signal);
    await sys.exited;
    await waitFor('no process of the tree left', async () => tree.every((p) => !alive(p)), 60_000);
    expect(sys.lines.some((l) => /"msg":"stopped"/.test(l))).toBe(true);
  });
});
