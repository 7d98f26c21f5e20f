// Long-lived API streams and what a client that goes away early leaves behind: an SSE stream whose client left
// while the request was still being audited, and an audit export the client stopped reading. Each must give back
// what it took (an event listener, open audit files), or months of dropped browser tabs and aborted exports add up.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { waitFor } from '../helpers/wait';
import { ADMIN, READER, buildTestApp, testDeps } from './helpers';
import { build } from '../../services/api/app';
import { createFileAuditLog, type AuditLog } from '../../services/api/plugins/audit';
import { openFilesUnder } from '../helpers/open-files';

let redis: Redis;

beforeAll(async () => {
  redis = await startRedisClient('producer');
});

afterAll(() => stopRedisClient(redis));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const until = (what: string, check: () => boolean, ms = 5000) => waitFor(what, check, ms, 10);

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
    // Each held request finishes its audit write (a file append) and only then finds its client gone: wait for
    // that rather than a fixed pause a loaded machine can outlast.
    await until('the held streams to detach', () => listeners() === before).catch(() => undefined);
    expect(listeners()).toBe(before);
  } finally {
    release();
    await app.close();
  }
});

test('an audit export the client stops reading closes every audit file it opened', async () => {
  const deps = testDeps(redis);
  const auditDir = path.join(deps.config.DATA_DIR as string, 'audit');
  mkdirSync(auditDir, { recursive: true });
  // Four replicas' files, each longer than what the export reads ahead.
  const at = Date.now() - 60_000;
  for (const host of ['a', 'b', 'c', 'd']) {
    const lines = Array.from({ length: 5000 }, (_, i) => JSON.stringify({ at: new Date(at + i).toISOString(), user: 'dr-reader', role: 'reader', action: 'worklist.read', requestId: `${host}-${i}`, ip: '127.0.0.1' }));
    writeFileSync(path.join(auditDir, `api-audit.${host}.jsonl`), `${lines.join('\n')}\n`);
  }
  const app = await build(deps);
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const before = openFilesUnder(auditDir);
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/api/v1/audit', headers: ADMIN }, (res) => {
          expect(res.statusCode).toBe(200);
          // The first lines arrive; then the admin closes the tab.
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
        req.end();
      });
    }
    // Our own audit file (written by each export's audit entry) is opened once and kept: it is not counted.
    const own = () => readdirSync(auditDir).filter((n) => !/^api-audit\.[abcd]\.jsonl$/.test(n)).length;
    // The server hears each client leave, and its readers' descriptors close, a few turns later (a file close goes
    // through the thread pool): wait for that rather than a fixed pause a loaded machine can outlast.
    await until('the export readers to close', () => openFilesUnder(auditDir) <= before + own(), 10_000).catch(() => undefined);
    expect(openFilesUnder(auditDir)).toBeLessThanOrEqual(before + own());
  } finally {
    await app.close();
  }
});
