// HL7 v2.5.1 over MLLP end to end through BullMQ: real Redis, a real MLLP peer parsing with @medplum/hl7 and
// answering AA / AE / AR / nothing. Asserts the priority fields (TQ1-9, ORC-7, OBR-27 per table 0485), the OBX
// findings, the control id, retries on AE and on ACK timeout, and the dead letter on AR.
import type { Hl7Message } from '@medplum/core';
import { Registry } from 'prom-client';
import { createLogger } from '../../shared/logger';
import { connectRedis } from '../../shared/redis';
import type { Redis } from 'ioredis';
import { createOutbound, DELIVER_JOB, type Outbound } from '../../services/api/outbound/outbound';
import { sentVersionKey } from '../../services/api/outbound/idempotency';
import { loadOutboundConfig } from '../../services/api/outbound/config';
import { resultKey } from '../../services/api/outbound/idempotency';
import { resultKeys, worklistScore } from '../../shared/results';
import { startRedis, type TestRedis } from '../helpers/redis';
import { makeResult, storeMrInstance, writeResult } from './helpers/fixtures';
import { startMllpPeer, type MllpPeer } from './helpers/mllp-peer';

let redisServer: TestRedis;
let redis: Redis;
let peer: MllpPeer;
let outbound: Outbound;
let registry: Registry;
/** Scored while no outbound service ran: start() must catch it up. */
const missed = makeResult('STAT');

beforeAll(async () => {
  redisServer = await startRedis();
  redis = connectRedis(redisServer.url, 'worker');
  peer = await startMllpPeer();
  registry = new Registry();
  const config = loadOutboundConfig({
    HL7_MLLP_TARGET: `127.0.0.1:${peer.port}`,
    // The peer answers in this process: an ACK later than this is retried and changes the counts asserted below, so
    // it is wide enough for a loaded machine (the no-ACK test waits it out once).
    HL7_ACK_TIMEOUT_MS: '2000',
    HL7_CONNECT_TIMEOUT_MS: '1000',
    OUTBOUND_ATTEMPTS: '3',
    OUTBOUND_BACKOFF_MS: '50',
  });
  await writeResult(redis, missed);
  await redis.zadd(resultKeys.worklist(), worklistScore(missed.priority, missed.receivedAt), missed.StudyInstanceUID);
  outbound = createOutbound(config, {
    redisUrl: redisServer.url, registry, logger: createLogger('outbound-test', 'silent'), dataDir: redisServer.dir,
  });
  await outbound.start();
});

afterAll(async () => {
  await outbound?.close();
  await peer?.close();
  redis?.disconnect();
  await redisServer?.stop();
});

beforeEach(() => {
  peer.reply = () => 'AA';
});

async function finished(jobId: string, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await outbound.queue('hl7').getJobState(jobId);
    if (state === 'completed' || state === 'failed') return state;
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${state}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function messagesFor(controlId: string): Hl7Message[] {
  return peer.received.filter((m) => m.getSegment('MSH')?.getField(10).toString() === controlId);
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const m = await registry.getSingleMetric(name)!.get();
  return m.values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((a, v) => a + v.value, 0);
}

test('STAT, URGENT and ROUTINE go out as OMI^O23 with S, A, R in TQ1-9, ORC-7 and OBR-27, findings as OBX', async () => {
  const expected = { STAT: 'S', URGENT: 'A', ROUTINE: 'R' } as const;
  for (const priority of ['STAT', 'URGENT', 'ROUTINE'] as const) {
    const result = makeResult(priority);
    await writeResult(redis, result);
    expect(await outbound.enqueue(result)).toEqual(['hl7']);
    const key = resultKey(result);
    expect(await finished(key.jobId)).toBe('completed');

    const [m] = messagesFor(key.hl7ControlId);
    expect(m).toBeDefined();
    expect(m.getSegment('MSH')!.getField(9).toString()).toBe('OMI^O23^OMI_O23');
    expect(m.getSegment('MSH')!.getField(12).toString()).toBe('2.5.1');
    expect(m.getSegment('ORC')!.getField(1).toString()).toBe('XO');
    expect(m.getSegment('TQ1')!.getComponent(9, 1)).toBe(expected[priority]);
    expect(m.getSegment('ORC')!.getComponent(7, 6)).toBe(expected[priority]);
    expect(m.getSegment('OBR')!.getComponent(27, 6)).toBe(expected[priority]);
    expect(m.getSegment('IPC')!.getField(1).toString()).toBe(result.AccessionNumber);
    expect(m.getSegment('IPC')!.getField(3).toString()).toBe(result.StudyInstanceUID);
    // No patient identity travels: no PID segment at all.
    expect(m.getSegment('PID')).toBeUndefined();

    const obx = m.getAllSegments('OBX');
    const byId = (id: string, sub: string) => obx.find((s) => s.getComponent(3, 1) === id && s.getField(4).toString() === sub);
    expect(byId('TRIAGE_PRIORITY', '0')!.getComponent(5, 1)).toBe(expected[priority]);
    expect(byId('QUERY', '1')!.getComponent(5, 1)).toBe('acute_infarct');
    expect(Number(byId('SIMILARITY', '1')!.getField(5).toString())).toBeCloseTo(result.findings[0].similarity, 4);
    expect(Number(byId('PROBABILITY', '1')!.getField(5).toString())).toBeCloseTo(result.findings[0].probability!, 4);
    expect(byId('FLAGGED', '1')!.getComponent(5, 1)).toBe(result.findings[0].flagged ? 'Y' : 'N');
    // The second query's probability row too; its "|" arrives escaped and unescaped intact.
    expect(Number(byId('PROBABILITY', '2')!.getField(5).toString())).toBeCloseTo(result.findings[1].probability!, 4);
    expect(byId('QUERY', '2')!.getField(5).toString()).toContain('\\F\\');
    obx.forEach((s, i) => expect(s.getField(1).toString()).toBe(String(i + 1)));
  }
  expect(await metric('neurotriage_outbound_sent_total', { adapter: 'hl7' })).toBeGreaterThanOrEqual(3);
  // One persistent connection carried all three.
  expect(peer.connections).toBe(1);
});

test('AE is retried with the same control id until AA', async () => {
  const result = makeResult('STAT');
  const key = resultKey(result);
  let errors = 0;
  peer.reply = (m) => (m.getSegment('MSH')!.getField(10).toString() === key.hl7ControlId && errors++ < 1 ? 'AE' : 'AA');
  await writeResult(redis, result);
  await outbound.enqueue(result);
  expect(await finished(key.jobId)).toBe('completed');
  expect(messagesFor(key.hl7ControlId)).toHaveLength(2);
  expect(await metric('neurotriage_outbound_failed_total', { adapter: 'hl7', reason: 'ack-AE', permanent: 'false' })).toBeGreaterThanOrEqual(1);
});

test('no ACK within HL7_ACK_TIMEOUT_MS is retried on a fresh connection', async () => {
  const result = makeResult('URGENT');
  const key = resultKey(result);
  let silent = 0;
  peer.reply = (m) => (m.getSegment('MSH')!.getField(10).toString() === key.hl7ControlId && silent++ < 1 ? 'none' : 'AA');
  const connectionsBefore = peer.connections;
  await writeResult(redis, result);
  await outbound.enqueue(result);
  expect(await finished(key.jobId)).toBe('completed');
  expect(messagesFor(key.hl7ControlId)).toHaveLength(2);
  expect(peer.connections).toBe(connectionsBefore + 1);
  expect(await metric('neurotriage_outbound_failed_total', { adapter: 'hl7', reason: 'ack-timeout' })).toBeGreaterThanOrEqual(1);
});

test('AR is permanent: one attempt, then a dead-letter copy with the reason and no message body', async () => {
  const result = makeResult('STAT');
  const key = resultKey(result);
  peer.reply = () => 'AR';
  await writeResult(redis, result);
  await outbound.enqueue(result);
  expect(await finished(key.jobId)).toBe('failed');
  expect(messagesFor(key.hl7ControlId)).toHaveLength(1);
  const dead = await outbound.deadLetterQueue('hl7').getJob(key.jobId);
  expect(dead?.data).toMatchObject({ adapter: 'hl7', reason: 'ack-AR', permanent: true, attemptsMade: 1, StudyInstanceUID: result.StudyInstanceUID });
  expect(JSON.stringify(dead?.data)).not.toContain('MSH');
  // Counted under the refusal itself, so the dashboard says the RIS refused rather than that it was unreachable.
  expect(await metric('neurotriage_outbound_dead_lettered_total', { adapter: 'hl7', reason: 'ack-AR' })).toBeGreaterThanOrEqual(1);
});

test('an AR whose ERR-3 holds the RIS\'s words (a patient id) instead of a code: no ERR-3 text in the dead letter or the error', async () => {
  const result = makeResult('STAT');
  const key = resultKey(result);
  peer.reply = () => ({ code: 'AR', err: 'ERR||PID^1^3|MRN CANARY-4711 not on file^Patient unknown^L|E' });
  await writeResult(redis, result);
  await outbound.enqueue(result);
  expect(await finished(key.jobId)).toBe('failed');
  const dead = await outbound.deadLetterQueue('hl7').getJob(key.jobId);
  expect(dead?.data).toMatchObject({ reason: 'ack-AR', permanent: true });
  expect(JSON.stringify(dead?.data)).not.toContain('CANARY');
  expect((await outbound.queue('hl7').getJob(key.jobId))?.failedReason).not.toContain('CANARY');
  // A code is still named.
  const coded = makeResult('STAT');
  peer.reply = () => ({ code: 'AR', err: 'ERR||MSH^1^10|103^Table value not found^HL70357|E' });
  await writeResult(redis, coded);
  await outbound.enqueue(coded);
  expect(await finished(resultKey(coded).jobId)).toBe('failed');
  expect((await outbound.deadLetterQueue('hl7').getJob(resultKey(coded).jobId))?.data.error).toBe('RIS answered AR (ERR-3 103)');
});

test('AE on every attempt ends in the dead letter after OUTBOUND_ATTEMPTS', async () => {
  const result = makeResult('ROUTINE');
  const key = resultKey(result);
  peer.reply = () => 'AE';
  await writeResult(redis, result);
  await outbound.enqueue(result);
  expect(await finished(key.jobId)).toBe('failed');
  expect(messagesFor(key.hl7ControlId)).toHaveLength(3);
  const dead = await outbound.deadLetterQueue('hl7').getJob(key.jobId);
  expect(dead?.data).toMatchObject({ reason: 'ack-AE', permanent: false, attemptsMade: 3 });
  // The metric says retries ran out; the last failure's code (ack-AE) is in the copy and in failed_total.
  expect(await metric('neurotriage_outbound_dead_lettered_total', { adapter: 'hl7', reason: 'retries-exhausted' })).toBeGreaterThanOrEqual(1);
});

test('catch-up at start retries a delivery that used all its attempts, once the RIS answers again; an AR stays dead-lettered', async () => {
  // The RIS was down longer than the backoff: restarting the API after the outage must deliver the window again,
  // not skip it because the version's failed job still holds its id.
  const down = makeResult('STAT');
  const refused = makeResult('URGENT');
  const [downKey, refusedKey] = [resultKey(down), resultKey(refused)];
  peer.reply = (m) => (m.getSegment('MSH')!.getField(10).toString() === refusedKey.hl7ControlId ? 'AR' : 'AE');
  for (const r of [down, refused]) {
    await writeResult(redis, r);
    await redis.zadd(resultKeys.recent(), r.scoredAt, r.StudyInstanceUID);
    await outbound.enqueue(r);
    expect(await finished(resultKey(r).jobId)).toBe('failed');
  }
  expect(messagesFor(downKey.hl7ControlId)).toHaveLength(3);
  peer.reply = () => 'AA';
  await outbound.catchUp(60);
  expect(await finished(downKey.jobId)).toBe('completed');
  expect(messagesFor(downKey.hl7ControlId)).toHaveLength(4);
  expect(await outbound.deadLetterQueue('hl7').getJob(downKey.jobId)).toBeUndefined();
  // The RIS refused this one for its content: sending it again would get the same answer.
  expect(await outbound.queue('hl7').getJobState(refusedKey.jobId)).toBe('failed');
  expect(messagesFor(refusedKey.hl7ControlId)).toHaveLength(1);
  expect((await outbound.deadLetterQueue('hl7').getJob(refusedKey.jobId))?.data).toMatchObject({ reason: 'ack-AR', permanent: true });
  await redis.zrem(resultKeys.recent(), down.StudyInstanceUID, refused.StudyInstanceUID); // the window test below counts
});

test('a duplicate enqueue of the same result version sends nothing more; a newer version supersedes the old job', async () => {
  const result = makeResult('STAT');
  const key = resultKey(result);
  await writeResult(redis, result);
  await outbound.enqueue(result);
  await outbound.enqueue(result);
  expect(await finished(key.jobId)).toBe('completed');
  await outbound.enqueue(result);
  await new Promise((r) => setTimeout(r, 200));
  expect(messagesFor(key.hl7ControlId)).toHaveLength(1);

  // Re-scored: the stored result is newer than the job's version, so the old job sends nothing.
  const stale = { ...result, scoredAt: result.scoredAt - 5000 };
  await outbound.enqueue(stale);
  expect(await finished(resultKey(stale).jobId)).toBe('completed');
  expect(messagesFor(resultKey(stale).hl7ControlId)).toHaveLength(0);
});

test('a result published on the scored channel is picked up and sent', async () => {
  const result = makeResult('URGENT');
  const key = resultKey(result);
  await writeResult(redis, result, true);
  expect(await finished(key.jobId)).toBe('completed');
  expect(messagesFor(key.hl7ControlId)).toHaveLength(1);
});

test('a result scored while no outbound service ran is caught up at start', async () => {
  const key = resultKey(missed);
  expect(await finished(key.jobId)).toBe('completed');
  expect(messagesFor(key.hl7ControlId)).toHaveLength(1);
  // Catching up again is a no-op: the delivered version's job is still there.
  expect(await outbound.catchUp(60)).toBeGreaterThanOrEqual(1);
  await new Promise((r) => setTimeout(r, 100));
  expect(messagesFor(key.hl7ControlId)).toHaveLength(1);
});

test('a result without an accession number takes it from the stored instances; with none at all nothing is sent', async () => {
  // The listener stored the study; the result (as the worker wrote it) has no AccessionNumber.
  const result = makeResult('STAT', { AccessionNumber: undefined });
  await storeMrInstance(redis, redisServer.dir, { StudyInstanceUID: result.StudyInstanceUID, AccessionNumber: 'FROM-DICOM-7' });
  await writeResult(redis, result);
  expect(await outbound.enqueue(result)).toEqual(['hl7']);
  const key = resultKey(result);
  expect(await finished(key.jobId)).toBe('completed');
  const [m] = messagesFor(key.hl7ControlId);
  expect(m.getSegment('IPC')!.getField(1).toString()).toBe('FROM-DICOM-7');
  expect(m.getSegment('ORC')!.getField(3).toString()).toBe('FROM-DICOM-7');

  const orphan = makeResult('STAT', { AccessionNumber: undefined });
  await writeResult(redis, orphan);
  await outbound.enqueue(orphan);
  const orphanKey = resultKey(orphan);
  expect(await finished(orphanKey.jobId)).toBe('completed');
  expect((await outbound.queue('hl7').getJob(orphanKey.jobId))?.returnvalue).toMatchObject({ status: 'skipped', detail: 'no-accession' });
  expect(messagesFor(orphanKey.hl7ControlId)).toHaveLength(0);
  expect(await metric('neurotriage_outbound_skipped_total', { adapter: 'hl7', reason: 'no-accession' })).toBeGreaterThanOrEqual(1);
});

test('a later result version of a study goes to the same order as a correction (OBR-25 C after A)', async () => {
  const first = makeResult('URGENT', { resultVersion: 1, provisional: { waitingFor: ['DWI'], until: Date.now() + 60_000 } });
  await writeResult(redis, first);
  await outbound.enqueue(first);
  expect(await finished(resultKey(first).jobId)).toBe('completed');
  const second = { ...first, priority: 'STAT' as const, resultVersion: 2, provisional: undefined, scoredAt: first.scoredAt + 5000 };
  await writeResult(redis, second);
  await outbound.enqueue(second);
  expect(await finished(resultKey(second).jobId)).toBe('completed');
  const [a] = messagesFor(resultKey(first).hl7ControlId);
  const [c] = messagesFor(resultKey(second).hl7ControlId);
  expect(a.getSegment('OBR')!.getField(25).toString()).toBe('A');
  expect(c.getSegment('OBR')!.getField(25).toString()).toBe('C');
  for (const field of [['ORC', 1], ['ORC', 3], ['OBR', 3], ['IPC', 3]] as const) {
    expect(c.getSegment(field[0])!.getField(field[1]).toString()).toBe(a.getSegment(field[0])!.getField(field[1]).toString());
  }
  expect(c.getSegment('TQ1')!.getComponent(9, 1)).toBe('S');
  expect(c.getAllSegments('NTE')[0].getField(3).toString()).toBe('Correction: result version 2 replaces version 1 for this order.');
});

test('a version the RIS never accepted is not corrected: the next one it gets is a first result, the one after corrects it', async () => {
  const first = makeResult('URGENT', { resultVersion: 1 });
  await writeResult(redis, first);
  peer.reply = () => 'AR'; // refused: the RIS holds no result of this study
  await outbound.enqueue(first);
  expect(await finished(resultKey(first).jobId)).toBe('failed');
  peer.reply = () => 'AA';
  const second = { ...first, priority: 'STAT' as const, resultVersion: 2, scoredAt: first.scoredAt + 5000 };
  await writeResult(redis, second);
  await outbound.enqueue(second);
  expect(await finished(resultKey(second).jobId)).toBe('completed');
  const third = { ...second, priority: 'ROUTINE' as const, resultVersion: 3, scoredAt: second.scoredAt + 5000 };
  await writeResult(redis, third);
  await outbound.enqueue(third);
  expect(await finished(resultKey(third).jobId)).toBe('completed');
  const [v2] = messagesFor(resultKey(second).hl7ControlId);
  const [v3] = messagesFor(resultKey(third).hl7ControlId);
  expect(v2.getSegment('OBR')!.getField(25).toString()).toBe('P');
  expect(v2.getAllSegments('NTE').map((n) => n.getField(3).toString()).join(' ')).not.toContain('Correction');
  expect(v3.getSegment('OBR')!.getField(25).toString()).toBe('C');
  expect(v3.getAllSegments('NTE')[0].getField(3).toString()).toBe('Correction: result version 3 replaces version 2 for this order.');
});

test('a study whose first result went out before the RIS record was kept keeps the rule of that time: a later version corrects the one before', async () => {
  const legacy = makeResult('URGENT', { resultVersion: 2 });
  await writeResult(redis, legacy);
  // What that release left of its v1: the ordering watermark of the version the RIS acknowledged (no record).
  await redis.set(sentVersionKey('hl7', legacy.StudyInstanceUID), String(legacy.scoredAt - 5000), 'PX', 3600_000);
  await outbound.enqueue(legacy);
  expect(await finished(resultKey(legacy).jobId)).toBe('completed');
  const [m] = messagesFor(resultKey(legacy).hl7ControlId);
  expect(m.getSegment('OBR')!.getField(25).toString()).toBe('C');
  expect(m.getAllSegments('NTE')[0].getField(3).toString()).toBe('Correction: result version 2 replaces version 1 for this order.');
});

test('a study whose first versions were never queued (scored while the API was down; catch-up queues the latest) gets a first result, not a correction', async () => {
  const first = makeResult('URGENT', { resultVersion: 1, provisional: { waitingFor: ['DWI'], until: Date.now() + 60_000 } });
  const second = { ...first, priority: 'STAT' as const, resultVersion: 2, provisional: undefined, scoredAt: first.scoredAt + 5000 };
  // The worker wrote v1, then v2 over it, while no API ran: only v2 is stored when the API starts.
  await writeResult(redis, second);
  await redis.zadd(resultKeys.recent(), second.scoredAt, second.StudyInstanceUID);
  await outbound.catchUp(60);
  expect(await finished(resultKey(second).jobId)).toBe('completed');
  const [m] = messagesFor(resultKey(second).hl7ControlId);
  expect(m.getSegment('OBR')!.getField(25).toString()).toBe('P');
  expect(m.getAllSegments('NTE').map((n) => n.getField(3).toString()).join(' ')).not.toContain('Correction');
  expect(messagesFor(resultKey(first).hl7ControlId)).toHaveLength(0);
  await redis.zrem(resultKeys.recent(), second.StudyInstanceUID); // the next test counts the window
});

test('catch-up reads the window from the scoredAt index, not the whole worklist; a result is queued under its scoring job\'s trace id', async () => {
  const recent = { ...makeResult('ROUTINE'), traceId: 'trace-of-the-scoring-job' };
  const old = makeResult('ROUTINE', { scoredAt: Date.now() - 2 * 3600_000 });
  for (const r of [recent, old]) {
    await writeResult(redis, r);
    await redis.zadd(resultKeys.recent(), r.scoredAt, r.StudyInstanceUID);
  }
  expect(await outbound.catchUp(60)).toBe(1);
  expect(await finished(resultKey(recent).jobId)).toBe('completed');
  expect(messagesFor(resultKey(recent).hl7ControlId)).toHaveLength(1);
  expect((await outbound.queue('hl7').getJob(resultKey(recent).jobId))?.data.traceId).toBe('trace-of-the-scoring-job');
  expect(await outbound.queue('hl7').getJob(resultKey(old).jobId)).toBeUndefined();
});

test('a stored result that cannot be read is a permanent failure: one attempt, dead-lettered as result-unreadable, no stored text', async () => {
  // Not JSON, and JSON that is not a StudyResult: neither heals by retrying. Each holds an accession number that must
  // not reach the dead letter, BullMQ's failedReason or the metrics.
  const notJson = makeResult('STAT');
  const notAResult = makeResult('STAT');
  await redis.set(resultKeys.result(notJson.StudyInstanceUID), `{"AccessionNumber":"ACC-SECRET-1",`);
  await redis.set(resultKeys.result(notAResult.StudyInstanceUID), JSON.stringify({ AccessionNumber: 'ACC-SECRET-2', scoredAt: notAResult.scoredAt }));
  for (const result of [notJson, notAResult]) {
    const key = resultKey(result);
    await outbound.queue('hl7').add(DELIVER_JOB, { StudyInstanceUID: result.StudyInstanceUID, version: key.version }, { jobId: key.jobId });
    expect(await finished(key.jobId)).toBe('failed');
    const job = await outbound.queue('hl7').getJob(key.jobId);
    expect(job?.attemptsMade).toBe(1);
    expect(messagesFor(key.hl7ControlId)).toHaveLength(0);
    const dead = await outbound.deadLetterQueue('hl7').getJob(key.jobId);
    expect(dead?.data).toMatchObject({ adapter: 'hl7', reason: 'result-unreadable', permanent: true, attemptsMade: 1, StudyInstanceUID: result.StudyInstanceUID });
    expect(dead?.data.error).toContain(result.StudyInstanceUID);
    for (const text of [JSON.stringify(dead?.data), job?.failedReason ?? '']) expect(text).not.toContain('ACC-SECRET');
  }
  expect(await metric('neurotriage_outbound_failed_total', { adapter: 'hl7', reason: 'result-unreadable', permanent: 'true' })).toBe(2);
  expect(await metric('neurotriage_outbound_dead_lettered_total', { adapter: 'hl7', reason: 'result-unreadable' })).toBe(2);
});

test('catch-up leaves out a stored result that cannot be read and enqueues the others', async () => {
  const good = makeResult('URGENT');
  const bad = makeResult('URGENT');
  await writeResult(redis, good);
  await redis.set(resultKeys.result(bad.StudyInstanceUID), 'not json ACC-SECRET-3');
  for (const r of [good, bad]) await redis.zadd(resultKeys.recent(), r.scoredAt, r.StudyInstanceUID);
  await expect(outbound.catchUp(60)).resolves.toBeGreaterThanOrEqual(1);
  expect(await finished(resultKey(good).jobId)).toBe('completed');
  expect(await outbound.queue('hl7').getJob(resultKey(bad).jobId)).toBeUndefined();
  expect(await metric('neurotriage_outbound_skipped_total', { adapter: 'hl7', reason: 'result-unreadable' })).toBe(1);
});
