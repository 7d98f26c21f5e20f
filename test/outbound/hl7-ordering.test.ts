// HL7 ordering per RIS with two API replicas: two outbound services (two BullMQ workers on one queue, as two API
// pods run them) send to one real MLLP peer through one real Redis. A newer result version may not overtake an
// older one that is still in flight, and a version older than one the RIS acknowledged is never sent after it.
// A process killed after an ACK leaves what the RIS accepted recorded whole or not at all, and a retry of a job
// whose ACK was recorded sends nothing.
import type { Hl7Message } from '@medplum/core';
import IORedis, { type Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { createLogger } from '../../shared/logger';
import { connectRedis } from '../../shared/redis';
import type { StudyResult } from '../../shared/results';
import { loadOutboundConfig } from '../../services/api/outbound/config';
import { resultKey } from '../../services/api/outbound/idempotency';
import { createOutbound, execOutboundJob, type Outbound } from '../../services/api/outbound/outbound';
import { createHl7Adapter } from '../../services/api/outbound/adapters';
import { hl7Keys } from '../../services/api/outbound/hl7/accepted';
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

/** OBR-25, the result status: C when the message corrects a version the RIS holds. */
function resultStatusOf(message: Hl7Message): string {
  return message.getSegment('OBR')!.getField(25).toString();
}

test('a job retried after the ACK was recorded (killed before BullMQ marked it completed) sends nothing', async () => {
  const adapter = createHl7Adapter(loadOutboundConfig({ HL7_MLLP_TARGET: `127.0.0.1:${peer.port}`, HL7_ACK_TIMEOUT_MS: '5000' }).hl7!, { redis });
  try {
    const v1 = makeResult('URGENT', { resultVersion: 1 });
    const start = peer.received.length;
    await writeResult(redis, v1);
    const data = { StudyInstanceUID: v1.StudyInstanceUID, version: v1.scoredAt };
    expect((await execOutboundJob(adapter, data, redis)).status).toBe('delivered');
    // The restart: BullMQ gives the stalled job to a worker again, with the same data.
    expect(await execOutboundJob(adapter, data, redis)).toEqual({ status: 'skipped', detail: 'acknowledged' });
    expect(peer.received.length).toBe(start + 1);
  } finally {
    await adapter.close();
  }
}, 30_000);

test('a process stopped right after an ACK leaves the RIS\'s accepted version and the watermark written together or not at all', async () => {
  const config = loadOutboundConfig({ HL7_MLLP_TARGET: `127.0.0.1:${peer.port}`, HL7_ACK_TIMEOUT_MS: '5000' }).hl7!;
  const v1 = makeResult('URGENT', { resultVersion: 1 });
  const v2 = { ...v1, priority: 'STAT' as const, resultVersion: 2, scoredAt: v1.scoredAt + 5000 };
  const uid = v1.StudyInstanceUID;
  const full = createHl7Adapter(config, { redis });
  // The "crash": a connection that may read everything and write the study's keys (nt:study:*) but nothing else, so
  // a process that writes what it learnt from an ACK in two steps is stopped between them, after the first.
  await redis.call('ACL', 'SETUSER', 'crashes', 'on', '>crashes', '%R~*', '~nt:study:*', '+@all');
  const limited = new IORedis({ path: redisServer.url.slice('unix://'.length), username: 'crashes', password: 'crashes', maxRetriesPerRequest: 1 });
  const crashing = createHl7Adapter(config, { redis: limited });
  try {
    const start = peer.received.length;
    await full.queued!(v1);
    await writeResult(redis, v1);
    expect((await execOutboundJob(full, { StudyInstanceUID: uid, version: v1.scoredAt }, redis)).status).toBe('delivered');
    await writeResult(redis, v2);
    await expect(execOutboundJob(crashing, { StudyInstanceUID: uid, version: v2.scoredAt }, limited)).rejects.toThrow(/NOPERM|permission/i);
    expect(peer.received.length).toBe(start + 2);
    expect(resultStatusOf(peer.received[start + 1])).toBe('C');
    // Both still say v1 (nothing of v2's ACK written), or both v2: never one of each.
    const record = Number(await redis.get(hl7Keys.accepted(uid)));
    const watermark = Number(await redis.get(sentVersionKey('hl7', uid)));
    expect([record, watermark]).toEqual(record === 2 ? [2, v2.scoredAt] : [1, v1.scoredAt]);

    // After the restart the job runs again: when it sends v2 again, it is the same message, a correction of v1.
    await execOutboundJob(full, { StudyInstanceUID: uid, version: v2.scoredAt }, redis);
    const again = peer.received.slice(start + 2);
    for (const m of again) {
      expect(m.getSegment('MSH')!.getField(10).toString()).toBe(resultKey(v2).hl7ControlId);
      expect(resultStatusOf(m)).toBe('C');
    }
    expect(Number(await redis.get(hl7Keys.accepted(uid)))).toBe(2);
    expect(Number(await redis.get(sentVersionKey('hl7', uid)))).toBe(v2.scoredAt);
  } finally {
    limited.disconnect();
    await Promise.all([full.close(), crashing.close()]);
  }
}, 30_000);
