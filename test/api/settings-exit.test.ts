// The built API (node dist/services/api/main.js) stopped by a setting exits with EXIT_CONFIG (78) and a message
// naming it, as the listener and the worker do, so `npm start` stops instead of restarting it for ever. A typo in
// API_TRUST_PROXY's address list was a TypeError from Fastify's proxy-addr (exit 1), and a certificate file that is
// not there an ENOENT stack (exit 1).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EXIT_CONFIG } from '../../shared/config';

const ROOT = path.resolve(__dirname, '..', '..');
const MAIN = path.join(ROOT, 'dist', 'services', 'api', 'main.js');

let dataDir: string;
beforeAll(() => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} missing: run npm run build`);
  dataDir = mkdtempSync(path.join(tmpdir(), 'nt-api-settings-'));
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

// Redis on a port nobody listens on: the API starts without Redis, so only a setting can stop it before the timeout.
const run = (env: Record<string, string>) =>
  spawnSync(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir, API_HOST: '127.0.0.1', API_PORT: '0', REDIS_URL: 'redis://127.0.0.1:9', MODELS_DIR: path.join(dataDir, 'none'), LOG_LEVEL: 'warn', ...env },
    encoding: 'utf8',
    timeout: 15_000,
  });

test.each(['foo.bar', '10.0.0.300', '10.1.0.0/40'])('API_TRUST_PROXY=%s: exit 78 naming the setting and what it takes', (value) => {
  const r = run({ API_TRUST_PROXY: `10.0.0.1, ${value}` });
  expect(r.status).toBe(EXIT_CONFIG);
  expect(r.stderr).toContain(`API_TRUST_PROXY: "${value}" is not an address; expected a hop count, true, false, or a comma list of IP addresses`);
  expect(r.stderr).not.toMatch(/TypeError/);
}, 30_000);

test('an audit log the API cannot write: exit 78 naming API_AUDIT_LOG_FILE', () => {
  const r = run({ API_AUDIT_LOG_FILE: '/dev/null/audit/api-audit.jsonl' });
  expect(r.status).toBe(EXIT_CONFIG);
  expect(r.stderr).toMatch(/API_AUDIT_LOG_FILE: cannot append to \/dev\/null\/audit\/api-audit\.[^ ]+\.jsonl: E/);
}, 30_000);

test('a TLS certificate file that is not there: exit 78 naming API_TLS_CERT_FILE', () => {
  const missing = path.join(dataDir, 'no-such-cert.pem');
  const r = run({ API_TLS_CERT_FILE: missing, API_TLS_KEY_FILE: missing });
  expect(r.status).toBe(EXIT_CONFIG);
  expect(r.stderr).toContain(`API_TLS_CERT_FILE ${missing}: ENOENT`);
}, 30_000);
