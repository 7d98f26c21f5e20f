// The live worklist through a real nginx in front of the API, as hospitals deploy it (ingress-nginx, or nginx on a
// VM), with nginx's defaults: proxy_buffering on with HTTP/1.0 to the upstream held the whole response, status line
// included, until its buffers filled, so no event reached the page unless the API answers X-Accel-Buffering: no;
// HTTP/1.1 to the upstream too; and a stream with no study changes kept open past nginx's proxy_read_timeout by
// the API's heartbeats (both shortened here from nginx's 60 s and the API's 15 s).
import type { AddressInfo } from 'node:net';
import { request, type ClientRequest } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { resultKeys } from '../../shared/results';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { startNginx, type TestNginx } from '../helpers/nginx';
import { waitFor } from '../helpers/wait';
import { READER, testDeps } from './helpers';
import { build } from '../../services/api/app';

let redis: Redis;
let app: FastifyInstance;
let upstream: string;
let nginx: TestNginx | undefined;
let stream: ClientRequest | undefined;

const UID = '1.2.826.0.1.3680043.10.79.700';
const HEARTBEAT_MS = 500;

beforeAll(async () => {
  redis = await startRedisClient('producer');
  app = await build({ ...testDeps(redis), liveHeartbeatMs: HEARTBEAT_MS });
  await app.listen({ host: '127.0.0.1', port: 0 });
  upstream = `127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  stream?.destroy();
  stream = undefined;
  await nginx?.stop();
  nginx = undefined;
});

afterAll(() => stopRedisClient(redis, app));

/** GET /api/v1/events through `url`, as the page asks for it: what has arrived so far, and whether it ended. */
function openStream(url: string): { text: () => string; ended: () => boolean } {
  let text = '';
  let ended = false;
  stream = request(`${url}/api/v1/events`, { headers: { ...READER, accept: 'text/event-stream' } }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (d: string) => (text += d));
    res.on('close', () => (ended = true));
    res.on('error', () => (ended = true));
  });
  stream.on('error', () => (ended = true));
  stream.end();
  return { text: () => text, ended: () => ended };
}

const SCORED = `event: scored\ndata: ${JSON.stringify({ type: 'scored', StudyInstanceUID: UID })}\n\n`;

test.each([
  ['HTTP/1.0 (nginx default)', []],
  ['HTTP/1.1', ['proxy_http_version 1.1;', 'proxy_set_header Connection "";']],
])('through nginx with proxy buffering on, upstream %s: the stream opens and a result\'s event arrives at once', async (_name, directives) => {
  nginx = await startNginx(upstream, directives);
  const s = openStream(nginx.url);
  // Buffered, nginx sent nothing at all, not even the status line, for as long as the test waited.
  await waitFor('the stream to open through nginx', () => s.text().includes(': connected\n\n'), 3_000);
  const published = Date.now();
  await redis.publish(resultKeys.scoredChannel(), UID);
  await waitFor('the scored event through nginx', () => s.text().includes(SCORED), 2_000);
  expect(Date.now() - published).toBeLessThan(1_000);
});

test('a stream with no study changes outlives nginx\'s proxy_read_timeout, its heartbeats passing through', async () => {
  nginx = await startNginx(upstream, ['proxy_read_timeout 2s;']);
  const s = openStream(nginx.url);
  await waitFor('the stream to open through nginx', () => s.text().includes(': connected\n\n'), 3_000);
  // Two and a half read timeouts with nothing but heartbeats.
  await new Promise((r) => setTimeout(r, 5_000));
  expect(s.ended()).toBe(false);
  expect(s.text().split(': keep-alive\n\n').length - 1).toBeGreaterThanOrEqual(5);
  expect(nginx.errorLog()).not.toMatch(/upstream timed out/);
  await redis.publish(resultKeys.scoredChannel(), UID);
  await waitFor('the scored event after the idle time', () => s.text().includes(SCORED), 2_000);
});
