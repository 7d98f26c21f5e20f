// HL7 ordering per RIS with two API replicas: two outbound services (two BullMQ workers on one queue, as two API
// pods run them) send to one real MLLP peer through one real Redis. A newer result version may not overtake an
// older one that is still in flight, and a version older than one the RIS acknowledged is never sent after it.
import type { Hl7Message } from '@medplum/core';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { createLogger } from '../../shared/logger';
import { connectRedis } from '../../shared/redis';
import type { StudyResult } from '../../shared/results';
import { loadOutboundConfig } from '../../services/api/outbound/config';
import { resultKey } from '../../services/api/outbound/idempotency';
import { createOutbound, type Outbound } from '../../services/api/outbound/outbound';
import { sentVersionKey } from '../../services/api/outbound/idempotency';
import { startRedis, type TestRedis } from '../helpers/redis';
import { makeResult, writeResult } from './helpers/fixtures';
import { startMllpPeer, type MllpPeer } from './helpers/mllp-peer';
import { waitFor } from '../helpers/wait';

let redisServer: TestRedis;
let redis: Redis;
let peer: MllpPeer;
let replicas: Outbound[] = [];
const registries = [new Registry(), new Registry()];

beforeAll(async () => {
  redisServer = await startRedis();
  redis = connectRedis(redisServer.url, 'worker');
  peer = await startMllpPeer();
  const config = loadOutboundConfig({
    HL7_MLLP_TARGET: `127.0.0.1:${peer.port}`,
    HL7_ACK_TIMEOUT_MS: '20000',
    OUTBOUND_ATTEMPTS: '5',
    OUTBOUND_BACKOFF_MS: '300',
    OUTBOUND_CATCHUP_MINUTES: '0',
  });
  replicas = registries.map((registry, i) =>
    createOutbound(config, { redisUrl: redisServer.url, registry, logger: createLogger(`api-${i}`, 'silent'), dataDir: redisServer.dir, subscribe: false }),
  );
  await Promise.all(replicas.map((r) => r.start()));
});

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.close()));
  await peer?.close();
  redis?.disconnect();
  await redisServer?.stop();
});

beforeEach(() => {
  peer.reply = () => 'AA';
  peer.maxUnanswered = peer.unanswered;
});

/** The result version an HL7 message carries: its MSH-10 control id is derived from (study, version). */
function versionOf(message: Hl7Message, versions: StudyResult[]): number {
  const id = message.getSegment('MSH')!.getField(10).toString();
  const hit = versions.find((v) => resultKey(v).hl7ControlId === id);
  if (!hit) throw new Error(`message ${id} is none of this test's versions`);
  return hit.scoredAt;
}

async function jobState(adapterQueue: Outbound, jobId: string): Promise<string> {
  return adapterQueue.queue('hl7').getJobState(jobId);
}

async function skipped(reason: string): Promise<number> {
  let n = 0;
  for (const r of registries) {
    const m = await r.getSingleMetric('neurotriage_outbound_skipped_total')!.get();
    n += m.values.filter((v) => v.labels.adapter === 'hl7' && v.labels.reason === reason).reduce((a, v) => a + v.value, 0);
  }
  return n;
}

test('a newer version waits while an older one is in flight on the other replica, then follows it', async () => {
  const v1 = makeResult('URGENT');
  const v2 = { ...v1, priority: 'STAT' as const, scoredAt: v1.scoredAt + 5000 };
  const start = peer.received.length;
  let ack!: () => void;
  const held = new Promise<'AA'>((resolve) => (ack = () => resolve('AA')));
  peer.reply = (_m, index) => (index === start ? held : 'AA');

  await writeResult(redis, v1);
  await replicas[0].enqueue(v1);
  await peer.waitFor(start + 1);
  // The worker re-scored the study while the RIS still holds v1: v2 is written and queued on the other replica.
  await writeResult(redis, v2);
  await replicas[1].enqueue(v2);
  await waitFor('v2 to be queued', async () => (await jobState(replicas[1], resultKey(v2).jobId)) === 'waiting');
  // Both replicas' workers are idle but for v1: give either the chance to take v2 (it must not).
  await new Promise((r) => setTimeout(r, 1500));
  expect(peer.received.length).toBe(start + 1);
  expect(await jobState(replicas[1], resultKey(v2).jobId)).toBe('waiting');

  ack();
  await peer.waitFor(start + 2);
  await waitFor('v2 to complete', async () => (await jobState(replicas[0], resultKey(v2).jobId)) === 'completed');
  expect(peer.received.slice(start).map((m) => versionOf(m, [v1, v2]))).toEqual([v1.scoredAt, v2.scoredAt]);
  expect(peer.maxUnanswered).toBe(1);
  expect(Number(await redis.get(sentVersionKey('hl7', v1.StudyInstanceUID)))).toBe(v2.scoredAt);
}, 60_000);

test('an older version is never sent after the RIS acknowledged a newer one', async () => {
  const v1 = makeResult('ROUTINE');
  const v2 = { ...v1, priority: 'URGENT' as const, scoredAt: v1.scoredAt + 5000 };
  const start = peer.received.length;
  await writeResult(redis, v2);
  await replicas[0].enqueue(v2);
  await waitFor('v2 to complete', async () => (await jobState(replicas[0], resultKey(v2).jobId)) === 'completed');
  const before = await skipped('superseded');

  // A stale writer puts the older result back (a worker that resumed after its job was retried elsewhere) and it
  // is queued again: the watermark of what the RIS acknowledged stops it.
  await writeResult(redis, v1);
  await replicas[1].enqueue(v1);
  await waitFor('v1 to end', async () => (await jobState(replicas[1], resultKey(v1).jobId)) === 'completed');
  expect(peer.received.slice(start).map((m) => versionOf(m, [v1, v2]))).toEqual([v2.scoredAt]);
  expect(await skipped('superseded')).toBe(before + 1);
  const ttl = await redis.pttl(sentVersionKey('hl7', v1.StudyInstanceUID));
  expect(ttl).toBeGreaterThan(7 * 24 * 3600 * 1000);
}, 60_000);

test('an older version the RIS refused (AE) is not retried once a newer one went out', async () => {
  const v1 = makeResult('URGENT');
  const v2 = { ...v1, priority: 'STAT' as const, scoredAt: v1.scoredAt + 5000 };
  const start = peer.received.length;
  let answered!: () => void;
  const refusedOnce = new Promise<void>((resolve) => (answered = resolve));
  peer.reply = (_m, index) => {
    if (index !== start) return 'AA';
    answered();
    return 'AE';
  };
  await writeResult(redis, v1);
  await replicas[0].enqueue(v1);
  await refusedOnce;
  await writeResult(redis, v2);
  await replicas[1].enqueue(v2);
  await waitFor('both jobs to end', async () =>
    (await jobState(replicas[0], resultKey(v1).jobId)) === 'completed' && (await jobState(replicas[0], resultKey(v2).jobId)) === 'completed');
  const order = peer.received.slice(start).map((m) => versionOf(m, [v1, v2]));
  expect(order[0]).toBe(v1.scoredAt);
  expect(order[order.length - 1]).toBe(v2.scoredAt);
  expect(order.lastIndexOf(v1.scoredAt)).toBeLessThan(order.indexOf(v2.scoredAt));
}, 60_000);
