// `npm run demo` (the built dist/scripts/demo.js) beside something already holding one of its ports, as when a
// newcomer runs it with `npm start` still up: it used to wait for "a port answering", take the other program for
// its own system and send the studies there, or give up after 60 s leaving the system it started running.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { requireBuild } from '../worker/helpers';
import { freePort } from '../helpers/ports';
import { ROOT } from './harness';

jest.setTimeout(60_000);

test('a port already taken: the demo says which setting, starts nothing and exits 1', async () => {
  requireBuild();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'nt-demo-'));
  const held = net.createServer();
  const apiPort = await freePort();
  await new Promise<void>((r) => held.listen(apiPort, '127.0.0.1', r));
  try {
    const env = {
      PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), DATA_DIR: dataDir,
      DICOM_PORT: String(await freePort()), API_PORT: String(apiPort), REPORTS_MLLP_PORT: String(await freePort()),
    };
    const demo = spawn(process.execPath, [path.join(ROOT, 'dist', 'scripts', 'demo.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    demo.stdout.on('data', (d: Buffer) => (out += d.toString()));
    demo.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => demo.once('exit', r));
    expect(code).toBe(1);
    expect(out).toContain(`demo: 127.0.0.1:${apiPort} (API_PORT) is already taken`);
    // Nothing was started: no service line, no private Redis under DATA_DIR.
    expect(out).not.toMatch(/service started/);
    expect(existsSync(path.join(dataDir, 'redis'))).toBe(false);
  } finally {
    held.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
