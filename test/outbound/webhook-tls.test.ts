// The webhook against a real node:https receiver on 127.0.0.1:0 whose certificate the API cannot verify (a throwaway
// self-signed one from openssl, not in the API's trust store), through BullMQ on a private Redis: a certificate error
// is a configuration error, failed at once, not retried for minutes.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { createLogger } from '../../shared/logger';
import { connectRedis } from '../../shared/redis';
import { loadOutboundConfig } from '../../services/api/outbound/config';
import { resultKey } from '../../services/api/outbound/idempotency';
import { createOutbound, type Outbound } from '../../services/api/outbound/outbound';
import { startRedis, type TestRedis } from '../helpers/redis';
import { makeResult, writeResult } from './helpers/fixtures';

let redisServer: TestRedis;
let redis: Redis;
let server: https.Server;
let outbound: Outbound;
let dir: string;
const registry = new Registry();
let requests = 0;
const logLines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  redisServer = await startRedis();
  redis = connectRedis(redisServer.url, 'worker');
  dir = mkdtempSync(path.join(tmpdir(), 'nt-webhook-tls-'));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  server = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
    requests += 1;
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const logs = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  outbound = createOutbound(
    loadOutboundConfig({
      WEBHOOK_URL: `https://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/neurotriage`,
      WEBHOOK_SECRET: 'a-test-secret-of-some-length',
      WEBHOOK_MIN_PRIORITY: 'URGENT',
      // Retried, the delivery would take three attempts 2 s apart before it was given up.
      OUTBOUND_ATTEMPTS: '3',
      OUTBOUND_BACKOFF_MS: '2000',
      OUTBOUND_CATCHUP_MINUTES: '0',
    }),
    { redisUrl: redisServer.url, registry, logger: createLogger('outbound-tls-test', 'info', logs), dataDir: redisServer.dir, subscribe: false },
  );
  await outbound.start();
});

afterAll(async () => {
  await outbound?.close();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  redis?.disconnect();
  await redisServer?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const m = await registry.getSingleMetric(name)!.get();
  return m.values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((a, v) => a + v.value, 0);
}

test('a receiver whose certificate fails verification: failed at once as a permanent certificate error, not retried', async () => {
  // It was retried like a network error for the whole backoff schedule (about 4 minutes by default) and then
  // dead-lettered as retries-exhausted: a certificate does not heal within minutes.
  const result = makeResult('STAT');
  await writeResult(redis, result);
  await outbound.enqueue(result);
  const key = resultKey(result);
  const started = Date.now();
  let state: string;
  for (;;) {
    state = await outbound.queue('webhook').getJobState(key.jobId);
    if (state === 'completed' || state === 'failed' || Date.now() - started > 10_000) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(state).toBe('failed');
  // The TLS handshake failed: no request reached the receiver.
  expect(requests).toBe(0);
  const dead = await outbound.deadLetterQueue('webhook').getJob(key.jobId);
  expect(dead?.data).toMatchObject({ adapter: 'webhook', reason: 'tls-certificate', permanent: true, attemptsMade: 1 });
  expect(dead?.data.error).toMatch(/certificate.*DEPTH_ZERO_SELF_SIGNED_CERT/);
  expect(await metric('neurotriage_outbound_failed_total', { adapter: 'webhook', reason: 'tls-certificate', permanent: 'true' })).toBe(1);
  expect(await metric('neurotriage_outbound_failed_total', { adapter: 'webhook', permanent: 'false' })).toBe(0);
  expect(await metric('neurotriage_outbound_dead_lettered_total', { adapter: 'webhook', reason: 'tls-certificate' })).toBe(1);
  const given = logLines.find((l) => l.msg === 'outbound delivery given up: dead-lettered');
  expect(given).toMatchObject({ reason: 'tls-certificate', permanent: true });
  expect(String(given?.err)).toMatch(/certificate/);
  // No patient identifier in what was logged.
  expect(JSON.stringify(logLines)).not.toContain(result.AccessionNumber!);
});
