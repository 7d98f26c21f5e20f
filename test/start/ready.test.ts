// When `npm start` says "neurotriage is running" (the built dist/scripts/start.js, fixture bundle, real Redis):
// every service's /readyz already says ready at that moment, the worker's model sessions loaded included (the line
// used to come about 3 s before the worker was ready). A service that does not get ready in time is named, with
// what it still waits for, and the ready line is not printed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeTinyBundle } from '../worker/bundle';
import { requireBuild } from '../worker/helpers';
import { freePort } from '../helpers/ports';
import { echoscu } from '../helpers/dcmtk';
import { alive, descendants, startSystem, waitFor, type System } from './harness';

jest.setTimeout(180_000);

async function readyz(port: number): Promise<{ status: number; body: { status?: string } }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: (await res.json()) as { status?: string } };
}

describe('npm start says it is running only when it is', () => {
  let root: string;
  let modelsDir: string;
  const systems: System[] = [];

  beforeAll(() => {
    requireBuild();
    root = mkdtempSync(path.join(tmpdir(), 'nt-ready-'));
    modelsDir = makeTinyBundle();
  });
  afterAll(async () => {
    for (const s of systems) {
      const tree = [s.proc.pid!, ...descendants(s.proc.pid!), ...s.allPids];
      s.proc.kill('SIGTERM');
      await Promise.race([s.exited, new Promise((r) => setTimeout(r, 20_000))]);
      for (const pid of tree) if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
    rmSync(root, { recursive: true, force: true });
    rmSync(modelsDir, { recursive: true, force: true });
  });

  it('the ready line comes once every /readyz answers 200, the worker\'s models loaded; DICOM_PORT 0 printed as the port taken', async () => {
    const ports = { listener: await freePort(), worker: await freePort(), api: await freePort() };
    const sys = startSystem({
      via: 'node', dataDir: path.join(root, 'ok', 'data'), modelsDir, dicomPort: 0, apiPort: ports.api,
      // A loaded machine may take longer than the default 60 s: no "still starting" warning comes before the line.
      env: { METRICS_PORT: String(ports.listener), WORKER_METRICS_PORT: String(ports.worker), START_READY_TIMEOUT_SECONDS: '600' },
    });
    systems.push(sys);
    const running = JSON.parse(await sys.waitLine(/"msg":"neurotriage is running/, 120_000)) as { api: string; dicom: string };
    expect(running.api).toBe(`http://127.0.0.1:${ports.api}/`);
    // The port the listener took, not the setting's 0: a C-ECHO to the printed address is answered.
    const dicomPort = Number(/^NEUROTRIAGE@127\.0\.0\.1:(\d+)$/.exec(running.dicom)?.[1]);
    expect(dicomPort).toBeGreaterThan(0);
    expect((await echoscu({ port: dicomPort, callingAe: 'STORESCU', calledAe: 'NEUROTRIAGE' })).code).toBe(0);
    // At once, before anything else can finish starting.
    const answers = await Promise.all(Object.values(ports).map(readyz));
    // 200 is ready as a probe takes it (the API says "degraded" with 200 while its text encoder still loads).
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect([answers[0].body.status, answers[1].body.status]).toEqual(['ready', 'ready']);
    const at = (re: RegExp) => sys.lines.findIndex((l) => re.test(l));
    expect(at(/"msg":"worker ready"/)).toBeGreaterThanOrEqual(0);
    expect(at(/"msg":"worker ready"/)).toBeLessThan(at(/"msg":"neurotriage is running/));
    expect(sys.lines.some((l) => /still starting/.test(l))).toBe(false);
  });

  it('a worker that cannot get ready (no model bundle) is named as still starting; no ready line', async () => {
    const empty = mkdtempSync(path.join(root, 'no-bundle-'));
    const sys = startSystem({
      via: 'node', dataDir: path.join(root, 'no-bundle', 'data'), modelsDir: empty, dicomPort: await freePort(), apiPort: await freePort(),
      env: { START_READY_TIMEOUT_SECONDS: '5' },
    });
    systems.push(sys);
    const line = await sys.waitLine(/still starting/, 60_000);
    expect(line).toMatch(/worker/);
    expect(line).toMatch(/model bundle/);
    expect(line).not.toMatch(/listener|"api"/);
    expect(sys.lines.some((l) => /neurotriage is running/.test(l))).toBe(false);
    sys.proc.kill('SIGTERM');
    expect(await sys.exited).toEqual({ code: 0, signal: null });
    await waitFor('every started process to exit', async () => [...sys.allPids].every((p) => !alive(p)), 30_000);
  });
});
