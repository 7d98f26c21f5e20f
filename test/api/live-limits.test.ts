// Bounds on the live-update streams (GET /api/v1/events), over real sockets against the real app: streams per user
// and per process (one leaked token or a browser reopening tabs must not hold thousands of sockets), and a client
// that never reads, whose unsent events the server must not buffer without end.
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { waitFor } from '../helpers/wait';
import { ADMIN, READER, TOKENS, testDeps } from './helpers';
import { build } from '../../services/api/app';
import type { ApiSettings } from '../../services/api/settings';

let redis: Redis;

beforeAll(async () => {
  redis = await startRedisClient('producer');
});

afterAll(() => stopRedisClient(redis));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const until = (what: string, check: () => boolean | Promise<boolean>, ms = 10_000) => waitFor(what, check, ms, 10);

async function liveApp(settings: Partial<ApiSettings>): Promise<{ app: FastifyInstance; port: number; registry: Registry }> {
  const deps = testDeps(redis);
  const app = await build({ ...deps, settings: { ...deps.settings, ...settings } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, port: (app.server.address() as AddressInfo).port, registry: deps.registry };
}

const connections = (app: FastifyInstance) => new Promise<number>((resolve, reject) => app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
const gauge = async (app: FastifyInstance) => (await app.metrics.sseClients.get()).values[0]?.value ?? 0;

/** The value of one sample of a metric, 0 when it is not exported. */
async function sample(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const found = (await metric.get()).values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
  return found?.value ?? 0;
}

interface Opened {
  status: number;
  headers: IncomingMessage['headers'];
  /** The whole body of a refusal; empty for an open stream. */
  body: string;
  req: ClientRequest;
}

/** Opens GET /api/v1/events; resolves once the headers (and for a refusal, its body) have arrived. */
function openStream(port: number, headers: Record<string, string>): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/v1/events', headers, agent: false }, (res) => {
      if (res.statusCode === 200) {
        res.resume();
        resolve({ status: 200, headers: res.headers, body: '', req });
        return;
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, req }));
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    req.end();
  });
}

test('streams are capped per user and per process: a 429 problem naming the cap, and a closed stream frees its place', async () => {
  const { app, port, registry } = await liveApp({ API_LIVE_MAX_STREAMS_PER_USER: 3, API_LIVE_MAX_STREAMS: 4 });
  const open: ClientRequest[] = [];
  try {
    const before = await gauge(app);
    for (let i = 0; i < 3; i++) {
      const s = await openStream(port, READER);
      expect(s.status).toBe(200);
      open.push(s.req);
    }
    expect(await gauge(app)).toBe(before + 3);

    // The reader's fourth: refused, naming the per-user cap and the setting; the token is never echoed.
    const fourth = await openStream(port, READER);
    expect(fourth.status).toBe(429);
    expect(fourth.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(Number(fourth.headers['retry-after'])).toBeGreaterThan(0);
    const problem = JSON.parse(fourth.body) as { status: number; detail: string; limit?: string };
    expect(problem.status).toBe(429);
    // Which limit, for a client to act on without reading the words.
    expect(problem.limit).toBe('live-streams-per-user');
    expect(problem.detail).toContain('"dr-reader" already has 3 live-update streams open');
    expect(problem.detail).toContain('API_LIVE_MAX_STREAMS_PER_USER');
    expect(fourth.body).not.toContain(TOKENS[0].token);
    expect(await gauge(app)).toBe(before + 3);
    expect(app.live.events.listenerCount('event')).toBe(3);

    // Another user still gets in, up to the process's cap; past it, refused naming that cap.
    const admin = await openStream(port, ADMIN);
    expect(admin.status).toBe(200);
    open.push(admin.req);
    const full = await openStream(port, ADMIN);
    expect(full.status).toBe(429);
    expect(Number(full.headers['retry-after'])).toBeGreaterThan(0);
    const fullProblem = JSON.parse(full.body) as { detail: string; limit?: string };
    expect(fullProblem.detail).toContain('API_LIVE_MAX_STREAMS)');
    expect(fullProblem.limit).toBe('live-streams-per-process');
    expect(full.body).not.toContain(TOKENS[1].token);
    expect(await sample(registry, 'neurotriage_api_live_refused_total', { cap: 'user' })).toBe(1);
    expect(await sample(registry, 'neurotriage_api_live_refused_total', { cap: 'process' })).toBe(1);

    // The reader closes a tab: its place is given back, to the reader and to the process.
    open.shift()!.destroy();
    await until('the closed stream to detach', async () => (await gauge(app)) === before + 3);
    const again = await openStream(port, READER);
    expect(again.status).toBe(200);
    open.push(again.req);
    expect(await gauge(app)).toBe(before + 4);
  } finally {
    for (const req of open) req.destroy();
    await app.close();
  }
  // Closing the app ended every stream and gave back every place.
  expect(app.live.events.listenerCount('event')).toBe(0);
});

test('the rate limit refusing a stream says so in the same member, "rate", and other problems carry none', async () => {
  const { app, port } = await liveApp({ API_RATE_LIMIT_MAX: 2, API_RATE_LIMIT_WINDOW_SECONDS: 60 });
  const open: ClientRequest[] = [];
  try {
    const first = await openStream(port, READER);
    expect(first.status).toBe(200);
    open.push(first.req);
    // A problem that is not about a limit has no such member (the rate limit counts this request too: 2 of 2).
    const denied = await openStream(port, { authorization: 'Bearer not-a-token' });
    expect(denied.status).toBe(401);
    expect(JSON.parse(denied.body)).not.toHaveProperty('limit');
    const refused = await openStream(port, READER);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    const problem = JSON.parse(refused.body) as { detail: string; limit?: string };
    expect(problem.detail).toContain('more than 2 requests in 60 s');
    expect(problem.limit).toBe('rate');
  } finally {
    for (const req of open) req.destroy();
    await app.close();
  }
});

test('a stream whose client never reads is dropped once its unsent events pass the bound; a reading client stays', async () => {
  const { app, port, registry } = await liveApp({ API_LIVE_MAX_UNSENT_BYTES: 256 * 1024 });
  const slow = connect(port, '127.0.0.1');
  slow.pause(); // never reads: what the server sends piles up in the kernel's buffers, then in Node's
  slow.on('error', () => undefined);
  let reading: ClientRequest | undefined;
  try {
    const before = await gauge(app);
    slow.write(`GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: ${READER.authorization}\r\n\r\n`);
    await until('the slow stream to attach', async () => (await gauge(app)) === before + 1);
    let received = 0;
    const fast = await new Promise<IncomingMessage>((resolve) => {
      reading = request({ host: '127.0.0.1', port, path: '/api/v1/events', headers: ADMIN, agent: false }, resolve);
      reading.on('error', () => undefined);
      reading.end();
    });
    fast.on('data', (d: Buffer) => (received += d.length));
    await until('the reading stream to attach', async () => (await gauge(app)) === before + 2);

    // 16 KiB events until the slow stream is dropped; loopback buffers take a few MiB first. Without a bound the
    // server would buffer all 128 MiB for a client that reads none of it.
    const uid = `1.2.${'3'.repeat(16 * 1024)}`;
    let sent = 0;
    while ((await gauge(app)) !== before + 1 && sent < 128 * 1024 * 1024) {
      app.live.events.emit('event', { type: 'scored', StudyInstanceUID: uid });
      sent += uid.length;
      await new Promise((r) => setImmediate(r));
    }
    expect(await gauge(app)).toBe(before + 1);
    expect(app.live.events.listenerCount('event')).toBe(1);
    expect(await sample(registry, 'neurotriage_api_live_dropped_total', { reason: 'slow' })).toBe(1);
    // The server let go of the slow client's socket itself (it cannot tell the client, who reads nothing).
    await until('the slow socket to be closed', async () => (await connections(app)) === 1);
    // The client that reads got the same events and is still attached.
    const got = received;
    app.live.events.emit('event', { type: 'scored', StudyInstanceUID: '1.2.3' });
    await until('the reading client to get one more event', () => received > got);
    expect(await sample(registry, 'neurotriage_api_live_dropped_total', { reason: 'slow' })).toBe(1);
  } finally {
    slow.destroy();
    reading?.destroy();
    await app.close();
  }
});

test('a stream that never opens (its audit write failed) gives its place back', async () => {
  const deps = testDeps(redis);
  let failures = 2;
  const app = await build({
    ...deps,
    settings: { ...deps.settings, API_LIVE_MAX_STREAMS_PER_USER: 1 },
    auditLog: {
      write: async (entry) => {
        if (entry.action === 'events.subscribe' && failures-- > 0) throw new Error('disk full');
      },
      reopen: async () => undefined,
      close: async () => undefined,
    },
  });
  const open: ClientRequest[] = [];
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    expect((await openStream(port, READER)).status).toBe(500);
    expect((await openStream(port, READER)).status).toBe(500);
    const s = await openStream(port, READER);
    open.push(s.req);
    expect(s.status).toBe(200);
    expect((await openStream(port, READER)).status).toBe(429);
  } finally {
    for (const req of open) req.destroy();
    await app.close();
  }
});

test('closing the app does not wait for a stream whose client is not reading, and lets it go', async () => {
  // Under the bound, so the stream is still open when the app closes, with data its client has not taken.
  const { app, port } = await liveApp({ API_LIVE_MAX_UNSENT_BYTES: 512 * 1024 * 1024 });
  const slow = connect(port, '127.0.0.1');
  slow.pause();
  slow.on('error', () => undefined);
  try {
    const before = await gauge(app);
    slow.write(`GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: ${READER.authorization}\r\n\r\n`);
    await until('the slow stream to attach', async () => (await gauge(app)) === before + 1);
    // More than loopback's buffers take, so some stays in Node's.
    const uid = `1.2.${'3'.repeat(64 * 1024)}`;
    for (let sent = 0; sent < 48 * 1024 * 1024; sent += uid.length) app.live.events.emit('event', { type: 'scored', StudyInstanceUID: uid });
    const t = Date.now();
    const closed = await Promise.race([app.close().then(() => true), sleep(5000).then(() => false)]);
    expect(closed).toBe(true);
    expect(Date.now() - t).toBeLessThan(5000);
    await until('the stream to detach', () => app.live.events.listenerCount('event') === 0);
  } finally {
    slow.destroy();
    await app.close();
  }
});
