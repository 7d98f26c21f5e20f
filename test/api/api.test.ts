// API integration tests: the app from build(deps) on a real Redis, driven with app.inject(). Routes that need
// embeddings use the small deterministic hash embedder from helpers.ts (not the model bundle), so orderings
// here test the API's ranking and rules, not the model.
import { readFileSync, renameSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { createLogger } from '../../shared/logger';
import { queryKeys, readSiteLayer, changeQuery } from '../../shared/queries';
import { keys } from '../../shared/studies';
import type { TriageQuery } from '../../shared/model-manifest';
import { storeMatchedReport } from '../../shared/reports';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { ADMIN, HASH_MODEL, NORMAL_TEXT, QUERIES, READER, SCRAPER, buildTestApp, hashEmbed, testDeps, testModelStatus, writeResult } from './helpers';
import { calibrated, testCalibration } from '../helpers/calibration';
import { float32ToLE } from '../../shared/float32';
import { SENTENCE_RULES_VERSION } from '../../shared/language/sentences';
import { cosine } from '../../services/api/vectors';
import { build } from '../../services/api/app';
import { auditFileFor } from '../../services/api/plugins/audit';
import { backfillUntriagedIndex } from '../../services/worker/store';

let redis: Redis;
let app: FastifyInstance;
let dataDir: string;

const T0 = Date.UTC(2026, 0, 5, 8, 0, 0);
const INFARCT = '1.2.826.0.1.3680043.10.1.1';
const BLEED = '1.2.826.0.1.3680043.10.1.2';
const MASS = '1.2.826.0.1.3680043.10.1.3';
const NORMAL = '1.2.826.0.1.3680043.10.1.4';
const QUEUED = '1.2.826.0.1.3680043.10.1.5';

async function seed(): Promise<void> {
  await redis.flushall();
  await writeResult(redis, { uid: NORMAL, priority: 'ROUTINE', receivedAt: T0, looksLike: 'normal brain no abnormality', accession: 'ACC4' });
  await writeResult(redis, { uid: MASS, priority: 'URGENT', receivedAt: T0 + 1000, looksLike: 'enhancing mass lesion tumour oedema', flagged: ['mass'], accession: 'ACC3' });
  await writeResult(redis, { uid: BLEED, priority: 'STAT', receivedAt: T0 + 3000, looksLike: 'intracranial haemorrhage blood products', flagged: ['haemorrhage'], accession: 'ACC2' });
  await writeResult(redis, { uid: INFARCT, priority: 'STAT', receivedAt: T0 + 2000, looksLike: 'acute infarct restricted diffusion left territory', flagged: ['acute_infarct'], accession: 'ACC1' });
  await redis.hset(keys.study(QUEUED), { status: 'queued', firstReceivedAt: T0 + 5000, lastReceivedAt: T0 + 6000, instances: 12, bytes: 1000 });
}

/** This process's audit file (one per API instance, named after the host). */
/** Writes `request` as raw bytes to 127.0.0.1:`port` and resolves with all the server sent before it closed (or `giveUpMs`). */
function rawExchange(port: number, request: string, giveUpMs: number): Promise<string> {
  return new Promise<string>((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    let text = '';
    const giveUp = setTimeout(() => socket.destroy(), giveUpMs);
    socket.on('data', (d) => (text += d.toString('utf8')));
    socket.on('close', () => {
      clearTimeout(giveUp);
      resolve(text);
    });
    socket.on('error', () => undefined);
  });
}

const auditFile = (dir: string) => auditFileFor(path.join(dir, 'audit', 'api-audit.jsonl'));

function auditLines(dir = dataDir): Record<string, unknown>[] {
  const file = auditFile(dir);
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

beforeAll(async () => {
  redis = await startRedisClient('producer');
  const deps = testDeps(redis);
  dataDir = deps.config.DATA_DIR;
  app = await build(deps);
  await app.ready();
});

afterAll(() => stopRedisClient(redis, app));

beforeEach(seed);

/**
 * The real (hash) embedder, held once at the embedding of one sentence (holdAt): a calibration on a large site takes
 * seconds, and other requests are served meanwhile. Several holds may wait at once (each is taken by the first
 * embedding of its sentence after it was set, in the order they were set). clear() drops the holds not reached.
 */
function gatedEmbedder() {
  let gates: { text: string; reached: () => void; released: Promise<void> }[] = [];
  const embedText = async (texts: string[]) => {
    const g = gates.find((x) => texts.includes(x.text));
    if (g) {
      gates = gates.filter((x) => x !== g);
      g.reached();
      await g.released;
    }
    return texts.map(hashEmbed);
  };
  const holdAt = (text: string) => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const reached = new Promise<void>((r) => gates.push({ text, reached: r, released }));
    return { reached, release };
  };
  return { embedText, holdAt, clear: () => void (gates = []) };
}

describe('auth', () => {
  test('a route without a token answers 401 problem+json with a Bearer challenge', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/worklist' });
    expect(res.statusCode).toBe(401);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(res.json()).toMatchObject({ status: 401, title: 'Unauthorized', detail: expect.stringContaining('bearer token') });
  });

  test('an unknown token answers 401; a reader writing a query answers 403 naming the role', async () => {
    const bad = await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: { authorization: 'Bearer not-a-real-token-at-all' } });
    expect(bad.statusCode).toBe(401);
    const res = await app.inject({ method: 'DELETE', url: '/api/v1/queries/mass', headers: READER });
    expect(res.statusCode).toBe(403);
    expect(res.json().detail).toContain('admin role');
    expect((await app.inject({ method: 'GET', url: '/api/v1/queries', headers: READER })).json().queries.map((q: { id: string }) => q.id)).toContain('mass');
  });

  test('/livez, /healthz and /readyz need no token; /readyz reports Redis, models and disk', async () => {
    expect((await app.inject({ method: 'GET', url: '/livez' })).json()).toEqual({ status: 'ok' });
    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json().status).toBe('ready');
    expect(ready.json().checks).toMatchObject({ redis: { ok: true }, models: { ok: true }, disk: { ok: true } });
  });

  test('/readyz stays ready (200, "degraded") when the text encoder is not loaded, and embedding routes say why', async () => {
    const down = await buildTestApp(redis, { embedText: null, modelStatus: () => ({ loaded: false, detail: 'onnx-models/manifest.json missing' }) });
    try {
      // The worklist still serves: a bad bundle must not take every API pod off the Service.
      const ready = await down.inject({ method: 'GET', url: '/readyz' });
      expect(ready.statusCode).toBe(200);
      expect(ready.json().status).toBe('degraded');
      expect(ready.json().checks.models).toEqual({ ok: false, detail: 'onnx-models/manifest.json missing' });
      const score = await down.inject({ method: 'POST', url: `/api/v1/studies/${INFARCT}/score`, headers: READER, payload: { text: 'acute infarct' } });
      expect(score.statusCode).toBe(503);
      expect(score.json().detail).toContain('manifest.json missing');
      // The worklist does not need the models.
      expect((await down.inject({ method: 'GET', url: '/api/v1/worklist', headers: READER })).statusCode).toBe(200);
    } finally {
      await down.close();
    }
  });

  test('rate limiting answers 429 problem+json with Retry-After once the budget is spent', async () => {
    const deps = testDeps(redis);
    const tight = await build({ ...deps, settings: { ...deps.settings, API_RATE_LIMIT_MAX: 3 } });
    try {
      const codes: number[] = [];
      for (let i = 0; i < 5; i++) codes.push((await tight.inject({ method: 'GET', url: '/api/v1/me', headers: READER })).statusCode);
      expect(codes).toEqual([200, 200, 200, 429, 429]);
      const res = await tight.inject({ method: 'GET', url: '/api/v1/me', headers: { authorization: 'Bearer guessing-guessing-1234' } });
      expect(res.statusCode).toBe(429);
      expect(res.headers['retry-after']).toBeDefined();
      // The window is API_RATE_LIMIT_WINDOW_SECONDS (60 s in the test settings), not the time left until it refills.
      expect(res.json().detail).toMatch(new RegExp(`^more than 3 requests in ${deps.settings.API_RATE_LIMIT_WINDOW_SECONDS} s; retry after \\d+ s$`));
      expect((await tight.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
      // Without API_TRUST_PROXY a forwarded address is not believed: still the same client.
      const forwarded = await tight.inject({ method: 'GET', url: '/api/v1/me', headers: { ...READER, 'x-forwarded-for': '10.9.9.9' } });
      expect(forwarded.statusCode).toBe(429);
    } finally {
      await tight.close();
    }
  });
});

test('behind a trusted proxy, rate limits and the audit log use the forwarded client address', async () => {
  const deps = testDeps(redis);
  const proxied = await build({ ...deps, settings: { ...deps.settings, API_RATE_LIMIT_MAX: 2, API_TRUST_PROXY: '127.0.0.1' } });
  try {
    const from = (ip: string) => proxied.inject({ method: 'GET', url: `/api/v1/studies/${MASS}`, headers: { ...READER, 'x-forwarded-for': ip } });
    expect([(await from('10.0.0.1')).statusCode, (await from('10.0.0.1')).statusCode, (await from('10.0.0.1')).statusCode]).toEqual([200, 200, 429]);
    expect((await from('10.0.0.2')).statusCode).toBe(200);
    const lines = readFileSync(auditFile(deps.config.DATA_DIR), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.ip)).toEqual(['10.0.0.1', '10.0.0.1', '10.0.0.2']);
  } finally {
    await proxied.close();
  }
});

test('API_TRUST_PROXY=1 (ingress-nginx): the address the ingress added is the client, one a client forged is not', async () => {
  const deps = testDeps(redis);
  const proxied = await build({ ...deps, settings: { ...deps.settings, API_RATE_LIMIT_MAX: 2, API_TRUST_PROXY: '1' } });
  try {
    // A client sends its own X-Forwarded-For; the ingress appends the address it saw.
    const from = (forged: string, real: string) => proxied.inject({ method: 'GET', url: `/api/v1/studies/${MASS}`, headers: { ...READER, 'x-forwarded-for': `${forged}, ${real}` } });
    const codes = [(await from('1.1.1.1', '10.0.0.7')).statusCode, (await from('2.2.2.2', '10.0.0.7')).statusCode, (await from('3.3.3.3', '10.0.0.7')).statusCode];
    expect(codes).toEqual([200, 200, 429]);
    expect((await from('1.1.1.1', '10.0.0.8')).statusCode).toBe(200);
    const lines = readFileSync(auditFile(deps.config.DATA_DIR), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.ip)).toEqual(['10.0.0.7', '10.0.0.7', '10.0.0.8']);
  } finally {
    await proxied.close();
  }
});

describe('validation', () => {
  test('a bad query body answers 400 naming every bad field', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/queries', headers: ADMIN, payload: { id: 'Bad Id', text: 'ab', priority: 'SOON' } });
    expect(res.statusCode).toBe(400);
    const body = res.json();
    const fields = body.errors.map((e: { field: string }) => e.field);
    expect(fields).toEqual(expect.arrayContaining(['body/id', 'body/text', 'body/priority']));
    expect(body.detail).toContain('body/text must NOT have fewer than 3 characters');
    expect(body.detail).toContain('body/priority must be equal to one of the allowed values (STAT, URGENT, ROUTINE)');
    const typo = await app.inject({ method: 'PUT', url: '/api/v1/queries/mass', headers: ADMIN, payload: { text: 'enhancing mass', priority: 'URGENT', negativetext: 'no mass' } });
    expect(typo.statusCode).toBe(400);
    expect(typo.json().detail).toBe('body/negativetext must NOT have additional properties');
    const seqs = await app.inject({ method: 'PUT', url: '/api/v1/queries/mass', headers: ADMIN, payload: { text: 'enhancing mass', priority: 'URGENT', sequences: ['DWI', 'PD'] } });
    expect(seqs.statusCode).toBe(400);
    expect(seqs.json().detail).toContain('body/sequences/1');
  });

  test('bad query-string, path and cursor values answer 400 with the field in the detail', async () => {
    const limit = await app.inject({ method: 'GET', url: '/api/v1/worklist?limit=0', headers: READER });
    expect(limit.statusCode).toBe(400);
    expect(limit.json().detail).toContain('querystring/limit');
    // `since` is a bounded integer: an overflowing or non-finite value is a 400, not an empty list.
    for (const since of ['1e400', '99999999999999999999999', '1.5']) {
      const res = await app.inject({ method: 'GET', url: `/api/v1/worklist?since=${since}`, headers: READER });
      expect(res.statusCode).toBe(400);
      expect(res.json().detail).toContain('querystring/since');
    }
    expect((await app.inject({ method: 'GET', url: `/api/v1/worklist?since=${T0}`, headers: READER })).statusCode).toBe(200);
    const infinite = await app.inject({ method: 'GET', url: '/api/v1/worklist?limit=1e400', headers: READER });
    expect(infinite.statusCode).toBe(400);
    expect(infinite.json().detail).toBe('querystring/limit must be a finite number');
    const prio = await app.inject({ method: 'GET', url: '/api/v1/worklist?priority=SOON', headers: READER });
    expect(prio.json().detail).toContain('querystring/priority');
    // A misspelt filter is refused by name, not ignored (it would return the unfiltered list).
    // Routes that take no query string too (GET /api/v1/queries?id=mass answered the whole list).
    for (const url of ['/api/v1/worklist?priorty=STAT', '/api/v1/search?q=infarct&lmit=5', '/api/v1/studies?status=failed&foo=1', '/api/v1/queries?id=mass', `/api/v1/studies/${MASS}?fields=all`, '/api/v1/me?foo=1']) {
      const res = await app.inject({ method: 'GET', url, headers: READER });
      expect(res.statusCode).toBe(400);
      expect(res.json().detail).toMatch(/^querystring\/(priorty|lmit|foo|id|fields) must NOT have additional properties$/);
    }
    // A parameter given twice was "must be integer" (or "must be string") for a value that is one.
    for (const [url, field] of [['/api/v1/worklist?limit=1&limit=2', 'limit'], ['/api/v1/search?q=infarct&q=bleed', 'q'], ['/api/v1/studies?status=failed&status=scored', 'status']]) {
      const res = await app.inject({ method: 'GET', url, headers: READER });
      expect(res.statusCode).toBe(400);
      expect(res.json().detail).toBe(`querystring/${field} is given 2 times: send it once`);
    }
    const uid = await app.inject({ method: 'GET', url: '/api/v1/studies/not-a-uid', headers: READER });
    expect(uid.statusCode).toBe(400);
    expect(uid.json().detail).toContain('params/StudyInstanceUID');
    const cursor = await app.inject({ method: 'GET', url: '/api/v1/worklist?cursor=garbage', headers: READER });
    expect(cursor.statusCode).toBe(400);
    expect(cursor.json().detail).toContain('cursor');
    const media = await app.inject({ method: 'POST', url: '/api/v1/queries', headers: { ...ADMIN, 'content-type': 'application/xml' }, payload: '<q/>' });
    expect(media.statusCode).toBe(415);
    expect(media.headers['content-type']).toMatch(/problem\+json/);
    expect(media.json().detail).toMatch(/application\/xml/);
    // text/plain is not JSON either (Fastify would parse it as a string and fail validation with 400).
    const text = await app.inject({ method: 'POST', url: '/api/v1/queries', headers: { ...ADMIN, 'content-type': 'text/plain' }, payload: 'acute infarct' });
    expect(text.statusCode).toBe(415);
    expect(text.json()).toMatchObject({ title: 'Unsupported Media Type', detail: 'send the body as application/json, not text/plain' });
    const proto = await app.inject({ method: 'POST', url: '/api/v1/queries', headers: { ...ADMIN, 'content-type': 'application/json' }, payload: '{"__proto__": {"admin": true}, "id": "x1", "text": "abc", "priority": "STAT"}' });
    expect(proto.statusCode).toBe(400);
    expect(proto.json().detail).toMatch(/"__proto__".*prototype pollution/);
    const ctor = await app.inject({ method: 'POST', url: '/api/v1/queries', headers: { ...ADMIN, 'content-type': 'application/json' }, payload: '{"constructor": {"prototype": {"admin": true}}}' });
    expect(ctor.json().detail).toMatch(/prototype pollution/);
    const broken = await app.inject({ method: 'POST', url: '/api/v1/queries', headers: { ...ADMIN, 'content-type': 'application/json; charset=utf-8' }, payload: '{"id": "x1", "text": "private words"' });
    expect(broken.statusCode).toBe(400);
    expect(broken.json().detail).toMatch(/^the body is not valid JSON/);
    expect(broken.json().detail).not.toContain('private words');
    const ok = await app.inject({ method: 'POST', url: '/api/v1/queries', headers: { ...ADMIN, 'content-type': 'application/json; charset=utf-8' }, payload: '{"id": "x1"}' });
    expect(ok.json().detail).toContain('body/text'); // parsed, then validated
    // Under the body limit, 40,000 bad items were 40,000 listed errors: an 8 MB answer. At most 20, and how many more.
    const many = await app.inject({ method: 'POST', url: '/api/v1/queries', headers: ADMIN, payload: { id: 'many', text: 'acute infarct', priority: 'STAT', sequences: Array(40_000).fill('XYZ') } });
    expect(many.statusCode).toBe(400);
    expect(many.json().errors).toHaveLength(20);
    expect(many.json().detail).toMatch(/^body\/sequences\/0 must be equal to one of the allowed values .*; and \d+ more$/);
    expect(many.body.length).toBeLessThan(10_000);
    // The same for values of the wrong type, refused before validation (json-body.ts).
    const typed = await app.inject({ method: 'POST', url: '/api/v1/queries', headers: ADMIN, payload: { id: 'many', text: 'acute infarct', priority: 'STAT', sequences: Array(40_000).fill(1) } });
    expect(typed.statusCode).toBe(400);
    expect(typed.json().errors).toHaveLength(20);
    expect(typed.json().detail).toMatch(/^body\/sequences\/0 must be string; .*; and 39980 more$/);
    const big = await app.inject({ method: 'POST', url: `/api/v1/studies/${INFARCT}/report-check`, headers: READER, payload: { report: 'x'.repeat(300_000) } });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toMatchObject({ title: 'Content Too Large', detail: expect.stringContaining('256 KiB') });
    // A compressed body is refused as such, not as JSON that does not parse.
    const gzipped = await app.inject({
      method: 'POST', url: `/api/v1/studies/${INFARCT}/report-check`, headers: { ...READER, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      payload: gzipSync(JSON.stringify({ report: 'Acute infarct.' })),
    });
    expect(gzipped.statusCode).toBe(415);
    expect(gzipped.json().detail).toBe('Content-Encoding gzip is not accepted: send the body uncompressed');
    const notFound = await app.inject({ method: 'GET', url: '/api/v1/nothing-here', headers: READER });
    expect(notFound.statusCode).toBe(404);
    expect(notFound.headers['content-type']).toMatch(/problem\+json/);
  });

  test('every refusal is a problem that says what is wrong: long UIDs, static-file refusals, oversized request lines', async () => {
    // A UID over Fastify's default parameter limit (100) reaches the schema: a 400 naming the parameter, not a 404.
    const longUid = Array.from({ length: 80 }, () => '1').join('.');
    const long = await app.inject({ method: 'GET', url: `/api/v1/studies/${longUid}`, headers: READER });
    expect(long.statusCode).toBe(400);
    expect(long.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(long.json().detail).toContain('params/StudyInstanceUID must NOT have more than 64 characters');
    // An unknown path is echoed in the detail and the instance only in part.
    const unknown = await app.inject({ method: 'GET', url: `/api/v1/${'x'.repeat(5000)}`, headers: READER });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().detail.length).toBeLessThan(300);
    expect(unknown.json().instance).toBe(`/api/v1/${'x'.repeat(192)}…`);
    // A path whose percent-encoding does not decode ("%ZZ", bytes that are not UTF-8) is refused by Fastify's router
    // before any route: a problem saying why, not Fastify's own JSON quoting the whole path.
    for (const target of [`/api/v1/studies/%ZZ${'1'.repeat(5000)}`, '/api/v1/studies/%C3%28/report', '/%']) {
      const bad = await app.inject({ method: 'GET', url: target, headers: READER });
      expect(bad.statusCode).toBe(400);
      expect(bad.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(bad.headers['x-content-type-options']).toBe('nosniff');
      expect(bad.json()).toMatchObject({ title: 'Bad Request', status: 400, detail: expect.stringContaining('percent-encoding that does not decode') });
      expect(bad.body.length).toBeLessThan(600);
    }
    // Node's parser refuses a request line over 16 KiB before Fastify routes it: still a problem (431).
    const served = await build(testDeps(redis));
    try {
      await served.listen({ host: '127.0.0.1', port: 0 });
      const { port } = served.server.address() as AddressInfo;
      const send = (target: string) => new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
        let text = '';
        socket.on('data', (d) => (text += d.toString('utf8')));
        socket.on('close', () => resolve(text));
        socket.on('error', (err) => (text ? resolve(text) : reject(err)));
      });
      const problem = (text: string) => ({ status: Number(text.split(' ')[1]), type: /\r\ncontent-type: ([^\r]*)/i.exec(text)?.[1], body: JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) });
      // The page's static files (sent as they are, like curl --path-as-is; inject would resolve the dots): a path
      // out of the folder (403) or with a NUL (400) says why, not just its status.
      // /docs's assets too (they said only "Forbidden" and "Bad Request").
      for (const target of ['/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/docs/static/../../../package.json', '/docs/static/%2e%2e/%2e%2e/package.json']) {
        const answer = await send(target);
        expect(answer).toMatch(/\r\nx-content-type-options: nosniff\r\n/i);
        expect(problem(answer)).toMatchObject({
          status: 403, type: expect.stringMatching(/^application\/problem\+json/), body: { title: 'Forbidden', detail: expect.stringContaining("only the page's own files are served") },
        });
      }
      for (const target of ['/index.html%00.js', '/docs/static/%00']) {
        expect(problem(await send(target))).toMatchObject({ status: 400, body: { title: 'Bad Request', detail: expect.stringContaining('NUL byte') } });
      }
      // Two refusals Node answered bare (no body): an HTTP/1.1 request without Host, an Expect it does not meet.
      const exchange = (text: string) => new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => socket.write(text));
        let answer = '';
        socket.on('data', (d) => (answer += d.toString('utf8')));
        socket.on('close', () => resolve(answer));
        socket.on('error', (err) => (answer ? resolve(answer) : reject(err)));
      });
      const noHost = await exchange(`GET /api/v1/me HTTP/1.1\r\nAuthorization: ${READER.authorization}\r\nConnection: close\r\n\r\n`);
      expect(problem(noHost)).toMatchObject({ status: 400, type: expect.stringMatching(/^application\/problem\+json/), body: { detail: 'an HTTP/1.1 request needs a Host header' } });
      const expectation = await exchange(`POST /api/v1/text-check HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`);
      expect(problem(expectation)).toMatchObject({ status: 417, type: 'application/problem+json', body: { title: 'Expectation Failed', detail: expect.stringContaining('Expect: 200-ok is not one the API meets') } });
      // HTTP/1.0 needs no Host.
      expect(await exchange(`GET /livez HTTP/1.0\r\n\r\n`)).toMatch(/^HTTP\/1\.1 200 OK/);
      const raw = await send(`/api/v1/worklist?x=${'a'.repeat(70_000)}`);
      expect(raw).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
      expect(raw).toMatch(/\r\nContent-Type: application\/problem\+json\r\n/);
      const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
      expect(body).toMatchObject({ type: 'about:blank', title: 'Request Header Fields Too Large', status: 431, detail: expect.stringContaining('16 KiB') });
    } finally {
      await served.close();
    }
  });

  test('a request whose body stops arriving is answered 408 and its connection closed, not held open forever', async () => {
    // Fastify's default request timeout (0) turned Node's off: a client that sent its headers and then stalled in the
    // body held its socket for the life of the process. The API's bound is 60 s; shortened here.
    const defaults = await build(testDeps(redis));
    expect([defaults.server.requestTimeout, defaults.server.headersTimeout]).toEqual([60_000, 60_000]);
    await defaults.close();
    const served = await build(testDeps(redis, { requestTimeoutMs: 500 }));
    try {
      await served.listen({ host: '127.0.0.1', port: 0 });
      const { port } = served.server.address() as AddressInfo;
      const started = Date.now();
      const answer = await rawExchange(port, `POST /api/v1/text-check HTTP/1.1\r\nHost: x\r\nAuthorization: ${READER.authorization}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"text":`, 10_000);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(answer).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      expect(answer).toMatch(/\r\nContent-Type: application\/problem\+json\r\n/);
      expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toMatchObject({ status: 408, detail: 'the request did not arrive in full in time' });
    } finally {
      await served.close();
    }
  });

  test('JSON bodies are not type-coerced; free text with control characters, or a report with no text, is 400 naming the field', async () => {
    const post = (url: string, payload: unknown, headers = READER) => app.inject({ method: 'POST', url, headers, payload: payload as Record<string, unknown> });
    const check = `/api/v1/studies/${INFARCT}/report-check`;
    // ajv's coerceTypes (needed for query strings) would have read 123 as "123".
    const num = await post(check, { report: 123 });
    expect(num.statusCode).toBe(400);
    expect(num.json()).toMatchObject({ detail: 'body/report must be string', errors: [{ field: 'body/report', message: 'must be string' }] });
    expect((await post('/api/v1/queries', { id: 'x2', text: 'acute infarct', priority: 'STAT', targetSensitivity: '0.9' }, ADMIN)).json().detail).toBe('body/targetSensitivity must be number');
    expect((await post('/api/v1/queries', { id: 'x2', text: 'acute infarct', priority: 'STAT', sequences: 'DWI' }, ADMIN)).json().detail).toBe('body/sequences must be array');
    // Query strings are still read as typed values.
    expect((await app.inject({ method: 'GET', url: '/api/v1/worklist?limit=2', headers: READER })).statusCode).toBe(200);
    for (const report of ['   \n\t ', '... -- !!', '\u200B\u200B\u200B']) {
      const res = await post(check, { report });
      expect(res.statusCode).toBe(400);
      expect(res.json().detail).toMatch(/^body\/report has no text: only white space, punctuation or invisible characters/);
    }
    const nul = await post(check, { report: 'Acute infarct.\u0000' });
    expect(nul.statusCode).toBe(400);
    expect(nul.json().detail).toBe('body/report holds a control character (U+0000 at character 15): send plain text (tabs and line breaks are allowed)');
    const query = await post('/api/v1/queries', { id: 'x3', text: 'acute\u0007 infarct', priority: 'STAT' }, ADMIN);
    expect(query.statusCode).toBe(400);
    expect(query.json().errors).toEqual([{ field: 'body/text', message: expect.stringContaining('U+0007 at character 6') }]);
    const contrast = await app.inject({ method: 'PUT', url: '/api/v1/queries/mass', headers: ADMIN, payload: { text: 'enhancing mass', negativeText: 'normal\u001bbrain', priority: 'URGENT' } });
    expect(contrast.json().errors).toEqual([{ field: 'body/negativeText', message: expect.stringContaining('U+001B') }]);
    // A contrast sentence of spaces only is refused, not quietly replaced by the bundle's normal-study sentence.
    const blank = await app.inject({ method: 'PUT', url: '/api/v1/queries/mass', headers: ADMIN, payload: { text: 'enhancing mass', negativeText: '    ', priority: 'URGENT' } });
    expect(blank.statusCode).toBe(400);
    expect(blank.json().errors).toEqual([{ field: 'body/negativeText', message: expect.stringContaining('has no text') }]);
    const search = await app.inject({ method: 'GET', url: `/api/v1/search?q=${encodeURIComponent('acute\u0000infarct')}`, headers: READER });
    expect(search.statusCode).toBe(400);
    expect(search.json().detail).toMatch(/^querystring\/q holds a control character \(U\+0000/);
    const adhoc = await post(`/api/v1/studies/${INFARCT}/score`, { text: 'acute infarct\u0000' });
    expect(adhoc.json()).toMatchObject({ status: 400, errors: [{ field: 'body/text' }] });
    expect((await post('/api/v1/text-check', { text: '\u0000\u0000\u0000' })).json().errors).toEqual([{ field: 'body/text', message: expect.stringContaining('control character') }]);
    // Tabs and line breaks are text.
    expect((await post(check, { report: 'Acute infarct.\n\tNo haemorrhage.\r\n' })).statusCode).toBe(200);
  });
});

describe('worklist', () => {
  test('orders by priority class, then arrival', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: READER });
    expect(res.statusCode).toBe(200);
    expect(res.json().items.map((i: { StudyInstanceUID: string }) => i.StudyInstanceUID)).toEqual([INFARCT, BLEED, MASS, NORMAL]);
    expect(res.json().items[0]).toMatchObject({ priority: 'STAT', status: 'scored', AccessionNumber: 'ACC1' });
  });

  test('cursor pages cover the list once, in order, even when a study arrives between pages', async () => {
    const first = (await app.inject({ method: 'GET', url: '/api/v1/worklist?limit=2', headers: READER })).json();
    expect(first.items.map((i: { StudyInstanceUID: string }) => i.StudyInstanceUID)).toEqual([INFARCT, BLEED]);
    expect(first.nextCursor).toEqual(expect.any(String));
    await writeResult(redis, { uid: '1.2.3.99', priority: 'STAT', receivedAt: T0 + 9000, looksLike: 'acute infarct' });
    const second = (await app.inject({ method: 'GET', url: `/api/v1/worklist?limit=2&cursor=${first.nextCursor}`, headers: READER })).json();
    const third = (await app.inject({ method: 'GET', url: `/api/v1/worklist?limit=2&cursor=${second.nextCursor}`, headers: READER })).json();
    expect([...second.items, ...third.items].map((i: { StudyInstanceUID: string }) => i.StudyInstanceUID)).toEqual(['1.2.3.99', MASS, NORMAL]);
    expect(third.nextCursor).toBeNull();
  });

  test('paging one by one through studies that share a score (same class, same millisecond) misses none', async () => {
    const twins = ['1.2.3.50', '1.2.3.51', '1.2.3.52'];
    for (const uid of twins) await writeResult(redis, { uid, priority: 'URGENT', receivedAt: T0 + 1000, looksLike: 'mass' });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const qs: string = cursor ? `&cursor=${cursor}` : '';
      const page = (await app.inject({ method: 'GET', url: `/api/v1/worklist?limit=1${qs}`, headers: READER })).json();
      seen.push(...page.items.map((i: { StudyInstanceUID: string }) => i.StudyInstanceUID));
      cursor = page.nextCursor;
    } while (cursor);
    // Equal scores are ordered by UID (Redis orders members of equal score lexicographically).
    expect(seen).toEqual([INFARCT, BLEED, ...[MASS, ...twins].sort(), NORMAL]);
  });

  test('filters and pages walk past the 200-entry Redis batches', async () => {
    for (let n = 0; n < 250; n++) {
      await writeResult(redis, { uid: `1.2.3.7.${n}`, priority: 'ROUTINE', receivedAt: T0 + 10_000 + n, looksLike: 'normal', flagged: n === 249 ? ['mass'] : [] });
    }
    const flagged = (await app.inject({ method: 'GET', url: '/api/v1/worklist?flagged=mass&priority=ROUTINE', headers: READER })).json();
    expect(flagged.items.map((i: { StudyInstanceUID: string }) => i.StudyInstanceUID)).toEqual(['1.2.3.7.249']);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const qs: string = cursor ? `&cursor=${cursor}` : '';
      const page = (await app.inject({ method: 'GET', url: `/api/v1/worklist?limit=120${qs}`, headers: READER })).json();
      seen.push(...page.items.map((i: { StudyInstanceUID: string }) => i.StudyInstanceUID));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen.length).toBe(254);
    expect(new Set(seen).size).toBe(254);
    expect(seen.slice(-250)).toEqual(Array.from({ length: 250 }, (_, n) => `1.2.3.7.${n}`));
  });

  test('filters by priority, flagged query, status and arrival time', async () => {
    const get = async (qs: string) =>
      (await app.inject({ method: 'GET', url: `/api/v1/worklist?${qs}`, headers: READER })).json().items.map((i: { StudyInstanceUID: string }) => i.StudyInstanceUID);
    expect(await get('priority=URGENT,ROUTINE')).toEqual([MASS, NORMAL]);
    expect(await get('flagged=haemorrhage')).toEqual([BLEED]);
    expect(await get(`since=${T0 + 2000}`)).toEqual([INFARCT, BLEED]);
    await redis.hset(keys.study(NORMAL), 'status', 'scoring');
    expect(await get('status=scoring')).toEqual([NORMAL]);
  });
});

describe('study', () => {
  test('a scored study returns its status, progress and result', async () => {
    const res = await app.inject({ method: 'GET', url: `/api/v1/studies/${INFARCT}`, headers: READER });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ StudyInstanceUID: INFARCT, status: 'scored', progress: { instances: 40, firstReceivedAt: T0 + 2000 } });
    expect(body.result.findings.find((f: { queryId: string }) => f.queryId === 'acute_infarct')).toMatchObject({ flagged: true });
    expect(body.result.model).toEqual(HASH_MODEL);
  });

  test('a study still in the queue returns its status and no result; an unknown study is 404', async () => {
    const queued = (await app.inject({ method: 'GET', url: `/api/v1/studies/${QUEUED}`, headers: READER })).json();
    expect(queued).toMatchObject({ status: 'queued', result: null, progress: { instances: 12 } });
    for (const status of ['received', 'scoring', 'failed', 'unsupported']) {
      await redis.hset(keys.study(QUEUED), { status, statusAt: T0 + 7000 });
      expect((await app.inject({ method: 'GET', url: `/api/v1/studies/${QUEUED}`, headers: READER })).json().status).toBe(status);
    }
    // What the worker writes on a final failure (services/worker/store.ts markStudyFailed).
    await redis.hset(keys.study(QUEUED), { status: 'failed', failureReason: 'no readable DWI series', jobId: '17', AccessionNumber: '12345', storageKey: 'store/x' });
    const failed = (await app.inject({ method: 'GET', url: `/api/v1/studies/${QUEUED}`, headers: READER })).json();
    expect(failed).toMatchObject({ status: 'failed', reason: 'no readable DWI series', result: null });
    expect(failed.progress).toEqual({ firstReceivedAt: T0 + 5000, lastReceivedAt: T0 + 6000, statusAt: T0 + 7000, instances: 12, bytes: 1000 });
    const missing = await app.inject({ method: 'GET', url: '/api/v1/studies/1.2.3.4.5', headers: READER });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().detail).toContain('no study 1.2.3.4.5');
    const score = await app.inject({ method: 'POST', url: `/api/v1/studies/${QUEUED}/score`, headers: READER, payload: { text: 'acute infarct' } });
    expect(score.statusCode).toBe(409);
    expect(score.json().detail).toContain('is failed');
  });
});

describe('studies by status', () => {
  test('lists the studies that could not be triaged, newest first, with their reason', async () => {
    const FAILED = '1.2.826.0.1.3680043.10.1.6';
    const UNSUPPORTED = '1.2.826.0.1.3680043.10.1.7';
    await redis.hset(keys.study(FAILED), { status: 'failed', firstReceivedAt: T0 + 100, lastReceivedAt: T0 + 200, failureReason: 'decode error in series 3', instances: 30, AccessionNumber: 'ACC6' });
    await redis.hset(keys.study(UNSUPPORTED), { status: 'unsupported', firstReceivedAt: T0 + 300, lastReceivedAt: T0 + 400, failureReason: 'no T2, FLAIR, DWI or ADC series', instances: 5 });
    const res = await app.inject({ method: 'GET', url: '/api/v1/studies?status=failed,unsupported', headers: READER });
    expect(res.statusCode).toBe(200);
    expect(res.json().items).toEqual([
      { StudyInstanceUID: UNSUPPORTED, status: 'unsupported', firstReceivedAt: T0 + 300, lastReceivedAt: T0 + 400, statusAt: null, instances: 5, reason: 'no T2, FLAIR, DWI or ADC series' },
      { StudyInstanceUID: FAILED, status: 'failed', AccessionNumber: 'ACC6', firstReceivedAt: T0 + 100, lastReceivedAt: T0 + 200, statusAt: null, instances: 30, reason: 'decode error in series 3' },
    ]);
    const queued = (await app.inject({ method: 'GET', url: '/api/v1/studies?status=queued', headers: READER })).json();
    expect(queued.items.map((i: { StudyInstanceUID: string }) => i.StudyInstanceUID)).toEqual([QUEUED]);
    const bad = await app.inject({ method: 'GET', url: '/api/v1/studies', headers: READER });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().detail).toContain('querystring/status');

    // Once the worker has built its untriaged index, failed and unsupported studies come from it, not a SCAN:
    // the same list; an entry whose study was sent again (received) is skipped; a hash the index lacks is not seen.
    await backfillUntriagedIndex(redis);
    const LATER = '1.2.826.0.1.3680043.10.1.8';
    await redis.hset(keys.study(LATER), { status: 'failed', firstReceivedAt: T0 + 500, lastReceivedAt: T0 + 600 });
    await redis.zadd(keys.untriagedStudies(), T0 + 700, QUEUED);
    const indexed = (await app.inject({ method: 'GET', url: '/api/v1/studies?status=failed,unsupported', headers: READER })).json();
    expect(indexed.items.map((i: { StudyInstanceUID: string }) => i.StudyInstanceUID)).toEqual([UNSUPPORTED, FAILED]);
  });
});

describe('queries: bundle defaults, site layer, language check and calibration from reports', () => {
  const post = (payload: Record<string, unknown>) => app.inject({ method: 'POST', url: '/api/v1/queries', headers: ADMIN, payload });
  const put = (id: string, payload: Record<string, unknown>) => app.inject({ method: 'PUT', url: `/api/v1/queries/${id}`, headers: ADMIN, payload });
  const list = async () => (await app.inject({ method: 'GET', url: '/api/v1/queries', headers: READER })).json();

  /** Past studies with reports, as the worker and the report interfaces leave them: `n` with a subdural haematoma. */
  async function reportedCohort(positives: number, negatives: number): Promise<void> {
    const extra = ['left', 'right', 'frontal', 'lobe', 'mild', 'small'];
    for (let i = 0; i < positives + negatives; i++) {
      const pos = i < positives;
      const uid = `1.2.826.0.1.3680043.10.9.${i}`;
      await writeResult(redis, { uid, priority: 'ROUTINE', receivedAt: T0 - 100_000 + i, looksLike: pos ? `subdural haematoma crescentic collection ${extra[i % 6]}` : `normal brain ${extra[i % 6]}` });
      const text = pos ? 'FINDINGS: Subdural haematoma collection on the left. IMPRESSION: Subdural haematoma.' : i % 2 ? 'No acute intracranial abnormality.' : 'Mild small vessel changes. No haemorrhage.';
      await storeMatchedReport(redis, { AccessionNumber: `R${i}`, StudyInstanceUID: uid, text, status: 'F', receivedAt: T0 - 50_000 + i, source: 'api' });
    }
  }

  test('the bundle\'s defaults are listed with their calibration and the threshold in use; an empty site layer never leaves zero queries', async () => {
    const body = await list();
    expect(body.bundle).toEqual(HASH_MODEL);
    expect(body.queries.map((q: { id: string }) => q.id)).toEqual(['acute_infarct', 'haemorrhage', 'mass']);
    expect(body.queries[0]).toMatchObject({ origin: 'bundle', calibrationState: 'calibrated', judgedBy: 'query', thresholdInUse: QUERIES[0].calibration!.threshold, bundleDefault: true, warning: null });
    await redis.del(queryKeys.queries(), queryKeys.disabled());
    expect((await list()).queries).toHaveLength(3);
  });

  test('a query the model cannot read is refused with 422 and the reason; a misspelt word is a warning; the contrast sentence defaults to the normal-study one', async () => {
    for (const text of ['the weather is nice', 'asdfgh qwerty', '\u{1F9E0}\u{1F9E0}\u{1F9E0}']) {
      const res = await post({ id: 'nonsense', text, priority: 'STAT' });
      expect(res.statusCode).toBe(422);
      expect(res.json().errors[0]).toMatchObject({ field: 'body/text', message: expect.stringContaining('is not text the model can use') });
    }
    expect((await readSiteLayer(redis)).queries).toEqual([]);
    const typo = await post({ id: 'subdural', text: 'subdural haematma collection', priority: 'URGENT' });
    expect(typo.statusCode).toBe(201);
    const body = typo.json();
    expect(body.language.text).toMatchObject({ verdict: 'warning', misspelt: [{ word: 'haematma', suggestion: 'haematoma' }] });
    expect(body.query).toMatchObject({ origin: 'site', negativeText: 'normal brain no abnormality', targetSensitivity: 0.95, calibrationState: 'uncalibrated', thresholdInUse: null });
    const stored = (await readSiteLayer(redis)).queries.find((q) => q.id === 'subdural');
    expect(stored).toMatchObject({ negativeText: 'normal brain no abnormality', origin: 'site' });
  });

  test('a client-sent calibration or origin is refused: the service computes them; targetSensitivity is accepted', async () => {
    const cal = await post({ id: 'subdural', text: 'subdural haematoma collection', priority: 'STAT', calibration: QUERIES[0].calibration });
    expect(cal.statusCode).toBe(422);
    expect(cal.json().detail).toContain('body/calibration is computed by the service');
    const origin = await put('mass', { text: 'enhancing mass lesion', priority: 'URGENT', origin: 'bundle' });
    expect(origin.statusCode).toBe(422);
    expect(origin.json().errors).toEqual([expect.objectContaining({ field: 'body/origin' })]);
    const ok = await post({ id: 'subdural', text: 'subdural haematoma collection', priority: 'STAT', targetSensitivity: 0.9 });
    expect(ok.statusCode).toBe(201);
    expect(ok.json().query.targetSensitivity).toBe(0.9);
  });

  test('targetSensitivity outside 0.5 to 1 is a 400 naming the range (1e-300 was accepted: a threshold that flags almost nothing)', async () => {
    for (const targetSensitivity of [1e-300, 0.3, 1.5]) {
      const res = await post({ id: 'subdural', text: 'subdural haematoma collection', priority: 'STAT', targetSensitivity });
      expect(res.statusCode).toBe(400);
      expect(res.json().errors).toEqual([{ field: 'body/targetSensitivity', message: 'must be >= 0.5 and <= 1' }]);
    }
    const edited = await put('mass', { text: 'enhancing mass lesion', priority: 'URGENT', targetSensitivity: 1e-300 });
    expect(edited.json().detail).toBe('body/targetSensitivity must be >= 0.5 and <= 1');
    for (const targetSensitivity of [0.5, 1]) {
      const ok = await post({ id: `subdural_${targetSensitivity * 10}`, text: 'subdural haematoma collection', priority: 'STAT', targetSensitivity });
      expect(ok.statusCode).toBe(201);
    }
  });

  test('a query naming a sequence the running bundle does not read is refused, with the sequences it reads', async () => {
    const swi = await post({ id: 'ich_swi', text: 'intracranial haemorrhage', priority: 'STAT', sequences: ['DWI', 'SWI'] });
    expect(swi.statusCode).toBe(422);
    expect(swi.json().errors).toEqual([expect.objectContaining({ field: 'body/sequences' })]);
    expect(swi.json().detail).toMatch(/names SWI, which the running model bundle does not read \(it reads [A-Z0-9, ]*DWI/);
    expect((await readSiteLayer(redis)).queries.some((q) => q.id === 'ich_swi')).toBe(false);
    const dwi = await post({ id: 'ich_swi', text: 'intracranial haemorrhage', priority: 'STAT', sequences: ['DWI'] });
    expect(dwi.statusCode).toBe(201);
    // A query stored under an older bundle that read SWI can still be edited with its sequences as they are.
    await changeQuery(redis, { put: { id: 'old_swi', text: 'intracranial haemorrhage', priority: 'STAT', sequences: ['SWI'], origin: 'site' } });
    const edit = await put('old_swi', { text: 'intracranial haemorrhage', priority: 'URGENT', sequences: ['SWI'] });
    expect(edit.statusCode).toBe(200);
    expect((await put('old_swi', { text: 'intracranial haemorrhage', priority: 'URGENT', sequences: ['SWI', 'T1'] })).json().detail).toMatch(/names T1, which/);
  });

  test('a new query is calibrated from the site\'s reports (pseudo-labels): at once when enough exist, else later by the background pass', async () => {
    const early = await post({ id: 'subdural', text: 'subdural haematoma collection', priority: 'STAT' });
    expect(early.statusCode).toBe(201);
    expect(early.json().calibration).toMatchObject({ state: 'uncalibrated', detail: expect.stringMatching(/0 past studies have both a report and image vectors/) });
    let view = (await list()).queries.find((q: { id: string }) => q.id === 'subdural');
    expect(view.warning).toMatch(/^Not calibrated: it has no calibration yet, so it is scored but never flagged/);
    expect(view.lastAttempt).toMatchObject({ ok: false, studies: 0 });
    expect((await list()).warnings).toEqual([expect.stringContaining('subdural')]);
    // Deleted, its last attempt goes with it: re-created under the id, it does not show the old query's.
    expect((await app.inject({ method: 'DELETE', url: '/api/v1/queries/subdural', headers: ADMIN })).statusCode).toBe(200);
    expect(await redis.hexists(queryKeys.calibrationAttempts(), 'subdural')).toBe(0);
    expect((await post({ id: 'subdural', text: 'subdural haematoma collection', priority: 'STAT' })).statusCode).toBe(201);

    await reportedCohort(12, 28);
    const pass = await app.calibration.pass();
    expect(pass).toEqual({ tried: ['subdural'], calibrated: ['subdural'] });
    view = (await list()).queries.find((q: { id: string }) => q.id === 'subdural');
    expect(view).toMatchObject({ calibrationState: 'calibrated', judgedBy: 'query', warning: null });
    expect(view.calibration).toMatchObject({ method: 'report-pseudo-labels', studies: 40, positives: 12, bundleVersion: HASH_MODEL.version, targetSensitivity: 0.95 });
    expect(view.thresholdInUse).toBe(view.calibration.threshold);
    expect(view.calibration.estimated.sensitivity).toBeGreaterThanOrEqual(0.95);

    // Created after the reports exist: calibrated in the request itself.
    const now = await post({ id: 'subdural_2', text: 'crescentic subdural collection', priority: 'URGENT' });
    expect(now.json().calibration).toMatchObject({ state: 'calibrated', detail: 'calibrated on 40 past studies of this site (12 whose report mentions it)' });
    // Changing its text re-calibrates it; changing only its target sensitivity re-picks the threshold from its table.
    const edited = await put('subdural_2', { text: 'subdural haematoma', priority: 'URGENT' });
    expect(edited.json().calibration.detail).toMatch(/^calibrated on 40 past studies/);
    const stricter = await put('subdural_2', { text: 'subdural haematoma', priority: 'URGENT', targetSensitivity: 0.8 });
    expect(stricter.json().calibration.detail).toContain('re-picked for sensitivity 0.8');
    expect(stricter.json().query.calibration.targetSensitivity).toBe(0.8);
    // A point of a report calibration's table that would flag nearly every study is not re-picked: the query is
    // calibrated again (on these reports, to a threshold that leaves most pseudo-negatives unflagged).
    const stored = JSON.parse((await redis.hget('nt:queries', 'subdural_2')) as string);
    stored.calibration.operatingPoints = stored.calibration.operatingPoints.map((p: { falsePositiveRate: number }) => ({ ...p, falsePositiveRate: 0.9 }));
    await changeQuery(redis, { put: stored });
    const loose = await put('subdural_2', { text: 'subdural haematoma', priority: 'URGENT', targetSensitivity: 0.9 });
    expect(loose.json().calibration.detail).toMatch(/^calibrated on 40 past studies/);
    expect(loose.json().query.calibration.estimated.specificity).toBeGreaterThanOrEqual(0.5);

    // A statement of absence: its pseudo-positives are the reports that do NOT mention the finding, and it says so.
    const denial = await post({ id: 'no_subdural', text: 'No subdural haematoma.', priority: 'ROUTINE' });
    expect(denial.json().calibration).toMatchObject({ detail: 'calibrated on 40 past studies of this site (28 whose report does not mention it)' });
    const again = await app.inject({ method: 'POST', url: '/api/v1/queries/no_subdural/calibrate', headers: ADMIN });
    expect(again.json().calibration.detail).toBe('calibrated on 40 past studies (28 whose report does not mention it)');
    expect(again.json().query.lastAttempt.detail).toBe('calibrated on 40 past studies (28 whose report does not mention it)');
  });

  test('a stored report calibration that flags nearly every study is redone by the background pass, or dropped with the reason', async () => {
    // As a release before the specificity floor stored them: fitted for the query's text on this bundle, specificity 0.
    const degenerate = (q: TriageQuery): TriageQuery => ({
      ...q,
      calibration: {
        ...testCalibration(q, { a: 1, b: 0, scoreThreshold: -1 }, HASH_MODEL.version),
        method: 'report-pseudo-labels', targetSensitivity: 0.95, estimated: { sensitivity: 1, specificity: 0 },
        operatingPoints: [{ threshold: 0.27, sensitivity: 1, falsePositiveRate: 1 }],
      },
    });
    const site = (id: string, text: string): TriageQuery => ({ id, text, negativeText: NORMAL_TEXT, priority: 'STAT', targetSensitivity: 0.95, origin: 'site' });
    await reportedCohort(12, 28);
    await changeQuery(redis, { put: degenerate(site('sdh_old', 'subdural haematoma collection')) });
    await changeQuery(redis, { put: degenerate(site('cyst_old', 'pineal cyst')) });
    expect((await list()).queries.find((q: { id: string }) => q.id === 'cyst_old').calibrationState).toBe('calibrated');

    const pass = await app.calibration.pass();
    expect(pass.tried).toEqual(expect.arrayContaining(['sdh_old', 'cyst_old']));
    expect(pass.calibrated).toContain('sdh_old');
    expect(pass.dropped).toEqual(['cyst_old']);
    const views = (await list()).queries;
    const redone = views.find((q: { id: string }) => q.id === 'sdh_old');
    expect(redone.calibration.estimated.specificity).toBeGreaterThanOrEqual(0.5);
    const dropped = views.find((q: { id: string }) => q.id === 'cyst_old');
    expect(dropped).toMatchObject({ calibrationState: 'uncalibrated', thresholdInUse: null });
    expect(dropped.warning).toMatch(/^Not calibrated: .*Last calibration attempt/);

    // POST …/calibrate does the same for one query; an edit never keeps such a calibration.
    await changeQuery(redis, { put: degenerate(site('cyst_old', 'pineal cyst')) });
    const now = await app.inject({ method: 'POST', url: '/api/v1/queries/cyst_old/calibrate', headers: ADMIN });
    expect(now.json().query).toMatchObject({ calibrationState: 'uncalibrated', thresholdInUse: null });
    await changeQuery(redis, { put: degenerate(site('sdh_old', 'subdural haematoma collection')) });
    const edit = await put('sdh_old', { text: 'subdural haematoma collection', negativeText: NORMAL_TEXT, priority: 'URGENT' });
    expect(edit.statusCode).toBe(200);
    expect(edit.json().calibration.detail).toMatch(/^calibrated on 40 past studies/);
    expect(edit.json().query.calibration.estimated.specificity).toBeGreaterThanOrEqual(0.5);
  });

  test('POST …/calibrate: an unknown id is "no query"; a bundle default says it carries the bundle\'s calibration', async () => {
    const nope = await app.inject({ method: 'POST', url: '/api/v1/queries/nope/calibrate', headers: ADMIN });
    expect(nope.statusCode).toBe(404);
    expect(nope.json().detail).toBe('no triage query "nope"');
    const bundle = await app.inject({ method: 'POST', url: '/api/v1/queries/mass/calibrate', headers: ADMIN });
    expect(bundle.statusCode).toBe(404);
    expect(bundle.json().detail).toMatch(/^"mass" is a default of the model bundle, not a site query: bundle defaults carry the bundle's own calibration/);
  });

  test('editing a bundle default makes it a site query; the same text keeps its calibration; back to the default restores it; delete turns a default off', async () => {
    // A bundle whose mass query has a contrast sentence (as the real bundle's defaults do), so an edit that leaves
    // it out gets the same normal-study sentence by default.
    const { calibration: _old, ...massDefinition } = QUERIES[2];
    const mass = calibrated({ ...massDefinition, negativeText: NORMAL_TEXT }, { a: 10, b: -3, scoreThreshold: 0.3 });
    const status = testModelStatus({ manifest: { queries: [QUERIES[0], QUERIES[1], mass] } });
    const bundleDeps = testDeps(redis, { modelStatus: () => status });
    const bundleApp = await build(bundleDeps);
    const put = (id: string, payload: Record<string, unknown>) => bundleApp.inject({ method: 'PUT', url: `/api/v1/queries/${id}`, headers: ADMIN, payload });
    const list = async (): Promise<{ queries: { id: string }[]; disabled: { id: string }[] }> => (await bundleApp.inject({ method: 'GET', url: '/api/v1/queries', headers: READER })).json();
    try {
      const prio = await put('mass', { text: QUERIES[2].text, priority: 'STAT' });
      expect(prio.statusCode).toBe(200);
      expect(prio.json()).toMatchObject({ action: 'replaced', query: { origin: 'site', priority: 'STAT', calibrationState: 'calibrated' }, calibration: { detail: expect.stringContaining('kept') } });
      // Text changed with no reports to calibrate on: uncalibrated, with the warning, never silently kept.
      const reworded = await put('mass', { text: 'enhancing tumour', priority: 'URGENT' });
      expect(reworded.json().query).toMatchObject({ calibrationState: 'uncalibrated', thresholdInUse: null, warning: expect.stringContaining('Not calibrated') });
      const back = await put('mass', { text: QUERIES[2].text, priority: 'URGENT' });
      expect(back.json()).toMatchObject({ action: 'restored-default', query: { origin: 'bundle', calibrationState: 'calibrated' } });
      expect((await readSiteLayer(redis)).queries).toEqual([]);

      const off = await bundleApp.inject({ method: 'DELETE', url: '/api/v1/queries/mass', headers: ADMIN });
      expect(off.json()).toMatchObject({ action: 'disabled' });
      let body = await list();
      expect(body.queries.map((q) => q.id)).toEqual(['acute_infarct', 'haemorrhage']);
      expect(body.disabled.map((q) => q.id)).toEqual(['mass']);
      // Read on its own, a turned-off default says so: no threshold in use, and how to turn it on.
      const one = await bundleApp.inject({ method: 'GET', url: '/api/v1/queries/mass', headers: ADMIN });
      expect(one.json()).toMatchObject({ id: 'mass', disabled: true, thresholdInUse: null, judgedBy: null, warning: expect.stringContaining('Turned off') });
      expect(body.queries.every((q) => (q as { disabled?: boolean }).disabled === false)).toBe(true);
      // Deleting it again: it is off already (it was "no triage query", which GET contradicts).
      const again = await bundleApp.inject({ method: 'DELETE', url: '/api/v1/queries/mass', headers: ADMIN });
      expect(again.statusCode).toBe(404);
      expect(again.json().detail).toBe('the bundle default "mass" is turned off already; POST /api/v1/queries/mass/restore turns it on');
      const restored = await bundleApp.inject({ method: 'POST', url: '/api/v1/queries/mass/restore', headers: ADMIN });
      expect(restored.statusCode).toBe(200);
      // Audited as what it was: a restore, not an edit.
      expect(auditLines(bundleDeps.config.DATA_DIR).at(-1)).toMatchObject({ action: 'query.restore', queryId: 'mass', queryVersion: restored.json().version });
      body = await list();
      expect(body.queries.map((q) => q.id)).toEqual(['acute_infarct', 'haemorrhage', 'mass']);
      expect(body.disabled).toEqual([]);
    } finally {
      await bundleApp.close();
    }
  });

  test('a calibration never lands on a query changed while it ran: calibrate-now vs an edit or a delete, two creates, a slow edit vs a later one', async () => {
    const { embedText, holdAt, clear } = gatedEmbedder();
    const slowApp = await build(testDeps(redis, { embedText }));
    const call = (method: 'POST' | 'PUT' | 'DELETE', url: string, payload?: Record<string, unknown>) => slowApp.inject({ method, url, headers: ADMIN, ...(payload ? { payload } : {}) });
    const stored = async () => (await readSiteLayer(redis)).queries.map((q) => ({ id: q.id, text: q.text, priority: q.priority, targetSensitivity: q.targetSensitivity }));
    try {
      await reportedCohort(12, 28);
      expect((await call('POST', '/api/v1/queries', { id: 'sdh', text: 'subdural haematoma collection', priority: 'STAT' })).statusCode).toBe(201);

      // Calibrate now, and an edit of the wording while it runs: the edit stands (it was reverted to the old wording).
      let hold = holdAt('subdural haematoma collection');
      const calibrating = call('POST', '/api/v1/queries/sdh/calibrate');
      await hold.reached;
      const edit = await call('PUT', '/api/v1/queries/sdh', { text: 'crescentic subdural collection', priority: 'URGENT' });
      expect(edit.statusCode).toBe(200);
      hold.release();
      const late = await calibrating;
      expect(late.statusCode).toBe(409);
      expect(late.json().detail).toBe('the triage query "sdh" was changed (edited, calibrated or deleted) while it was being calibrated; this calibration was not stored');
      expect(await stored()).toEqual([{ id: 'sdh', text: 'crescentic subdural collection', priority: 'URGENT', targetSensitivity: 0.95 }]);
      const view = (await list()).queries.find((q: { id: string }) => q.id === 'sdh');
      expect(view.calibration.fittedFor).toBe(edit.json().query.calibration.fittedFor);

      // Calibrate now, and a delete while it runs: the query stays deleted (it came back).
      hold = holdAt('crescentic subdural collection');
      const again = call('POST', '/api/v1/queries/sdh/calibrate');
      await hold.reached;
      expect((await call('DELETE', '/api/v1/queries/sdh')).json().action).toBe('deleted');
      hold.release();
      expect((await again).statusCode).toBe(409);
      expect(await stored()).toEqual([]);

      // Two admins create the same id at once: one is created, the other told so (both were answered 201 and the
      // one answered first was silently replaced).
      hold = holdAt('subdural haematoma collection');
      const first = call('POST', '/api/v1/queries', { id: 'sdh', text: 'subdural haematoma collection', priority: 'STAT' });
      await hold.reached;
      expect((await call('POST', '/api/v1/queries', { id: 'sdh', text: 'crescentic subdural collection', priority: 'URGENT' })).statusCode).toBe(201);
      hold.release();
      const second = await first;
      expect(second.statusCode).toBe(409);
      expect(second.json().detail).toMatch(/^a triage query "sdh" was created by another request while this one was being calibrated/);
      expect(await stored()).toEqual([{ id: 'sdh', text: 'crescentic subdural collection', priority: 'URGENT', targetSensitivity: 0.95 }]);

      // A rewording still calibrating, and a later change of only the target sensitivity (done at once): the later
      // one stands; the earlier is refused, not written over it.
      hold = holdAt('subdural haematoma collection');
      const slow = call('PUT', '/api/v1/queries/sdh', { text: 'subdural haematoma collection', priority: 'URGENT' });
      await hold.reached;
      expect((await call('PUT', '/api/v1/queries/sdh', { text: 'crescentic subdural collection', priority: 'URGENT', targetSensitivity: 0.8 })).statusCode).toBe(200);
      hold.release();
      const refused = await slow;
      expect(refused.statusCode).toBe(409);
      expect(refused.json().detail).toMatch(/^the triage query "sdh" was changed \(edited, calibrated or deleted\) while this edit was being calibrated; nothing was saved/);
      expect(await stored()).toEqual([{ id: 'sdh', text: 'crescentic subdural collection', priority: 'URGENT', targetSensitivity: 0.8 }]);

      // A background pass that outlives its lock (another replica took it meanwhile) leaves that replica's lock alone
      // (it deleted it, letting a third replica start too) and stops before its next query.
      await redis.hset(queryKeys.queries(), 'sdh2', JSON.stringify({ id: 'sdh2', text: 'acute subdural blood', priority: 'STAT', origin: 'site' }));
      await redis.hset(queryKeys.queries(), 'sdh3', JSON.stringify({ id: 'sdh3', text: 'chronic subdural blood', priority: 'URGENT', origin: 'site' }));
      hold = holdAt('acute subdural blood');
      const passing = slowApp.calibration.pass();
      await hold.reached;
      await redis.set('nt:queries:calibrating', 'another-replica', 'PX', 120_000);
      hold.release();
      expect((await passing).tried).toEqual(['sdh2']);
      expect(await redis.get('nt:queries:calibrating')).toBe('another-replica');
      await redis.del('nt:queries:calibrating');
    } finally {
      clear();
      await slowApp.close();
    }
  });

  test('a query deleted while it was being calibrated leaves no calibration attempt behind: calibrate-now and the background pass', async () => {
    // Held at the calibration's embedding of the query's text, after its studies were read and before the attempt
    // is recorded: the attempt was written after the delete had removed the query and its last attempt, and stayed.
    const { embedText, holdAt, clear } = gatedEmbedder();
    const slowApp = await build(testDeps(redis, { embedText }));
    const call = (method: 'POST' | 'DELETE', url: string, payload?: Record<string, unknown>) => slowApp.inject({ method, url, headers: ADMIN, ...(payload ? { payload } : {}) });
    const attempt = (id: string) => redis.hget(queryKeys.calibrationAttempts(), id);
    try {
      await reportedCohort(12, 28);
      expect((await call('POST', '/api/v1/queries', { id: 'sdh_gone', text: 'subdural haematoma collection', priority: 'STAT' })).statusCode).toBe(201);
      expect(await attempt('sdh_gone')).not.toBeNull();

      let hold = holdAt('subdural haematoma collection');
      const calibrating = call('POST', '/api/v1/queries/sdh_gone/calibrate');
      await hold.reached;
      expect((await call('DELETE', '/api/v1/queries/sdh_gone')).json().action).toBe('deleted');
      hold.release();
      expect((await calibrating).statusCode).toBe(409);
      expect(await attempt('sdh_gone')).toBeNull();

      // The background pass, and a delete while it calibrates the query.
      await redis.hset(queryKeys.queries(), 'sdh_pass', JSON.stringify({ id: 'sdh_pass', text: 'acute subdural blood', priority: 'STAT', origin: 'site' }));
      hold = holdAt('acute subdural blood');
      const passing = slowApp.calibration.pass();
      await hold.reached;
      expect((await call('DELETE', '/api/v1/queries/sdh_pass')).json().action).toBe('deleted');
      hold.release();
      const pass = await passing;
      expect(pass.tried).toContain('sdh_pass');
      expect(pass.calibrated).not.toContain('sdh_pass');
      expect(await attempt('sdh_pass')).toBeNull();
      expect((await list()).queries.map((q: { id: string }) => q.id)).not.toContain('sdh_pass');
    } finally {
      clear();
      await slowApp.close();
    }
  });

  test('two edits of one query calibrating at once: the attempt kept and shown is the saved edit\'s own, never the refused one\'s', async () => {
    // Both edits read the query as it was and are held at their calibration's embedding of their text (their studies
    // read), then finish within a few milliseconds: both attempts were compared with the entry as read and recorded
    // (nothing had written the query yet), the first edit was saved and the second refused, and the attempt left was
    // the refused edit's, for the other text (the saved one showed none) or, same text, counting studies it never saw.
    const { embedText, holdAt, clear } = gatedEmbedder();
    const slowApp = await build(testDeps(redis, { embedText }));
    const edit = (payload: Record<string, unknown>) => slowApp.inject({ method: 'PUT', url: '/api/v1/queries/sdh_two', headers: ADMIN, payload });
    const shown = async () => (await slowApp.inject({ method: 'GET', url: '/api/v1/queries/sdh_two', headers: READER })).json();
    const bothAtOnce = async (first: Record<string, unknown>, second: Record<string, unknown>, between?: () => Promise<void>) => {
      const holdFirst = holdAt(first.text as string);
      const a = edit(first);
      await holdFirst.reached;
      await between?.();
      const holdSecond = holdAt(second.text as string);
      const b = edit(second);
      await holdSecond.reached;
      holdFirst.release();
      holdSecond.release();
      const answers = await Promise.all([a, b]);
      expect(answers.map((r) => r.statusCode).sort()).toEqual([200, 409]);
      return answers.find((r) => r.statusCode === 200)!.json();
    };
    try {
      await reportedCohort(12, 28);
      expect((await slowApp.inject({ method: 'POST', url: '/api/v1/queries', headers: ADMIN, payload: { id: 'sdh_two', text: 'acute subdural blood', priority: 'STAT' } })).statusCode).toBe(201);

      // Two wordings: the saved one's attempt is the one stored and shown.
      const saved = await bothAtOnce({ text: 'subdural haematoma collection', priority: 'STAT' }, { text: 'crescentic subdural collection', priority: 'URGENT' });
      let view = await shown();
      expect(view.text).toBe(saved.query.text);
      expect(JSON.parse((await redis.hget(queryKeys.calibrationAttempts(), 'sdh_two'))!).fittedFor).toBe(view.calibration.fittedFor);
      expect(view.lastAttempt).toMatchObject({ ok: true, fittedFor: view.calibration.fittedFor, studies: view.calibration.studies });

      // One wording, and a study reported between the two calibrations' reads: the attempt shown counts the studies
      // the saved calibration was fitted on (40), not the refused one's (41).
      const sameText = await bothAtOnce({ text: 'subdural haematoma', priority: 'STAT' }, { text: 'subdural haematoma', priority: 'URGENT' }, async () => {
        const uid = '1.2.826.0.1.3680043.10.9.99';
        await writeResult(redis, { uid, priority: 'ROUTINE', receivedAt: T0 - 1000, looksLike: 'subdural haematoma crescentic collection left' });
        await storeMatchedReport(redis, { AccessionNumber: 'R99', StudyInstanceUID: uid, text: 'Subdural haematoma.', status: 'F', receivedAt: T0 - 1000, source: 'api' });
      });
      view = await shown();
      expect(view.priority).toBe(sameText.query.priority);
      expect(view.calibration.studies).toBe(sameText.query.calibration.studies);
      expect(view.lastAttempt).toMatchObject({ ok: true, studies: view.calibration.studies, positives: view.calibration.positives });
    } finally {
      clear();
      await slowApp.close();
    }
  });

  test('create, replace and delete: each change bumps the version and is published', async () => {
    const sub = redis.duplicate({ enableOfflineQueue: true });
    const published: string[] = [];
    sub.on('message', (_c, m) => published.push(m));
    await sub.subscribe(queryKeys.changedChannel());
    try {
      const v0 = (await list()).version;
      const q = { id: 'hydrocephalus', text: 'hydrocephalus with enlarged ventricles', priority: 'URGENT' };
      const created = await post(q);
      expect(created.statusCode).toBe(201);
      expect(created.headers.location).toBe('/api/v1/queries/hydrocephalus');
      expect(created.json().version).toBe(v0 + 1);
      expect((await readSiteLayer(redis)).queries.find((x) => x.id === 'hydrocephalus')).toMatchObject({ ...q, origin: 'site' });
      expect((await post(q)).statusCode).toBe(409);
      expect((await post({ ...q, id: 'mass' })).json().detail).toContain('a default of the model bundle');

      const replaced = await put('hydrocephalus', { text: 'obstructive hydrocephalus', priority: 'STAT' });
      expect(replaced.statusCode).toBe(200);
      expect(replaced.json().version).toBe(v0 + 2);
      const same = await put('hydrocephalus', { text: 'same text', negativeText: 'Same   text', priority: 'STAT' });
      expect(same.statusCode).toBe(400);
      expect(same.json().detail).toContain('negativeText must differ');

      const del = await app.inject({ method: 'DELETE', url: '/api/v1/queries/hydrocephalus', headers: ADMIN });
      expect(del.json()).toEqual({ version: v0 + 3, action: 'deleted' });
      // The audit line says what the delete did (a bundle default is turned off, not deleted).
      expect(auditLines().filter((l) => l.action === 'query.delete').at(-1)).toMatchObject({ queryId: 'hydrocephalus', queryVersion: v0 + 3, outcome: 'deleted' });
      expect((await app.inject({ method: 'DELETE', url: '/api/v1/queries/hydrocephalus', headers: ADMIN })).statusCode).toBe(404);
      expect((await list()).queries.map((x: { id: string }) => x.id)).toEqual(['acute_infarct', 'haemorrhage', 'mass']);
      // The messages reach this subscriber on its own connection, after the publishing requests have answered: wait
      // for the third (with a deadline) rather than a fixed pause a loaded machine can outlast.
      for (const deadline = Date.now() + 5000; published.length < 3 && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 20));
      expect(published).toEqual([String(v0 + 1), String(v0 + 2), String(v0 + 3)]);
    } finally {
      sub.disconnect();
    }
  });

  test('a report\'s sentence vectors are cached for the text model when it arrives (reported channel), absent sentences left out', async () => {
    const live = await buildTestApp(redis);
    await live.ready();
    try {
      await writeResult(redis, { uid: '1.2.826.0.1.3680043.10.9.500', priority: 'ROUTINE', receivedAt: T0, looksLike: 'normal brain' });
      await storeMatchedReport(redis, { AccessionNumber: 'R500', StudyInstanceUID: '1.2.826.0.1.3680043.10.9.500', text: 'No haemorrhage. Possible small infarct.', status: 'F', receivedAt: T0, source: 'api' });
      const key = 'nt:study:1.2.826.0.1.3680043.10.9.500:report:sentences';
      const deadline = Date.now() + 10_000;
      while ((await redis.hlen(key)) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const cached = await redis.hgetall(key);
      expect(Object.keys(cached)).toEqual([`test-hash-embedder:000000000000:${SENTENCE_RULES_VERSION}`]);
      expect(JSON.parse(Object.values(cached)[0])).toMatchObject({ sentences: ['small infarct'], dim: 256 });
    } finally {
      await live.close();
    }
  });

  test('a corrected report that arrives while the final one is being read for calibration is the one cached (the final\'s reading was written over it)', async () => {
    const uid = '1.2.826.0.1.3680043.10.9.501';
    const key = `nt:study:${uid}:report:sentences`;
    await writeResult(redis, { uid, priority: 'ROUTINE', receivedAt: T0, looksLike: 'normal brain' });
    const cachedSoon = async () => {
      const deadline = Date.now() + 10_000;
      while ((await redis.hlen(key)) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    };
    await storeMatchedReport(redis, { AccessionNumber: 'R501', StudyInstanceUID: uid, text: 'Subdural haematoma.', status: 'F', receivedAt: T0, source: 'api' });
    // Read once by this file's app as it arrived; dropped so that the reading below computes it.
    await cachedSoon();
    await redis.del(key);
    // The real (hash) embedder, held while it embeds the final report's sentence: on a large site a calibration
    // embeds thousands of sentences, which takes seconds.
    let held: (() => void) | null = null;
    let reached!: () => void;
    const reachedP = new Promise<void>((r) => (reached = r));
    const release = new Promise<void>((r) => (held = r));
    let holding = true;
    const embedText = async (texts: string[]) => {
      if (holding && texts.includes('Subdural haematoma')) {
        holding = false;
        reached();
        await release;
      }
      return texts.map(hashEmbed);
    };
    const live = await build(testDeps(redis, { embedText }));
    await live.ready();
    try {
      const reading = live.calibration.reports()!.many([uid]);
      await reachedP;
      await storeMatchedReport(redis, { AccessionNumber: 'R501', StudyInstanceUID: uid, text: 'No subdural haematoma. Old lacune.', status: 'C', receivedAt: T0 + 1000, source: 'api' });
      await cachedSoon();
      held!();
      await reading;
      const cached = Object.values(await redis.hgetall(key));
      expect(cached.map((c) => JSON.parse(c).sentences)).toEqual([['Old lacune']]);
      expect((await live.calibration.reports()!.many([uid]))[0]?.sentences).toEqual(['Old lacune']);
    } finally {
      await live.close();
    }
  });

  test('POST /api/v1/text-check says how well the model knows a text, without saving anything', async () => {
    const ok = (await app.inject({ method: 'POST', url: '/api/v1/text-check', headers: READER, payload: { text: 'acute infarct' } })).json();
    expect(ok).toMatchObject({ verdict: 'ok', unknownWords: [], knownShare: 1, closeness: null, vocabulary: 'known-words' });
    const bad = (await app.inject({ method: 'POST', url: '/api/v1/text-check', headers: READER, payload: { text: 'the weather is nice' } })).json();
    expect(bad).toMatchObject({ verdict: 'refused', unknownWords: ['weather', 'nice'] });
  });
});

describe('decision tables', () => {
  const table = [
    { threshold: 0.6, sensitivity: 0.9, falsePositiveRate: 0.05 },
    { threshold: 0.4, sensitivity: 0.95, falsePositiveRate: 0.08 },
    { threshold: 0.2, sensitivity: 0.99, falsePositiveRate: 0.2 },
  ];
  const decision = { STAT: { targetSensitivity: 0.95, threshold: 0.4, positives: 50, negatives: 350, table } };

  test('GET /api/v1/decision shows the bundle\'s STAT table with the point the workers reported in use', async () => {
    const status = testModelStatus({ manifest: { decision } });
    const withDecision = await buildTestApp(redis, { modelStatus: () => status });
    try {
      let body = (await withDecision.inject({ method: 'GET', url: '/api/v1/decision', headers: READER })).json();
      expect(body.classes.STAT).toMatchObject({ targetSensitivity: 0.95, thresholdInUse: 0.4, chosenSensitivity: null });
      expect(body.classes.STAT.table.map((r: { inUse: boolean }) => r.inUse)).toEqual([false, true, false]);
      expect(body.notes).toEqual([expect.stringContaining('No worker running this bundle')]);
      // A worker started with TRIAGE_STAT_SENSITIVITY=0.99 (shared/queries.ts publishJudging does it at start).
      await redis.hset('nt:decision:in-use', `${HASH_MODEL.bundleId}@${HASH_MODEL.version}`, JSON.stringify({ classThresholds: { STAT: 0.2 }, sensitivity: { STAT: 0.99 }, at: '2026-01-01T00:00:00Z' }));
      body = (await withDecision.inject({ method: 'GET', url: '/api/v1/decision', headers: READER })).json();
      expect(body.classes.STAT).toMatchObject({ chosenSensitivity: 0.99, thresholdInUse: 0.2 });
      expect(body.classes.STAT.table.map((r: { inUse: boolean }) => r.inUse)).toEqual([false, false, true]);
      expect(body.rule).toContain('P >= its threshold');
      // Bundle queries of the class are judged with the class threshold in use.
      const queries = (await withDecision.inject({ method: 'GET', url: '/api/v1/queries', headers: READER })).json().queries;
      // ...and say the class's sensitivity they are judged at, not their own target (which they do not use).
      const infarct = queries.find((q: { id: string }) => q.id === 'acute_infarct');
      expect(infarct).toMatchObject({ judgedBy: 'class', thresholdInUse: 0.2, judgedAtSensitivity: 0.99 });
      const mass = queries.find((q: { id: string }) => q.id === 'mass');
      expect(mass).toMatchObject({ judgedBy: 'query' });
      expect(mass.judgedAtSensitivity).toBe(mass.targetSensitivity);
      await redis.del('nt:decision:in-use');
      const before = (await withDecision.inject({ method: 'GET', url: '/api/v1/queries/acute_infarct', headers: READER })).json();
      expect(before).toMatchObject({ judgedBy: 'class', thresholdInUse: 0.4, judgedAtSensitivity: 0.95 });
    } finally {
      await withDecision.close();
    }
  });

  test('a bundle without a decision says each query keeps its own threshold', async () => {
    const body = (await app.inject({ method: 'GET', url: '/api/v1/decision', headers: READER })).json();
    expect(body.classes).toEqual({});
    expect(body.notes[0]).toContain('no study-level decision');
  });
});

describe('embedding routes (deterministic hash embedder, not the model)', () => {
  test('search ranks studies by the search score (text against the normal-study sentence), paginated', async () => {
    const res = await app.inject({ method: 'GET', url: `/api/v1/search?q=${encodeURIComponent('haemorrhage with blood products')}&limit=2`, headers: READER });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.total).toBe(4);
    expect(body.language).toMatchObject({ verdict: 'ok', unknownWords: [] });
    expect(body.warning).toBeNull();
    expect(body.items[0].StudyInstanceUID).toBe(BLEED);
    expect(body.items[0].score).toBeGreaterThan(body.items[1].score);
    const next = (await app.inject({ method: 'GET', url: `/api/v1/search?q=${encodeURIComponent('haemorrhage with blood products')}&limit=2&offset=2`, headers: READER })).json();
    const all = [...body.items, ...next.items];
    expect(new Set(all.map((i: { StudyInstanceUID: string }) => i.StudyInstanceUID)).size).toBe(4);
    const scores = all.map((i: { score: number }) => i.score);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    // The normal study looks exactly like the normal-study sentence: it ranks last for any finding.
    expect(all[all.length - 1].StudyInstanceUID).toBe(NORMAL);
    const t = hashEmbed('haemorrhage with blood products');
    const n = hashEmbed('normal brain no abnormality');
    const bleed = hashEmbed('intracranial haemorrhage blood products');
    expect(body.items[0].score).toBeCloseTo(cosine(bleed, t) - cosine(bleed, n), 6);
  });

  test('searching for the normal-study sentence itself says its scores are all about 0', async () => {
    const body = (await app.inject({ method: 'GET', url: `/api/v1/search?q=${encodeURIComponent(NORMAL_TEXT)}`, headers: READER })).json();
    expect(body.total).toBe(4);
    expect(body.warning).toMatch(/^This text is \(nearly\) the normal-study sentence every search is measured against \(similarity 1\.00\)/);
    const finding = (await app.inject({ method: 'GET', url: `/api/v1/search?q=${encodeURIComponent('haemorrhage with blood products')}`, headers: READER })).json();
    expect(finding.warning).toBeNull();
  });

  test('search says how well the model knows the text: unknown text gets a warning and no list, a misspelling a warning', async () => {
    for (const q of ['the weather is nice', 'asdfgh qwerty', '\u{1F9E0}\u{1F9E0}\u{1F9E0}']) {
      const body = (await app.inject({ method: 'GET', url: `/api/v1/search?q=${encodeURIComponent(q)}`, headers: READER })).json();
      expect(body.language.verdict).toBe('refused');
      expect(body.items).toEqual([]);
      expect(body.total).toBe(0);
      expect(body.warning).toMatch(/^No results: the model cannot use this text/);
    }
    const typo = (await app.inject({ method: 'GET', url: `/api/v1/search?q=${encodeURIComponent('intracranial haemorrhge')}`, headers: READER })).json();
    expect(typo.language).toMatchObject({ verdict: 'warning', misspelt: [{ word: 'haemorrhge', suggestion: 'haemorrhage' }] });
    expect(typo.warning).toContain('did you mean "haemorrhage"');
    expect(typo.items.length).toBe(4);
  });

  test('a two-letter abbreviation (MS, MR) can be searched and scored; one letter is a 400 naming the limit', async () => {
    const ms = await app.inject({ method: 'GET', url: '/api/v1/search?q=MS', headers: READER });
    expect(ms.statusCode).toBe(200);
    expect(ms.json().language).toBeDefined();
    const one = await app.inject({ method: 'GET', url: '/api/v1/search?q=M', headers: READER });
    expect(one.statusCode).toBe(400);
    expect(one.json().detail).toContain('querystring/q must NOT have fewer than 2 characters');
    const score = await app.inject({ method: 'POST', url: `/api/v1/studies/${INFARCT}/score`, headers: READER, payload: { text: 'x' } });
    expect(score.statusCode).toBe(400);
    expect(score.json().detail).toContain('body/text must NOT have fewer than 2 characters');
  });

  test('search leaves out studies scored by another model bundle', async () => {
    const r = JSON.parse((await redis.get(`nt:study:${BLEED}:result`)) as string);
    await redis.set(`nt:study:${BLEED}:result`, JSON.stringify({ ...r, model: { bundleId: 'older', version: '0' } }));
    const body = (await app.inject({ method: 'GET', url: '/api/v1/search?q=haemorrhage', headers: READER })).json();
    expect(body.total).toBe(3);
    expect(body.items.map((i: { StudyInstanceUID: string }) => i.StudyInstanceUID)).not.toContain(BLEED);
    const score = await app.inject({ method: 'POST', url: `/api/v1/studies/${BLEED}/score`, headers: READER, payload: { text: 'haemorrhage' } });
    expect(score.statusCode).toBe(409);
    expect(score.json().detail).toContain(`score the study again first (POST /api/v1/studies/${BLEED}/rescore`);
  });

  test('ad-hoc score refuses text the model cannot read (422, as saved queries) and warns on a misspelling', async () => {
    for (const text of ['the weather is nice', '\u{1F9E0}\u{1F9E0}\u{1F9E0}']) {
      const res = await app.inject({ method: 'POST', url: `/api/v1/studies/${INFARCT}/score`, headers: READER, payload: { text } });
      expect(res.statusCode).toBe(422);
      expect(res.json().detail).toMatch(/^body\/text is not text the model can use: /);
    }
    const contrast = await app.inject({ method: 'POST', url: `/api/v1/studies/${INFARCT}/score`, headers: READER, payload: { text: 'acute infarct', negativeText: 'asdfgh qwerty' } });
    expect(contrast.statusCode).toBe(422);
    expect(contrast.json().detail).toMatch(/^body\/negativeText is not text/);
    const typo = (await app.inject({ method: 'POST', url: `/api/v1/studies/${INFARCT}/score`, headers: READER, payload: { text: 'intracranial haemorrhge' } })).json();
    expect(typo.language).toMatchObject({ verdict: 'warning', misspelt: [{ word: 'haemorrhge', suggestion: 'haemorrhage' }] });
    expect(typo.warning).toMatch(/^The model may misread this text: /);
    expect(Number.isFinite(typo.similarity)).toBe(true);
    // The text as its own contrast: 0 on every study, whatever the images (200 with similarity 0 before), as saved queries refuse it.
    const same = await app.inject({ method: 'POST', url: `/api/v1/studies/${INFARCT}/score`, headers: READER, payload: { text: 'acute infarct', negativeText: ' Acute  Infarct' } });
    expect(same.statusCode).toBe(400);
    expect(same.json().detail).toBe('body/negativeText must differ from body/text: the score would always be 0');
    const plain = (await app.inject({ method: 'POST', url: `/api/v1/studies/${INFARCT}/score`, headers: READER, payload: { text: 'acute infarct' } })).json();
    expect(plain).toMatchObject({ language: { verdict: 'ok' }, warning: null });
  });

  test('ad-hoc score: the matching sentence scores higher on the matching study, per sequence too', async () => {
    const score = async (uid: string, text: string) =>
      (await app.inject({ method: 'POST', url: `/api/v1/studies/${uid}/score`, headers: READER, payload: { text } })).json();
    const onInfarct = await score(INFARCT, 'acute infarct with restricted diffusion');
    const onNormal = await score(NORMAL, 'acute infarct with restricted diffusion');
    expect(onInfarct.similarity).toBeGreaterThan(onNormal.similarity);
    expect(onInfarct.bySequence.DWI).toBeCloseTo(onInfarct.similarity, 5);
    expect(onInfarct.model).toEqual(HASH_MODEL);
  });

  test('ad-hoc score combines sequences as the bundle says: mean of per-sequence cosines, or the combined vector', async () => {
    const dwi = hashEmbed('acute infarct restricted diffusion');
    const flair = hashEmbed('normal brain');
    await redis.del(`nt:study:${INFARCT}:vectors`);
    await redis.hset(`nt:study:${INFARCT}:vectors`, { DWI: float32ToLE(dwi), FLAIR: float32ToLE(flair) });
    const text = 'acute infarct';
    const t = hashEmbed(text);
    const body = (await app.inject({ method: 'POST', url: `/api/v1/studies/${INFARCT}/score`, headers: READER, payload: { text } })).json();
    expect(body.bySequence.DWI).toBeCloseTo(cosine(dwi, t), 6);
    expect(body.bySequence.FLAIR).toBeCloseTo(cosine(flair, t), 6);
    expect(body.similarity).toBeCloseTo((cosine(dwi, t) + cosine(flair, t)) / 2, 6);
    const search = (await app.inject({ method: 'GET', url: `/api/v1/search?q=${text}`, headers: READER })).json();
    expect(search.items.find((i: { StudyInstanceUID: string }) => i.StudyInstanceUID === INFARCT).similarity).toBeCloseTo(body.similarity, 6);

    // A mean-score bundle averages per-sequence cosines even when the worker also stored a combined vector.
    await redis.hset(`nt:study:${INFARCT}:vectors`, { combined: float32ToLE(flair) });
    const meanScoreStatus = testModelStatus({ manifest: { combination: 'mean-score' } });
    const meanScore = await buildTestApp(redis, { modelStatus: () => meanScoreStatus });
    try {
      const ms = (await meanScore.inject({ method: 'POST', url: `/api/v1/studies/${INFARCT}/score`, headers: READER, payload: { text } })).json();
      expect(ms.similarity).toBeCloseTo((cosine(dwi, t) + cosine(flair, t)) / 2, 6);
      const me = (await app.inject({ method: 'POST', url: `/api/v1/studies/${INFARCT}/score`, headers: READER, payload: { text } })).json();
      expect(me.similarity).toBeCloseTo(cosine(flair, t), 6);
    } finally {
      await meanScore.close();
    }
  });

  test('report check: a flagged finding the report leaves out is notMentioned', async () => {
    const res = await app.inject({
      method: 'POST', url: `/api/v1/studies/${INFARCT}/report-check`, headers: READER,
      payload: { report: 'FINDINGS: Ventricles are of normal size.\nIMPRESSION: Mild small vessel changes.' },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.sentences.map((s: { text: string }) => s.text)).toEqual(['Ventricles are of normal size', 'Mild small vessel changes']);
    expect(body.notMentioned.map((g: { queryId: string }) => g.queryId)).toEqual(['acute_infarct']);
    expect(body.contradicted).toEqual([]);
    expect(body.unsupported).toEqual([]);
  });

  test('report check: a denied flagged finding is contradicted; an asserted finding the images lack is unsupported', async () => {
    const res = await app.inject({
      method: 'POST', url: `/api/v1/studies/${INFARCT}/report-check`, headers: READER,
      payload: { report: 'No acute infarct or restricted diffusion. There is an enhancing mass lesion in the frontal lobe.' },
    });
    const body = res.json();
    expect(body.contradicted.map((g: { queryId: string }) => g.queryId)).toEqual(['acute_infarct']);
    expect(body.notMentioned).toEqual([]);
    const mass = body.sentences[1];
    expect(mass).toMatchObject({ assertion: 'present', matchedQueryId: 'mass', supported: false, threshold: QUERIES[2].calibration!.threshold });
    expect(body.unsupported).toEqual([1]);
  });

  test('report check: a report that states the flagged finding passes', async () => {
    const body = (
      await app.inject({
        method: 'POST', url: `/api/v1/studies/${INFARCT}/report-check`, headers: READER,
        payload: { report: 'Acute infarct in the left territory with restricted diffusion.' },
      })
    ).json();
    expect(body.notMentioned).toEqual([]);
    expect(body.contradicted).toEqual([]);
    expect(body.unsupported).toEqual([]);
    expect(body.sentences[0]).toMatchObject({ matchedQueryId: 'acute_infarct', supported: true });
  });

  test('report check: a site query newer than the study cannot refute a sentence (supported null), nor take a match from the judged query', async () => {
    // Site queries created after the study was scored: no finding in its result, no calibration.
    for (const [id, text] of [['infarct_site', QUERIES[0].text], ['subdural', 'subdural haematoma collection']]) {
      expect((await app.inject({ method: 'POST', url: '/api/v1/queries', headers: ADMIN, payload: { id, text, priority: 'STAT' } })).statusCode).toBe(201);
    }
    const body = (await app.inject({
      method: 'POST', url: `/api/v1/studies/${INFARCT}/report-check`, headers: READER,
      payload: { report: `${QUERIES[0].text}. Subdural haematoma collection.` },
    })).json();
    // As close to both: the query the study was judged with keeps the sentence.
    expect(body.sentences[0]).toMatchObject({ matchedQueryId: 'acute_infarct', supported: true, notChecked: null });
    expect(body.sentences[1]).toMatchObject({ matchedQueryId: 'subdural', assertion: 'present', supported: null, notChecked: expect.stringContaining('no finding for "subdural"') });
    expect(body.unsupported).toEqual([]);
    expect(body.warnings).toEqual([expect.stringContaining('cannot be judged on this study ("subdural")')]);
    expect(body.truncated).toBeNull();
  });
});

describe('audit log', () => {
  test('responses carrying patient data are not cached (no-store) nor sniffed; the page keeps its own headers', async () => {
    for (const url of ['/api/v1/worklist', `/api/v1/studies/${MASS}`, '/api/v1/studies?status=queued', '/api/v1/audit', '/api/v1/studies/1.2.3.4.5', '/api/v1/me']) {
      const res = await app.inject({ method: 'GET', url, headers: ADMIN });
      expect([url, res.headers['cache-control'], res.headers['x-content-type-options']]).toEqual([url, 'no-store', 'nosniff']);
    }
    const search = await app.inject({ method: 'GET', url: '/api/v1/search?q=bleed', headers: READER });
    expect(search.headers['cache-control']).toBe('no-store');
    const page = await app.inject({ method: 'GET', url: '/' });
    expect(page.headers['cache-control']).not.toContain('no-store');
    expect(page.headers['x-content-type-options']).toBe('nosniff');
  });

  test('records who read which study and who changed which query, never the free text', async () => {
    await app.inject({ method: 'GET', url: `/api/v1/studies/${MASS}`, headers: READER });
    // One query read alone is a read like the list (it was the one GET under /api/v1 with data and no audit line).
    expect((await app.inject({ method: 'GET', url: '/api/v1/queries/mass', headers: READER })).statusCode).toBe(200);
    await app.inject({ method: 'POST', url: '/api/v1/queries', headers: ADMIN, payload: { id: 'audit_q', text: 'subdural collection', priority: 'URGENT' } });
    await app.inject({ method: 'GET', url: '/api/v1/search?q=secret%20words%20typed', headers: READER });
    await app.inject({ method: 'POST', url: `/api/v1/studies/${INFARCT}/report-check`, headers: READER, payload: { report: 'private draft wording' } });
    const lines = auditLines();
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ user: 'dr-reader', role: 'reader', action: 'study.read', StudyInstanceUID: MASS }),
        expect.objectContaining({ user: 'dr-reader', role: 'reader', action: 'queries.read', queryId: 'mass' }),
        expect.objectContaining({ user: 'pacs-admin', role: 'admin', action: 'query.create', queryId: 'audit_q', queryVersion: expect.any(Number) }),
        expect.objectContaining({ user: 'dr-reader', action: 'search', textLength: 'secret words typed'.length }),
        expect.objectContaining({ user: 'dr-reader', action: 'study.report-check', StudyInstanceUID: INFARCT }),
      ]),
    );
    const raw = readFileSync(auditFile(dataDir), 'utf8');
    expect(raw).not.toContain('secret words');
    expect(raw).not.toContain('private draft');
    for (const l of lines) expect(Date.parse(l.at as string)).not.toBeNaN();
  });

  test('refused requests are audited with who, which route and why, never the token or the query string', async () => {
    const before = auditLines().length;
    expect((await app.inject({ method: 'GET', url: `/api/v1/studies/${MASS}?x=1` })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: { authorization: 'Bearer guessed-token-abcdef123456' } })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: SCRAPER })).statusCode).toBe(403);
    expect((await app.inject({ method: 'DELETE', url: '/api/v1/queries/mass', headers: READER })).statusCode).toBe(403);
    const denied = auditLines().slice(before);
    expect(denied).toEqual([
      expect.objectContaining({ user: 'anonymous', role: 'none', action: 'access.denied', route: 'GET /api/v1/studies/:StudyInstanceUID', outcome: 'no-token' }),
      expect.objectContaining({ user: 'anonymous', role: 'none', action: 'access.denied', route: 'GET /api/v1/worklist', outcome: 'invalid-token' }),
      expect.objectContaining({ user: 'prometheus', role: 'metrics', action: 'access.denied', route: 'GET /api/v1/worklist', outcome: 'role' }),
      expect.objectContaining({ user: 'dr-reader', role: 'reader', action: 'access.denied', route: 'DELETE /api/v1/queries/:id', outcome: 'role' }),
    ]);
    const raw = JSON.stringify(denied);
    expect(raw).not.toContain('guessed-token');
    expect(raw).not.toContain('x=1');
  });

  test('after logrotate moves the file, reopening (SIGHUP in main) sends the next entries to a new file', async () => {
    const file = auditFile(dataDir);
    await app.inject({ method: 'GET', url: `/api/v1/studies/${MASS}`, headers: READER });
    renameSync(file, `${file}.1`);
    await app.reopenAuditLog();
    await app.inject({ method: 'GET', url: `/api/v1/studies/${INFARCT}`, headers: READER });
    const fresh = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(fresh).toEqual([expect.objectContaining({ action: 'study.read', StudyInstanceUID: INFARCT })]);
    expect(readFileSync(`${file}.1`, 'utf8')).toContain(MASS);
  });

  test('admins export a time window as JSON lines; readers may not; the export is audited', async () => {
    await app.inject({ method: 'GET', url: `/api/v1/studies/${MASS}`, headers: READER });
    const all = auditLines();
    const last = all[all.length - 1];
    const res = await app.inject({ method: 'GET', url: `/api/v1/audit?from=${encodeURIComponent(last.at as string)}`, headers: ADMIN });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/application\/x-ndjson/);
    const exported = res.body.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(exported).toEqual(expect.arrayContaining([expect.objectContaining({ action: 'study.read', StudyInstanceUID: MASS })]));
    for (const e of exported) expect(Date.parse(e.at as string)).toBeGreaterThanOrEqual(Date.parse(last.at as string));
    const empty = await app.inject({ method: 'GET', url: '/api/v1/audit?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z', headers: ADMIN });
    expect(empty.body).toBe('');
    expect((await app.inject({ method: 'GET', url: '/api/v1/audit', headers: READER })).statusCode).toBe(403);
    const backwards = await app.inject({ method: 'GET', url: '/api/v1/audit?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z', headers: ADMIN });
    expect(backwards.statusCode).toBe(400);
    expect(backwards.json().detail).toMatch(/from must be earlier than/);
    // Only `to`, before 1970: an empty window (it was a 400 about a `from` never sent).
    const early = await app.inject({ method: 'GET', url: '/api/v1/audit?to=1969-12-31T00:00:00Z', headers: ADMIN });
    expect([early.statusCode, early.body]).toEqual([200, '']);
    // A leap second is a valid RFC 3339 time that Date.parse cannot read: it was NaN, every comparison with it false,
    // and the export silently empty. Now a 400 naming the field.
    for (const q of ['to=2016-12-31T23:59:60Z', 'from=2016-12-31T23:59:60Z']) {
      const leap = await app.inject({ method: 'GET', url: `/api/v1/audit?${q}`, headers: ADMIN });
      expect(leap.statusCode).toBe(400);
      expect(leap.json().detail).toBe(`querystring/${q.split('=')[0]} is a time this API cannot read (a leap second, :60?): send 23:59:59 or the next second`);
    }
    expect(auditLines()).toEqual(expect.arrayContaining([expect.objectContaining({ user: 'pacs-admin', action: 'audit.export' })]));
  });
});

describe('live updates', () => {
  test('the event stream carries scored and queries events, and closing the app ends open streams', async () => {
    const live = await buildTestApp(redis);
    await live.listen({ host: '127.0.0.1', port: 0 });
    const { port } = live.server.address() as AddressInfo;
    const frames: string[] = [];
    let ended = false;
    const req = request({ host: '127.0.0.1', port, path: '/api/v1/events', headers: READER });
    const opened = new Promise<{ status: number; cache: unknown; sniff: unknown }>((resolve) => {
      req.on('response', (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => frames.push(chunk));
        res.on('end', () => (ended = true));
        resolve({ status: res.statusCode ?? 0, cache: res.headers['cache-control'], sniff: res.headers['x-content-type-options'] });
      });
    });
    req.end();
    // The stream names the studies scored (worklist data): no-store and nosniff like every other /api/v1 answer (it
    // was no-cache, which lets a cache keep a copy, and had no nosniff: its headers bypass the app's onSend hook).
    expect(await opened).toEqual({ status: 200, cache: 'no-store, no-transform', sniff: 'nosniff' });
    // The app's live-update subscriber connects and subscribes in the background (its own Redis connection): a
    // message published before SUBSCRIBE has been answered is lost. Publish until one comes through the stream
    // (a fixed pause is a guess that a loaded machine can beat), then the query change behind it.
    const scoredFrame = `event: scored\ndata: {"type":"scored","StudyInstanceUID":"${MASS}"}\n\n`;
    let deadline = Date.now() + 10_000;
    while (!frames.join('').includes(scoredFrame) && Date.now() < deadline) {
      await redis.publish('nt:events:scored', MASS);
      await new Promise((r) => setTimeout(r, 50));
    }
    await changeQuery(redis, { put: { ...QUERIES[0], priority: 'URGENT' } });
    deadline = Date.now() + 10_000;
    while (!frames.join('').includes('event: queries') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const text = frames.join('');
    expect(text).toContain(`event: scored\ndata: {"type":"scored","StudyInstanceUID":"${MASS}"}\n\n`);
    expect(text).toMatch(/event: queries\ndata: \{"type":"queries","version":\d+\}/);
    const t = Date.now();
    await live.close();
    expect(Date.now() - t).toBeLessThan(5000);
    // The stream's end reaches this client through its own socket, which close() does not wait for.
    const endBy = Date.now() + 5000;
    while (!ended && Date.now() < endBy) await new Promise((r) => setTimeout(r, 20));
    expect(ended).toBe(true);
  });

  test('HEAD /api/v1/events answers the stream\'s headers and ends: nothing stays attached, the connection goes on', async () => {
    // Hijacked and attached like a GET, a HEAD sent no headers at all (Node holds a HEAD's headers until the response
    // ends), kept a live listener for as long as the client waited, and stalled every request behind it on the socket.
    const live = await buildTestApp(redis);
    try {
      await live.listen({ host: '127.0.0.1', port: 0 });
      const { port } = live.server.address() as AddressInfo;
      const answer = await rawExchange(port, `HEAD /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: ${READER.authorization}\r\n\r\nGET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 5_000);
      expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*content-type: text\/event-stream/i);
      expect(answer).toMatch(/\r\ncache-control: no-store, no-transform\r\n/i);
      expect(answer).toContain('{"status":"ok"}');
      expect(live.live.events.listenerCount('event')).toBe(0);
    } finally {
      await live.close();
    }
  });

  test('the event stream needs a token like every other route', async () => {
    expect((await app.inject({ method: 'GET', url: '/api/v1/events' })).statusCode).toBe(401);
  });
});

test('an audit log that cannot be written refuses the read (fail closed) without saying why to the client', async () => {
  const broken = await buildTestApp(redis, { auditLog: { write: async () => { throw new Error('ENOSPC: no space left'); }, reopen: async () => undefined, close: async () => undefined } });
  try {
    const res = await broken.inject({ method: 'GET', url: `/api/v1/studies/${MASS}`, headers: READER });
    expect(res.statusCode).toBe(500);
    expect(res.json().detail).toMatch(/quote request id req-/);
    expect(res.body).not.toContain('ENOSPC');
    expect(res.body).not.toContain('findings');
  } finally {
    await broken.close();
  }
});

describe('logs', () => {
  test('request log lines carry the route template and user, never the search text or report', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
    const logged = await buildTestApp(redis, { logger: createLogger('api-test', 'info', sink) });
    try {
      await logged.inject({ method: 'GET', url: '/api/v1/search?q=patient%20called%20smith', headers: READER });
      await logged.inject({ method: 'POST', url: `/api/v1/studies/${INFARCT}/report-check`, headers: READER, payload: { report: 'draft for jones' } });
      const text = lines.join('');
      expect(text).toContain('"route":"/api/v1/search"');
      expect(text).toContain('"user":"dr-reader"');
      expect(text).not.toMatch(/smith|jones/);
    } finally {
      await logged.close();
    }
  });
});

describe('metrics and docs', () => {
  test('/metrics needs a token and exposes the request histogram by route template', async () => {
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    await app.inject({ method: 'GET', url: `/api/v1/studies/${MASS}`, headers: READER });
    const res = await app.inject({ method: 'GET', url: '/metrics', headers: READER });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('neurotriage_api_http_request_duration_seconds_bucket');
    expect(res.body).toContain('route="/api/v1/studies/:StudyInstanceUID"');
    expect(res.body).not.toContain(MASS);
  });

  test('a metrics token scrapes /metrics and reads nothing else', async () => {
    expect((await app.inject({ method: 'GET', url: '/metrics', headers: SCRAPER })).statusCode).toBe(200);
    for (const url of ['/api/v1/worklist', `/api/v1/studies/${MASS}`, '/api/v1/queries', '/api/v1/search?q=mass']) {
      const res = await app.inject({ method: 'GET', url, headers: SCRAPER });
      expect(res.statusCode).toBe(403);
      expect(res.json().detail).toContain('needs the reader role; "prometheus" has metrics');
    }
  });

  test('/docs serves the OpenAPI document and the UI assets from this process', async () => {
    const spec = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(spec.openapi).toBe('3.0.3');
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(['/api/v1/worklist', '/api/v1/studies/{StudyInstanceUID}', '/api/v1/queries/{id}', '/api/v1/search']));
    expect(spec.paths['/api/v1/worklist'].get.responses['200']).toBeDefined();
    const html = await app.inject({ method: 'GET', url: '/docs/' });
    expect(html.statusCode).toBe(200);
    expect(html.body).not.toMatch(/https?:\/\/(unpkg|cdn|cdnjs)/);
    expect((await app.inject({ method: 'GET', url: '/docs/static/swagger-ui-bundle.js' })).statusCode).toBe(200);
  });
});
