// The built listener (node dist/services/listener/main.js) stopped by a setting exits with EXIT_CONFIG (78) and a
// message naming it, like the worker and the API, so `npm start` and an operator see a setting to fix rather
// than a crash to restart. REDIS_URL missing was a plain start failure (exit 1).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EXIT_CONFIG } from '../../shared/config';

const ROOT = path.resolve(__dirname, '..', '..');
const MAIN = path.join(ROOT, 'dist', 'services', 'listener', 'main.js');

let dataDir: string;
beforeAll(() => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} missing: run npm run build`);
  dataDir = mkdtempSync(path.join(tmpdir(), 'nt-listener-settings-'));
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const run = (env: Record<string, string>) =>
  spawnSync(process.execPath, [MAIN], { env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir, DICOM_PORT: '0', METRICS_PORT: '0', ...env }, encoding: 'utf8', timeout: 30_000 });

test('without REDIS_URL: exit 78 naming REDIS_URL', () => {
  const r = run({});
  expect(r.status).toBe(EXIT_CONFIG);
  expect(r.stderr).toMatch(/REDIS_URL: the listener needs Redis/);
});

test('a bad value: exit 78 naming the setting', () => {
  const r = run({ REDIS_URL: 'redis://127.0.0.1:9', DICOM_MAX_PDU_LENGTH: '100' });
  expect(r.status).toBe(EXIT_CONFIG);
  expect(r.stderr).toMatch(/DICOM_MAX_PDU_LENGTH/);
});
