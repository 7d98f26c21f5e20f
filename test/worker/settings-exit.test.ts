// The built worker (node dist/services/worker/main.js) stopped by a setting exits with EXIT_CONFIG (78) and a
// message naming it, before it opens its HTTP port or waits for a model bundle. An unknown EXECUTION_PROVIDERS
// entry ("gpu") was found only when the bundle loaded: a plain error (exit 1) that npm start restarted for ever,
// and with no bundle there yet, never found at all (the worker waited for the bundle first).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EXIT_CONFIG } from '../../shared/config';

const ROOT = path.resolve(__dirname, '..', '..');
const MAIN = path.join(ROOT, 'dist', 'services', 'worker', 'main.js');

let dataDir: string;
beforeAll(() => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} missing: run npm run build`);
  dataDir = mkdtempSync(path.join(tmpdir(), 'nt-worker-settings-'));
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const run = (env: Record<string, string>) =>
  spawnSync(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir, WORKER_METRICS_PORT: '0', REDIS_URL: 'redis://127.0.0.1:9', ...env },
    encoding: 'utf8',
    timeout: 20_000,
  });

test('an unknown execution provider: exit 78 naming EXECUTION_PROVIDERS and the known ones, even with no bundle yet', () => {
  const r = run({ EXECUTION_PROVIDERS: 'gpu,cpu', MODELS_DIR: path.join(dataDir, 'no-bundle-here') });
  expect(r.status).toBe(EXIT_CONFIG);
  expect(r.stderr).toMatch(/EXECUTION_PROVIDERS="gpu,cpu": unknown provider\(s\) gpu; expected a comma list of cuda, cpu/);
  expect(r.stdout).not.toMatch(/listening/);
}, 30_000);

test('a bad value: exit 78 naming the setting', () => {
  const r = run({ WORKER_LOCALISE: 'maybe' });
  expect(r.status).toBe(EXIT_CONFIG);
  expect(r.stderr).toMatch(/WORKER_LOCALISE="maybe": expected true or false/);
}, 30_000);
