// Long-lived API streams and what a client that goes away early leaves behind: an SSE stream whose client left
// while the request was still being audited must give back its event listener, or months of dropped browser tabs
// add up.
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { connectRedis } from '../../shared/redis';
import { startRedis, type TestRedis } from '../helpers/redis';
import { READER, buildTestApp, testDeps } from './helpers';
import { createFileAuditLog, type AuditLog } from '../../services/api/plugins/audit';

let server: TestRedis;
let redis: Redis;

beforeAll(async () => {
  server = await startRedis();
  redis = connectRedis(server.url, 'producer');
  await new Promise((r) => redis.once('ready', r));
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test('an event stream whose client left while its request was being audited keeps no listener', async () => {
  // The audit write is held until the client has gone (a slow disk, a busy NFS server).
  const real = createFileAuditLog(path.join(testDeps(redis).config.DATA_DIR as string, 'audit.jsonl'));
  let held = 0;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const auditLog: AuditLog = {
    write: async (entry) => {
      if (entry.action === 'events.subscribe') {
        held += 1;
        await gate;
      }
      await real.write(entry);
    },
    reopen: () => real.reopen(),
    close: () => real.close(),
  };
  const app: FastifyInstance = await buildTestApp(redis, { auditLog });
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const listeners = () => app.live.events.listenerCount('event');
    const before = listeners();
    for (let i = 0; i < 3; i++) {
      const req = request({ host: '127.0.0.1', port, path: '/api/v1/events', headers: READER });
      req.on('error', () => undefined);
      req.end();
      await until('the audit write', () => held === i + 1);
      req.destroy();
      await sleep(100);
    }
    release();
    await sleep(200);
    expect(listeners()).toBe(before);
  } finally {
    release();
    await app.close();
  }
});
