// The signed webhook through BullMQ against a real node:http receiver on 127.0.0.1:0: the receiver checks the
// HMAC signature the way a paging system would; 5xx, 429 and timeouts are retried, other 4xx are dead-lettered.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { createLogger } from '../../shared/logger';
import { connectRedis } from '../../shared/redis';
import { loadOutboundConfig } from '../../services/api/outbound/config';
import { resultKey } from '../../services/api/outbound/idempotency';
import { createWebhookAdapter } from '../../services/api/outbound/adapters';
import { createOutbound, execOutboundJob, type Outbound } from '../../services/api/outbound/outbound';
import { webhookKeys } from '../../services/api/outbound/webhook/sent';
import { buildWebhookPayload, postWebhook, verifyWebhook, type WebhookPayload } from '../../services/api/outbound/webhook/webhook';
import { startRedis, type TestRedis } from '../helpers/redis';
import { makeResult, writeResult } from './helpers/fixtures';
import { waitFor } from '../helpers/wait';

const SECRET = 'a-test-secret-of-some-length';

interface Received {
  body: string;
  signature?: string;
  timestamp?: string;
  delivery?: string;
  authorization?: string;
  at: number;
  valid: boolean;
}

let redisServer: TestRedis;
let redis: Redis;
let server: http.Server;
let outbound: Outbound;
let port: number;
let config: ReturnType<typeof loadOutboundConfig>;
const received: Received[] = [];
/**
 * Status to answer for the n-th request of a delivery id; "hang" never answers within the timeout; "endless" answers
 * 200 with a body that never ends (1 MiB writes, as fast as the API reads them); a promise answers when it resolves.
 */
let answer: (payload: WebhookPayload, nth: number) => number | 'hang' | 'endless' | { status: number; retryAfter: string } | Promise<number> = () => 204;

beforeAll(async () => {
  redisServer = await startRedis();
  redis = connectRedis(redisServer.url, 'worker');
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const signature = req.headers['x-neurotriage-signature'] as string | undefined;
      const timestamp = req.headers['x-neurotriage-timestamp'] as string | undefined;
      const delivery = req.headers['x-neurotriage-delivery'] as string | undefined;
      const authorization = req.headers.authorization;
      received.push({ body, signature, timestamp, delivery, authorization, at: Date.now(), valid: verifyWebhook(SECRET, { signature, timestamp }, body) });
      const payload = JSON.parse(body) as WebhookPayload;
      const nth = received.filter((r) => r.delivery === delivery).length;
      const status = answer(payload, nth);
      if (status instanceof Promise) {
        void status.then((later) => res.writeHead(later).end());
        return;
      }
      if (status === 'hang') {
        setTimeout(() => res.writeHead(204).end(), 6000).unref();
        return;
      }
      if (status === 'endless') {
        const chunk = Buffer.alloc(1024 * 1024, 0x61);
        res.writeHead(200, { 'content-type': 'text/plain' });
        const pump = () => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', pump);
        };
        pump();
        return;
      }
      if (typeof status === 'object') {
        res.writeHead(status.status, { 'retry-after': status.retryAfter }).end();
        return;
      }
      res.writeHead(status, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  ({ port } = server.address() as AddressInfo);
  config = loadOutboundConfig({
    WEBHOOK_URL: `http://127.0.0.1:${port}/hooks/neurotriage`,
    WEBHOOK_SECRET: SECRET,
    // The receiver answers in this process: an answer later than this is retried and changes the counts asserted
    // below, so it is wide enough for a loaded machine ("hang" answers well after it).
    WEBHOOK_TIMEOUT_MS: '2000',
    WEBHOOK_MIN_PRIORITY: 'URGENT',
    OUTBOUND_ATTEMPTS: '3',
    OUTBOUND_BACKOFF_MS: '50',
  });
  outbound = createOutbound(config, {
    redisUrl: redisServer.url, registry: new Registry(), logger: createLogger('outbound-test', 'silent'), dataDir: redisServer.dir, subscribe: false,
  });
  await outbound.start();
});

afterAll(async () => {
  await outbound?.close();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  redis?.disconnect();
  await redisServer?.stop();
});

async function finished(jobId: string, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await outbound.queue('webhook').getJobState(jobId);
    if (state === 'completed' || state === 'failed') return state;
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${state}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const forKey = (jobId: string): Received[] => received.filter((r) => r.delivery === jobId);

test('a STAT result is posted once, signed, with flagged findings and no patient identifiers', async () => {
  answer = () => 204;
  const result = makeResult('STAT');
  await writeResult(redis, result);
  expect(await outbound.enqueue(result)).toEqual(['webhook']);
  const key = resultKey(result);
  expect(await finished(key.jobId)).toBe('completed');
  const [r] = forKey(key.jobId);
  expect(r.valid).toBe(true);
  expect(verifyWebhook('some-other-secret-value', r, r.body)).toBe(false);
  const payload = JSON.parse(r.body) as WebhookPayload;
  expect(payload).toMatchObject({ event: 'study.scored', StudyInstanceUID: result.StudyInstanceUID, AccessionNumber: result.AccessionNumber, priority: 'STAT' });
  expect(payload.flaggedFindings.map((f) => f.queryId)).toEqual(['acute_infarct']);
  expect(Object.keys(payload)).not.toEqual(expect.arrayContaining(['PatientName']));
  expect(r.body).not.toMatch(/Patient/);
});

test('5xx and 429 are retried; the signature stays valid on every attempt', async () => {
  answer = (_p, nth) => (nth === 1 ? 503 : nth === 2 ? 429 : 200);
  const result = makeResult('URGENT');
  await writeResult(redis, result);
  await outbound.enqueue(result);
  const key = resultKey(result);
  expect(await finished(key.jobId)).toBe('completed');
  expect(forKey(key.jobId)).toHaveLength(3);
  expect(forKey(key.jobId).every((r) => r.valid)).toBe(true);
});

test('429 and 503 with Retry-After (seconds, HTTP-date) are retried no sooner than it says', async () => {
  // The backoff here is 50 ms: retried on it, a throttling receiver was hit again at once, and one asking for longer
  // than the whole backoff schedule (8 attempts, about 4 minutes by default) had its page dead-lettered.
  const inTwoSeconds = new Date(Math.ceil(Date.now() / 1000) * 1000 + 2000).toUTCString();
  answer = (_p, nth) => (nth === 1 ? { status: 429, retryAfter: '1' } : nth === 2 ? { status: 503, retryAfter: inTwoSeconds } : 204);
  const result = makeResult('STAT');
  await writeResult(redis, result);
  await outbound.enqueue(result);
  const key = resultKey(result);
  expect(await finished(key.jobId)).toBe('completed');
  const [first, second, third] = forKey(key.jobId);
  expect(third).toBeDefined();
  expect(second.at - first.at).toBeGreaterThanOrEqual(950);
  // An HTTP-date has whole seconds: the retry comes at that second or after it.
  expect(third.at).toBeGreaterThanOrEqual(Date.parse(inTwoSeconds));
});

test('a receiver slower than WEBHOOK_TIMEOUT_MS is retried', async () => {
  answer = (_p, nth) => (nth === 1 ? 'hang' : 204);
  const result = makeResult('STAT');
  await writeResult(redis, result);
  await outbound.enqueue(result);
  const key = resultKey(result);
  expect(await finished(key.jobId)).toBe('completed');
  expect(forKey(key.jobId)).toHaveLength(2);
});

test('4xx (other than 408/429) is permanent: one attempt, dead-lettered', async () => {
  answer = () => 400;
  const result = makeResult('STAT');
  await writeResult(redis, result);
  await outbound.enqueue(result);
  const key = resultKey(result);
  expect(await finished(key.jobId)).toBe('failed');
  expect(forKey(key.jobId)).toHaveLength(1);
  const dead = await outbound.deadLetterQueue('webhook').getJob(key.jobId);
  expect(dead?.data).toMatchObject({ adapter: 'webhook', reason: 'http-400', permanent: true, attemptsMade: 1 });
});

test('a receiver answering 200 with an endless body: delivered once, its body not held in memory', async () => {
  // Read whole, the body grew the API by hundreds of MB until WEBHOOK_TIMEOUT_MS; a large enough one ended the process.
  answer = () => 'endless';
  const result = makeResult('STAT');
  await writeResult(redis, result);
  const before = process.memoryUsage().rss;
  let peak = 0;
  const sample = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss - before);
  }, 20);
  try {
    await outbound.enqueue(result);
    const key = resultKey(result);
    expect(await finished(key.jobId)).toBe('completed');
    expect(forKey(key.jobId)).toHaveLength(1);
  } finally {
    clearInterval(sample);
  }
  expect(peak).toBeLessThan(64 * 1024 * 1024);
});

test('ROUTINE is below WEBHOOK_MIN_PRIORITY=URGENT and is not posted', async () => {
  const result = makeResult('ROUTINE');
  await writeResult(redis, result);
  expect(await outbound.enqueue(result)).toEqual([]);
});

test('a WEBHOOK_URL with user:password@ is posted with Basic authorization, the credentials not in the URL', async () => {
  // Node's fetch refuses a URL with credentials: every attempt failed as "webhook request failed (error)" until the
  // delivery was dead-lettered, though the setting was accepted at start.
  answer = () => 204;
  const webhook = loadOutboundConfig({ WEBHOOK_URL: `http://pager:p%40ss%3Aw0rd@127.0.0.1:${port}/hooks/neurotriage`, WEBHOOK_SECRET: SECRET }).webhook!;
  expect(webhook.url.href).toBe(`http://127.0.0.1:${port}/hooks/neurotriage`);
  const payload = buildWebhookPayload(makeResult('STAT'), 'basic-auth-delivery');
  expect(await postWebhook(webhook, payload)).toBe(204);
  const [r] = forKey('basic-auth-delivery');
  expect(r.authorization).toBe(`Basic ${Buffer.from('pager:p@ss:w0rd').toString('base64')}`);
  expect(r.valid).toBe(true);
});

test('a kept-alive connection the receiver dropped under the next request: sent again at once on a new one, not after a backoff', async () => {
  // The receiver closes the connection the second request arrives on (its idle timeout racing the request): that
  // request failed as a network error and waited out a backoff of seconds, with a failure counted.
  const sockets = new Map<object, number>();
  const seen: string[] = [];
  const dropping = http.createServer((req, res) => {
    const n = (sockets.get(req.socket) ?? 0) + 1;
    sockets.set(req.socket, n);
    seen.push(req.headers['x-neurotriage-delivery'] as string);
    req.resume();
    if (seen.length === 2) return void req.socket.destroy();
    req.on('end', () => res.writeHead(204).end());
  });
  await new Promise<void>((r) => dropping.listen(0, '127.0.0.1', r));
  try {
    const webhook = loadOutboundConfig({ WEBHOOK_URL: `http://127.0.0.1:${(dropping.address() as AddressInfo).port}/hook`, WEBHOOK_SECRET: SECRET }).webhook!;
    expect(await postWebhook(webhook, buildWebhookPayload(makeResult('STAT'), 'keep-alive-1'))).toBe(204);
    const t0 = Date.now();
    expect(await postWebhook(webhook, buildWebhookPayload(makeResult('STAT'), 'keep-alive-2'))).toBe(204);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(seen).toEqual(['keep-alive-1', 'keep-alive-2', 'keep-alive-2']);
    // The first two came on one kept-alive connection; the repeat on a new one.
    expect([...sockets.values()]).toEqual([2, 1]);
  } finally {
    dropping.closeAllConnections();
    await new Promise((r) => dropping.close(r));
  }
});

/** Result versions of one study, as the worker writes them on each re-score: same UID, next version, later scoredAt. */
function versionsOf(...priorities: Array<'STAT' | 'URGENT' | 'ROUTINE'>): ReturnType<typeof makeResult>[] {
  const first = makeResult(priorities[0], { resultVersion: 1 });
  return priorities.map((p, i) => (i === 0 ? first : makeResult(p, {
    StudyInstanceUID: first.StudyInstanceUID, AccessionNumber: first.AccessionNumber, resultVersion: i + 1, scoredAt: first.scoredAt + i * 1000,
  })));
}

/** Writes the version, enqueues it as the API does on the scored event, waits for its job; the payload posted, if any. */
async function score(result: ReturnType<typeof makeResult>): Promise<WebhookPayload | undefined> {
  await writeResult(redis, result);
  const queued = await outbound.enqueue(result);
  if (queued.length === 0) return undefined;
  const key = resultKey(result);
  expect(await finished(key.jobId)).toBe('completed');
  const [r] = forKey(key.jobId);
  return r && (JSON.parse(r.body) as WebhookPayload);
}

test('corrects names only a version the receiver was sent: none when the earlier ones were below WEBHOOK_MIN_PRIORITY', async () => {
  // v1 ROUTINE was never posted (below URGENT), yet v2 said it corrected v1: a receiver that looks v1 up finds nothing.
  answer = () => 204;
  const [v1, v2, v3] = versionsOf('ROUTINE', 'STAT', 'URGENT');
  expect(await score(v1)).toBeUndefined();
  expect(await score(v2)).toMatchObject({ priority: 'STAT', resultVersion: 2, corrects: null });
  expect(await score(v3)).toMatchObject({ priority: 'URGENT', resultVersion: 3, corrects: 2 });
});

test('a sent study downgraded below WEBHOOK_MIN_PRIORITY is posted as a correction (the withdrawal); one never sent stays unsent', async () => {
  // The pager that got the STAT alert never heard that the next version withdrew it: ROUTINE was below URGENT.
  answer = () => 204;
  const [v1, v2, v3, v4] = versionsOf('STAT', 'ROUTINE', 'ROUTINE', 'URGENT');
  expect(await score(v1)).toMatchObject({ priority: 'STAT', resultVersion: 1, corrects: null });
  expect(await score(v2)).toMatchObject({ priority: 'ROUTINE', resultVersion: 2, corrects: 1 });
  // The receiver already holds ROUTINE for it: nothing to withdraw.
  expect(await score(v3)).toBeUndefined();
  expect(await score(v4)).toMatchObject({ priority: 'URGENT', resultVersion: 4, corrects: 2 });
  const [never, stillBelow] = versionsOf('ROUTINE', 'ROUTINE');
  expect(await score(never)).toBeUndefined();
  expect(await score(stillBelow)).toBeUndefined();
});

test('a withdrawal the receiver refused (dead-lettered) is tried again by the next version below the minimum', async () => {
  // The pager still holds the STAT alert: the refused withdrawal is not recorded as sent, so the next ROUTINE
  // version withdraws it again, correcting the STAT version, the last one the receiver took.
  const [v1, v2, v3] = versionsOf('STAT', 'ROUTINE', 'ROUTINE');
  answer = () => 204;
  expect(await score(v1)).toMatchObject({ priority: 'STAT', resultVersion: 1, corrects: null });
  answer = () => 400;
  await writeResult(redis, v2);
  expect(await outbound.enqueue(v2)).toHaveLength(1);
  expect(await finished(resultKey(v2).jobId)).toBe('failed');
  expect(await outbound.deadLetterQueue('webhook').getJob(resultKey(v2).jobId)).toBeDefined();
  answer = () => 204;
  expect(await score(v3)).toMatchObject({ priority: 'ROUTINE', resultVersion: 3, corrects: 1 });
});

test('a downgrade scored while the alert it withdraws is still in flight is posted once that alert is answered', async () => {
  // v2 was judged against the record of what the receiver had while v1 was still being posted (not yet answered),
  // found nothing sent at or above the minimum and was never queued: the STAT page arrived, its withdrawal never.
  let release!: (status: number) => void;
  const held = new Promise<number>((r) => (release = r));
  answer = (p) => (p.resultVersion === 1 ? held : 204);
  const [v1, v2] = versionsOf('STAT', 'ROUTINE');
  await writeResult(redis, v1);
  await outbound.enqueue(v1, 'trace-of-v1');
  await waitFor('v1 at the receiver', () => forKey(resultKey(v1).jobId).length === 1, 5000);
  await writeResult(redis, v2);
  await outbound.enqueue(v2);
  release(204);
  expect(await finished(resultKey(v1).jobId)).toBe('completed');
  await waitFor('v2 at the receiver', () => forKey(resultKey(v2).jobId).length === 1, 5000);
  expect(JSON.parse(forKey(resultKey(v2).jobId)[0].body)).toMatchObject({ priority: 'ROUTINE', resultVersion: 2, corrects: 1 });
  // v2's job has a trace id of its own, as a job queued by a rescore has: it carried v1's, one trace for two deliveries.
  const traceId = (await outbound.queue('webhook').getJob(resultKey(v2).jobId))?.data.traceId;
  expect(traceId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
});

test('a downgrade judged again once the alert in flight is answered is queued under its own scoring job\'s trace id', async () => {
  // rejudgeNewer takes the newer version's trace id from its result (a fresh one only for a result without one).
  let release!: (status: number) => void;
  const held = new Promise<number>((r) => (release = r));
  answer = (p) => (p.resultVersion === 1 ? held : 204);
  const [v1, plain] = versionsOf('STAT', 'ROUTINE');
  const v2 = { ...plain, traceId: 'trace-of-v2' };
  await writeResult(redis, v1);
  await outbound.enqueue(v1, 'trace-of-v1');
  await waitFor('v1 at the receiver', () => forKey(resultKey(v1).jobId).length === 1, 5000);
  await writeResult(redis, v2);
  expect(await outbound.enqueue(v2)).toEqual([]);
  release(204);
  expect(await finished(resultKey(v1).jobId)).toBe('completed');
  await waitFor('v2 at the receiver', () => forKey(resultKey(v2).jobId).length === 1, 5000);
  expect((await outbound.queue('webhook').getJob(resultKey(v2).jobId))?.data.traceId).toBe('trace-of-v2');
});

test('a study queued from its scored event is delivered under the trace id of the job that scored it', async () => {
  // The scored event names only the study; its deliveries were logged with no trace id, so an administrator could
  // not follow a study from its DICOM association to its page.
  answer = () => 204;
  const result = { ...makeResult('STAT'), traceId: 'trace-of-the-scoring-job' };
  await writeResult(redis, result);
  expect(await outbound.enqueueStudy(result.StudyInstanceUID)).toBe(true);
  expect(await finished(resultKey(result).jobId)).toBe('completed');
  expect((await outbound.queue('webhook').getJob(resultKey(result).jobId))?.data.traceId).toBe('trace-of-the-scoring-job');
});

test('one delivery reads the record of what the receiver was sent once, a withdrawal below the minimum too', async () => {
  // The withdrawal was judged (skipReason) from one read of the record and its corrects taken (deliver) from another.
  answer = () => 204;
  const [v1, v2, v3] = versionsOf('STAT', 'ROUTINE', 'ROUTINE');
  expect(await score(v1)).toMatchObject({ priority: 'STAT', resultVersion: 1 });
  const adapter = createWebhookAdapter(config.webhook!, { redis });
  const reads = jest.spyOn(redis, 'hgetall');
  const run = async (result: ReturnType<typeof makeResult>) => {
    await writeResult(redis, result);
    reads.mockClear();
    const { StudyInstanceUID, version } = resultKey(result);
    const outcome = await execOutboundJob(adapter, { StudyInstanceUID, version }, redis);
    expect(reads.mock.calls.filter(([key]) => key === webhookKeys.sent(StudyInstanceUID))).toHaveLength(1);
    return outcome;
  };
  try {
    expect(await run(v2)).toMatchObject({ status: 'delivered' });
    expect(JSON.parse(forKey(resultKey(v2).jobId)[0].body)).toMatchObject({ priority: 'ROUTINE', resultVersion: 2, corrects: 1 });
    // The receiver holds ROUTINE now: the next one below the minimum is still not sent.
    expect(await run(v3)).toEqual({ status: 'skipped', detail: 'below-min-priority' });
    expect(forKey(resultKey(v3).jobId)).toHaveLength(0);
  } finally {
    reads.mockRestore();
  }
});
