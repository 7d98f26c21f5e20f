// HTTP semantics an integrator's client relies on (RFC 9110), on the app from build(deps) over a real Redis: a known
// path asked with a method it does not take is a 405 naming the methods it does (not a 404 "no route"), and a route
// that takes no request body refuses one instead of silently ignoring it.
import net, { type AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { ADMIN, READER, buildTestApp, writeResult } from './helpers';

const UID = '1.2.826.0.1.3680043.10.9.1';

let redis: Redis;
let app: FastifyInstance;
let port: number;

/** The raw answer to bytes written as they are (app.inject() can send neither a header twice nor a CONNECT). */
const send = (head: string, body = ''): Promise<{ status: number; contentType?: string; body: string; head: string }> =>
  new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', reject);
    socket.on('close', () => {
      const [headers, ...rest] = Buffer.concat(chunks).toString('utf8').split('\r\n\r\n');
      resolve({ status: Number(headers.split(' ')[1]), contentType: /\r\ncontent-type: ([^\r]*)/i.exec(headers)?.[1], body: rest.join('\r\n\r\n'), head: headers });
    });
    // Written, not ended: a client that half-closes before an answer that waits on Redis may get none at all.
    socket.write(`${head}Connection: close\r\n${body ? `Content-Length: ${Buffer.byteLength(body)}\r\n` : ''}\r\n${body}`);
  });

beforeAll(async () => {
  redis = await startRedisClient('producer');
  app = await buildTestApp(redis);
  await app.listen({ port: 0, host: '127.0.0.1' });
  port = (app.server.address() as AddressInfo).port;
  await writeResult(redis, { uid: UID, priority: 'STAT', receivedAt: Date.UTC(2026, 0, 5), looksLike: 'acute infarct restricted diffusion', flagged: ['acute_infarct'] });
});

afterAll(() => stopRedisClient(redis, app));

describe('a method the path does not take', () => {
  test.each([
    ['DELETE', '/api/v1/worklist', 'GET, HEAD'],
    ['POST', `/api/v1/studies/${UID}`, 'GET, HEAD'],
    ['GET', `/api/v1/studies/${UID}/score`, 'POST'],
    ['PATCH', '/api/v1/queries/mass', 'DELETE, GET, HEAD, PUT'],
    ['PUT', '/api/v1/queries', 'GET, HEAD, POST'],
    ['OPTIONS', '/api/v1/worklist', 'GET, HEAD'],
    ['DELETE', `/api/v1/studies/${UID}/images/1.2.3.png`, 'GET, HEAD'],
    ['POST', '/livez', 'GET, HEAD'],
  ])('%s %s is a 405 problem with Allow: %s', async (method, url, allow) => {
    const res = await app.inject({ method: method as 'GET', url, headers: ADMIN });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe(allow);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({ status: 405, title: 'Method Not Allowed', detail: `${method} is not allowed on ${url.split('?')[0]}; it takes ${allow}` });
  });

  test('a path no route has is still a 404, under any method', async () => {
    for (const method of ['GET', 'POST', 'DELETE'] as const) {
      const res = await app.inject({ method, url: '/api/v1/no-such-thing', headers: READER });
      expect(res.statusCode).toBe(404);
      expect(res.headers.allow).toBeUndefined();
    }
    // The page's catch-all static route (GET /*) does not make every path "GET only".
    expect((await app.inject({ method: 'POST', url: '/no-such-file.txt' })).statusCode).toBe(404);
  });
});

describe('a body sent to a route that takes none', () => {
  test.each([
    ['POST', '/api/v1/queries/mass/restore'],
    ['POST', '/api/v1/queries/mass/calibrate'],
    ['DELETE', '/api/v1/queries/mass'],
    ['GET', '/api/v1/worklist'],
    ['GET', `/api/v1/studies/${UID}`],
  ])('%s %s with a JSON body is a 400 saying the route takes no body', async (method, url) => {
    const res = await app.inject({ method: method as 'GET', url, headers: { ...ADMIN, 'content-type': 'application/json' }, payload: '{"id":"mass"}' });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json().detail).toBe(`${method} ${url.replace(/\/mass(?=\/|$)/, '/:id').replace(UID, ':StudyInstanceUID')} takes no request body: send none`);
  });

  test('a body of another type is refused the same way, before its type is', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/queries/mass/restore', headers: { ...ADMIN, 'content-type': 'text/plain' }, payload: 'restore' });
    expect(res.statusCode).toBe(400);
    expect(res.json().detail).toMatch(/takes no request body/);
  });

  test('no body, or an empty one (Content-Length: 0), is accepted as before', async () => {
    expect((await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: READER })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: { ...READER, 'content-length': '0' } })).statusCode).toBe(200);
    // As the page sends it: POST without a body or a Content-Type.
    expect((await app.inject({ method: 'POST', url: '/api/v1/queries/mass/restore', headers: ADMIN })).statusCode).toBe(200);
  });

  test('a route that takes a body still reads it', async () => {
    const res = await app.inject({ method: 'POST', url: `/api/v1/studies/${UID}/score`, headers: READER, payload: { text: 'acute infarct' } });
    expect(res.statusCode).toBe(200);
  });
});

describe('a JSON body that is not UTF-8', () => {
  // "hæmorrhage" as a RIS or script writing Latin-1 sends it: æ is the single byte 0xE6.
  const latin1 = (json: string) => Buffer.from(json, 'latin1');

  test('is a 400 saying so, naming the charset it was sent in, and nothing is saved', async () => {
    const res = await app.inject({
      method: 'POST', url: '/api/v1/queries', headers: { ...ADMIN, 'content-type': 'application/json; charset=ISO-8859-1' },
      payload: latin1('{"id":"latin1_bleed","text":"acute intracranial hæmorrhage","priority":"STAT"}'),
    });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({ status: 400, detail: 'the body is not valid UTF-8: send JSON encoded as UTF-8 (not ISO-8859-1)' });
    expect((await app.inject({ method: 'GET', url: '/api/v1/queries/latin1_bleed', headers: READER })).statusCode).toBe(404);
  });

  test('is refused without a charset too, where it was read with replacement characters and answered 200', async () => {
    const res = await app.inject({
      method: 'POST', url: `/api/v1/studies/${UID}/score`, headers: { ...READER, 'content-type': 'application/json' },
      payload: latin1('{"text":"acute hæmorrhage"}'),
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().detail).toBe('the body is not valid UTF-8: send JSON encoded as UTF-8');
    expect(res.body).not.toContain('\ufffd');
  });

  test('UTF-8, with or without a byte order mark, is read as before', async () => {
    for (const prefix of ['', '\ufeff']) {
      const res = await app.inject({
        method: 'POST', url: `/api/v1/studies/${UID}/score`, headers: { ...READER, 'content-type': 'application/json; charset=utf-8' },
        payload: Buffer.from(`${prefix}{"text":"acute infarct"}`, 'utf8'),
      });
      expect(res.statusCode).toBe(200);
      expect(res.json().text).toBe('acute infarct');
    }
  });
});

describe('a one-value header sent twice', () => {

  test.each([
    // Node kept the first token and answered 200 as the reader, whatever the second said.
    ['Authorization', `GET /api/v1/me HTTP/1.1\r\nHost: api\r\nAuthorization: ${READER.authorization}\r\nAuthorization: ${ADMIN.authorization}\r\n`, ''],
    ['Host', 'GET /livez HTTP/1.1\r\nHost: api\r\nHost: elsewhere\r\n', ''],
    ['Content-Type', `POST /api/v1/studies/${UID}/score HTTP/1.1\r\nHost: api\r\nAuthorization: ${READER.authorization}\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\n`, '{"text":"acute infarct"}'],
  ])('two %s headers are a 400 saying so', async (name, head, body) => {
    const res = await send(head, body);
    expect(res.status).toBe(400);
    expect(res.contentType).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(res.body)).toMatchObject({ status: 400, detail: `the request has 2 ${name} headers: send one` });
  });

  test('one of each is answered as before', async () => {
    const res = await send(`GET /api/v1/me HTTP/1.1\r\nHost: api\r\nAuthorization: ${READER.authorization}\r\n`);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ name: 'dr-reader', role: 'reader' });
  });
});

describe('a query string whose percent-encoding does not decode', () => {
  // Fastify's parser kept such a value as its literal letters: a search for "%E2%82" (a character cut short) ran
  // on the text "%E2%82" and answered 200, where a path with the same encoding is a 400.
  test.each([
    ['a "%" not followed by two hex digits', '/api/v1/search?q=50%zz', 'querystring/q'],
    ['bytes that are not UTF-8', '/api/v1/search?q=%E2%82', 'querystring/q'],
    ['a lone "%" at the end', '/api/v1/worklist?limit=5%', 'querystring/limit'],
    ['a name that does not decode', '/api/v1/search?%FF=1&q=x', "parameter 1's name"],
  ])('%s is a 400 naming the parameter', async (_, url, where) => {
    const res = await app.inject({ method: 'GET', url, headers: READER });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json().detail).toBe(`the query string holds a percent-encoding that does not decode in ${where} ("%" not followed by two hex digits, or bytes that are not UTF-8): send "%" itself as %25`);
  });

  test('well-formed encodings, "+" for a space and "%25" for "%" are answered as before', async () => {
    for (const url of ['/api/v1/search?q=acute+infarct%20in%20the%20th%C3%A1lamus%2C%2050%25', '/api/v1/worklist?limit=%35']) {
      expect((await app.inject({ method: 'GET', url, headers: READER })).statusCode).toBe(200);
    }
  });
});

describe('a worklist cursor', () => {
  const cursorOf = (json: string) => Buffer.from(json).toString('base64url');

  test.each([
    ['an empty UID', '[1,""]'],
    ['a UID that is not one', '[1,"../x"]'],
    ['a third member', '[1,"1.2.3","x"]'],
    ['an object', '{"score":1,"uid":"1.2.3"}'],
  ])('that is valid JSON with %s is a 400, not a page', async (_, json) => {
    const res = await app.inject({ method: 'GET', url: `/api/v1/worklist?cursor=${cursorOf(json)}`, headers: READER });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json().detail).toBe('querystring/cursor: cursor is not one this API returned (use nextCursor from the previous page)');
  });

  test('the API\'s own nextCursor still pages on', async () => {
    await writeResult(redis, { uid: `${UID}.2`, priority: 'ROUTINE', receivedAt: Date.UTC(2026, 0, 6), looksLike: 'normal brain no abnormality' });
    const first = (await app.inject({ method: 'GET', url: '/api/v1/worklist?limit=1', headers: READER })).json();
    expect(first.nextCursor).toEqual(expect.any(String));
    const second = await app.inject({ method: 'GET', url: `/api/v1/worklist?limit=1&cursor=${first.nextCursor}`, headers: READER });
    expect(second.statusCode).toBe(200);
    expect(second.json().items.map((i: { StudyInstanceUID: string }) => i.StudyInstanceUID)).toEqual([`${UID}.2`]);
  });
});

test.each(['api.example:443', '/api/v1/worklist'])('CONNECT %s is a 501 problem, not a connection closed unanswered', async (target) => {
  const res = await send(`CONNECT ${target} HTTP/1.1\r\nHost: api\r\nAuthorization: ${READER.authorization}\r\n`);
  expect(res.status).toBe(501);
  expect(res.contentType).toBe('application/problem+json');
  expect(JSON.parse(res.body)).toMatchObject({ status: 501, title: 'Not Implemented', detail: expect.stringMatching(/^CONNECT is not served/) });
  // The server goes on answering.
  expect((await app.inject({ method: 'GET', url: '/livez' })).statusCode).toBe(200);
});

test('a body in a transfer coding other than chunked is a 501 saying so, not parsed still compressed', async () => {
  const gzipped = gzipSync('{"text":"acute infarct"}');
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.end(Buffer.concat([
      Buffer.from(`POST /api/v1/studies/${UID}/score HTTP/1.1\r\nHost: api\r\nAuthorization: ${READER.authorization}\r\nContent-Type: application/json\r\n` +
        `Transfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n${gzipped.length.toString(16)}\r\n`),
      gzipped,
      Buffer.from('\r\n0\r\n\r\n'),
    ]));
  });
  const [head, body] = answer.split('\r\n\r\n');
  expect(head).toMatch(/^HTTP\/1.1 501 /);
  expect(head).toMatch(/\r\ncontent-type: application\/problem\+json/i);
  expect(JSON.parse(body)).toMatchObject({ status: 501, detail: 'Transfer-Encoding gzip is not accepted: send the body uncompressed (chunked or with a Content-Length)' });
});

describe('a request target in absolute form (RFC 9112 section 3.2.2: a server must accept it)', () => {
  // The router serves `GET http://host/api/v1/worklist` as /api/v1/worklist, but the no-store check read the raw
  // target: the worklist and a study's result left without Cache-Control, so a cache in between could keep them.
  test.each([
    ['the worklist', 'http://api/api/v1/worklist', 200],
    ['a study', `HTTPS://api:8443/api/v1/studies/${UID}`, 200],
    ['a refusal', 'http://api/api/v1/queries/mass', 403],
  ])('%s is answered no-store like its path, the problem instance being the path', async (_, target, status) => {
    const res = await send(`${status === 403 ? 'DELETE' : 'GET'} ${target} HTTP/1.1\r\nHost: api\r\nAuthorization: ${READER.authorization}\r\n`);
    expect(res.status).toBe(status);
    expect(res.head).toMatch(/\r\ncache-control: no-store\r\n/i);
    expect(res.head).toMatch(/\r\nx-content-type-options: nosniff\r\n/i);
    if (status >= 400) expect(JSON.parse(res.body).instance).toBe(new URL(target).pathname);
  });
});
