// The audit log on a disk that fills up, on a real (small, private tmpfs) file system: an audited read whose entry
// cannot be written is refused (500, fail closed), and once space returns the next entries are written whole and
// read back by the export. A write that ENOSPC cut short leaves a partial line; the next entry must not be glued to
// it, or the export (which skips a line it cannot parse) loses an entry whose request was answered.
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { connectRedis } from '../../shared/redis';
import { startRedis, type TestRedis } from '../helpers/redis';
import { startSmallFs, type SmallFs } from '../helpers/small-fs';
import { ADMIN, READER, buildTestApp } from './helpers';

let redis: TestRedis;
let client: Redis;
let fs: SmallFs;
let app: FastifyInstance;

beforeAll(async () => {
  redis = await startRedis();
  client = connectRedis(redis.url, 'producer');
  fs = await startSmallFs(1024);
  app = await buildTestApp(client, { config: { DATA_DIR: fs.dir, DISK_MIN_FREE_MB: 1 } });
});

afterAll(async () => {
  await app?.close();
  client?.disconnect();
  await fs?.stop();
  await redis?.stop();
});

test('an entry cut short by a full disk fails its request, and the entries after space returns are exported whole', async () => {
  expect((await app.inject({ method: 'GET', url: '/api/v1/queries', headers: READER })).statusCode).toBe(200);
  let answered = 1;
  fs.fill();
  // The audit file's last block still has room for a few entries; the one that needs a new block is cut short.
  let refused: { statusCode: number; body: string } | undefined;
  for (let i = 0; i < 200 && !refused; i++) {
    const res = await app.inject({ method: 'GET', url: '/api/v1/queries', headers: READER });
    if (res.statusCode !== 200) refused = res;
    else answered += 1;
  }
  expect(refused?.statusCode).toBe(500);
  expect(refused?.body).not.toContain('ENOSPC');
  expect(JSON.parse(refused?.body ?? '{}')).not.toHaveProperty('queries');

  fs.drain();
  const after = await app.inject({ method: 'GET', url: '/api/v1/queries', headers: READER });
  expect(after.statusCode).toBe(200);
  answered += 1;
  const exported = await app.inject({ method: 'GET', url: '/api/v1/audit', headers: ADMIN });
  expect(exported.statusCode).toBe(200);
  const entries = exported.body.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { action: string });
  // Every read that was answered is in the export (the refused one's partial line is not), and so is the export.
  expect(entries.filter((e) => e.action === 'queries.read')).toHaveLength(answered);
  expect(entries.at(-1)?.action).toBe('audit.export');
});
