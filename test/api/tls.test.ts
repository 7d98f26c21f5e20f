// The API terminating TLS itself (API_TLS_CERT_FILE/API_TLS_KEY_FILE): a throwaway self-signed certificate from
// openssl, the app on listen(0), and a client that trusts only that certificate.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { get } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { READER, buildTestApp } from './helpers';

let redis: Redis;

beforeAll(async () => {
  redis = await startRedisClient('producer');
});

afterAll(() => stopRedisClient(redis));

function fetchJson(url: string, ca: Buffer, headers: Record<string, string>): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    get(url, { ca, headers }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) }));
    }).on('error', reject);
  });
}

test('serves HTTPS with the configured certificate and key', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nt-tls-'));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const app = await buildTestApp(redis, { https: { key: readFileSync(key), cert: readFileSync(cert) } });
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const me = await fetchJson(`https://127.0.0.1:${port}/api/v1/me`, readFileSync(cert), READER);
    expect(me).toEqual({ status: 200, body: { name: 'dr-reader', role: 'reader' } });
  } finally {
    await app.close();
  }
});
