// A stored result the API cannot read (not JSON, or not a StudyResult: a partial or hand-made write, another
// writer's format) on a real Redis: that study's own routes say so clearly, while the worklist and search keep
// working for every other study. Nothing of the stored text reaches a log line or an answer.
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { createLogger } from '../../shared/logger';
import { reportKeys, storeMatchedReport } from '../../shared/reports';
import { resultKeys, worklistScore } from '../../shared/results';
import { keys } from '../../shared/studies';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { ADMIN, READER, SCRAPER, buildTestApp, writeResult } from './helpers';

const T0 = Date.UTC(2026, 0, 5, 8, 0, 0);
const GOOD = '1.2.826.0.1.3680043.10.8.1';
const NOT_JSON = '1.2.826.0.1.3680043.10.8.2';
const WRONG_SHAPE = '1.2.826.0.1.3680043.10.8.3';
const LATER = '1.2.826.0.1.3680043.10.8.4';
const SECRET = 'ACC-CANARY-7731';

let redis: Redis;
let app: FastifyInstance;
const logLines: string[] = [];

/** A result written as a broken writer would: raw text at the result key, listed on the worklist. */
async function writeRaw(uid: string, raw: string, receivedAt: number): Promise<void> {
  await redis
    .multi()
    .hset(keys.study(uid), { status: 'scored', firstReceivedAt: receivedAt, lastReceivedAt: receivedAt, instances: 40 })
    .set(resultKeys.result(uid), raw)
    .zadd(resultKeys.worklist(), worklistScore('STAT', receivedAt), uid)
    .exec();
}

beforeAll(async () => {
  redis = await startRedisClient('producer');
  const logger = createLogger('api-test', 'info', new Writable({ write: (chunk: Buffer, _enc, done) => { logLines.push(chunk.toString('utf8')); done(); } }));
  app = await buildTestApp(redis, { logger });
  await app.ready();
  await writeResult(redis, { uid: GOOD, priority: 'STAT', receivedAt: T0, looksLike: 'acute infarct restricted diffusion', flagged: ['acute_infarct'] });
  // Cut off mid-write, and quoting an accession number JSON.parse's message would repeat.
  await writeRaw(NOT_JSON, `{"AccessionNumber":"${SECRET}","StudyInstanceUID":"${NOT_JSON}","prio`, T0 + 1000);
  // Valid JSON, but no findings, series or model: not a StudyResult.
  await writeRaw(WRONG_SHAPE, JSON.stringify({ StudyInstanceUID: WRONG_SHAPE, AccessionNumber: SECRET, priority: 'STAT', findings: 'none' }), T0 + 2000);
  await writeResult(redis, { uid: LATER, priority: 'STAT', receivedAt: T0 + 3000, looksLike: 'intracranial haemorrhage blood products', flagged: ['haemorrhage'] });
});

afterAll(() => stopRedisClient(redis, app));

test('the worklist lists every readable study and names the unreadable ones in `unreadable`', async () => {
  const res = await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: READER });
  expect(res.statusCode).toBe(200);
  expect(res.json().items.map((i: { StudyInstanceUID: string }) => i.StudyInstanceUID)).toEqual([GOOD, LATER]);
  expect(res.json().unreadable).toEqual([NOT_JSON, WRONG_SHAPE]);
});

/** neurotriage_api_results_unreadable_total as /metrics exports it. */
const unreadableCount = async () => {
  const res = await app.inject({ method: 'GET', url: '/metrics', headers: SCRAPER });
  return Number(/^neurotriage_api_results_unreadable_total (\d+)$/m.exec(res.body)?.[1]);
};

test('each unreadable result the API meets is counted in neurotriage_api_results_unreadable_total, so an admin sees one is stored', async () => {
  const count = unreadableCount;
  const before = await count();
  await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: READER });
  expect(await count()).toBe(before + 2);
  await app.inject({ method: 'GET', url: `/api/v1/studies/${GOOD}`, headers: READER });
  expect(await count()).toBe(before + 2);
});

test('an unreadable study is reported on the page it would sit in, once', async () => {
  const first = await app.inject({ method: 'GET', url: '/api/v1/worklist?limit=1', headers: READER });
  expect(first.json()).toMatchObject({ items: [{ StudyInstanceUID: GOOD }], unreadable: [] });
  const second = await app.inject({ method: 'GET', url: `/api/v1/worklist?limit=1&cursor=${first.json().nextCursor}`, headers: READER });
  expect(second.json()).toMatchObject({ items: [{ StudyInstanceUID: LATER }], unreadable: [NOT_JSON, WRONG_SHAPE], nextCursor: null });
});

test.each([
  ['GET', NOT_JSON, ''],
  ['GET', WRONG_SHAPE, ''],
  ['POST', NOT_JSON, '/score'],
])('%s the study %s%s is a 500 problem saying its stored result is unreadable and what to do', async (method, uid, tail) => {
  const res = await app.inject({ method: method as 'GET', url: `/api/v1/studies/${uid}${tail}`, headers: READER, ...(method === 'POST' ? { payload: { text: 'acute infarct' } } : {}) });
  expect(res.statusCode).toBe(500);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.json().detail).toBe(
    `the stored result of study ${uid} is unreadable (not JSON, or not in the format this API reads); score the study again (POST /api/v1/studies/${uid}/rescore, or "Score again" on the worklist page)`,
  );
});

test('search ranks the readable studies and leaves the unreadable ones out', async () => {
  const res = await app.inject({ method: 'GET', url: `/api/v1/search?q=${encodeURIComponent('acute infarct')}`, headers: READER });
  expect(res.statusCode).toBe(200);
  expect(res.json().items.map((i: { StudyInstanceUID: string }) => i.StudyInstanceUID).sort()).toEqual([GOOD, LATER]);
});

test('calibrating a query from reports leaves out a reported study whose result is unreadable (saving the query was a 500)', async () => {
  for (const [i, uid] of [NOT_JSON, WRONG_SHAPE, GOOD].entries()) {
    await storeMatchedReport(redis, { AccessionNumber: `R${i}`, StudyInstanceUID: uid, text: 'Acute infarct.', status: 'F', receivedAt: T0 + i, source: 'api' });
  }
  const before = await unreadableCount();
  const res = await app.inject({ method: 'POST', url: '/api/v1/queries', headers: ADMIN, payload: { id: 'infarct_site', text: 'acute infarct restricted diffusion', priority: 'STAT' } });
  expect(res.statusCode).toBe(201);
  expect(res.json().calibration.detail).toMatch(/^1 past studies have both a report and image vectors/);
  // Counted as the worklist and search count them: each unreadable result met, at each calibration.
  expect(await unreadableCount()).toBe(before + 2);
  expect((await app.calibration.pass()).tried).toEqual(['infarct_site']);
  expect(await unreadableCount()).toBe(before + 4);
});

test('calibrating leaves out a reported study whose stored image vectors cannot be read, and recomputes an unreadable cached report reading (each made saving any query a 500)', async () => {
  const CUT = '1.2.826.0.1.3680043.10.8.5';
  const OTHER_SIZE = '1.2.826.0.1.3680043.10.8.6';
  const BAD_NORMS = '1.2.826.0.1.3680043.10.8.7';
  for (const [i, uid] of [CUT, OTHER_SIZE, BAD_NORMS].entries()) {
    await writeResult(redis, { uid, priority: 'STAT', receivedAt: T0 + 10 + i, looksLike: 'acute infarct restricted diffusion' });
    await storeMatchedReport(redis, { AccessionNumber: `V${i}`, StudyInstanceUID: uid, text: 'Acute infarct.', status: 'F', receivedAt: T0 + 10 + i, source: 'api' });
  }
  // Bytes cut off mid-vector, a vector of another size than the bundle's, and norms that are not JSON.
  await redis.hset(resultKeys.vectors(CUT), 'DWI', Buffer.from([1, 2, 3]));
  await redis.hset(resultKeys.vectors(OTHER_SIZE), 'DWI', Buffer.alloc(16));
  await redis.hset(resultKeys.vectors(BAD_NORMS), 'norms', Buffer.from(`{"DWI": ${SECRET}`));
  // GOOD's report, read once (cached), then its cached sentence vectors damaged.
  await storeMatchedReport(redis, { AccessionNumber: 'V9', StudyInstanceUID: GOOD, text: 'Acute infarct.', status: 'F', receivedAt: T0 + 20, source: 'api' });
  await app.calibration.reports()!.many([GOOD]);
  const cacheKey = reportKeys.sentenceVectors(GOOD);
  const [field] = await redis.hkeys(cacheKey);
  await redis.hset(cacheKey, field, '{"sentences":["acute infarct"],"vectors":"AAA"}');

  const before = await unreadableCount();
  const res = await app.inject({ method: 'POST', url: '/api/v1/queries', headers: ADMIN, payload: { id: 'infarct_vectors', text: 'acute infarct restricted diffusion', priority: 'STAT' } });
  expect(res.statusCode).toBe(201);
  // GOOD is read (its report read again); the three are left out, as the two unreadable results are.
  expect(res.json().calibration.detail).toMatch(/^1 past studies have both a report and image vectors/);
  expect(await unreadableCount()).toBe(before + 5);
  expect(logLines.some((l) => l.includes('left out of calibration') && [CUT, OTHER_SIZE, BAD_NORMS].every((u) => l.includes(u)))).toBe(true);
  expect((await app.calibration.reports()!.many([GOOD]))[0]?.sentences).toEqual(['Acute infarct']);
  expect((await app.calibration.pass()).tried).toContain('infarct_vectors');
});

test('no log line or answer repeats the stored text', () => {
  expect(logLines.length).toBeGreaterThan(0);
  expect(logLines.join('\n')).not.toContain(SECRET);
  // Each is logged by its UID, on the worklist and by its own routes.
  expect(logLines.some((l) => l.includes('left off the worklist') && l.includes(NOT_JSON) && l.includes(WRONG_SHAPE))).toBe(true);
  expect(logLines.some((l) => l.includes(`study ${WRONG_SHAPE} is unreadable`))).toBe(true);
  expect(logLines.some((l) => l.includes('left out of calibration') && l.includes(NOT_JSON) && l.includes(WRONG_SHAPE))).toBe(true);
});
