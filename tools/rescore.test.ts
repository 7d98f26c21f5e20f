// Bulk re-scoring against a real Redis and the real BullMQ study queue: which studies each criterion selects, that
// their jobs wait behind new arrivals (a real BullMQ worker takes a new arrival first), what a dry run and the limit
// do, and the command line (built CLI) for a run and for a call that names no studies.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { createLogger } from '../shared/logger';
import { resultKeys, type StudyResult } from '../shared/results';
import { keys, PURGED_FIELD, PURGING_FIELD, SCORE_STUDY_JOB, STUDY_QUEUE, studyStorageKey, type StudyJobData } from '../shared/studies';
import { redisUrl, startStudyQueue, stopRedisClient } from '../test/helpers/redis-client';
import { waitFor } from '../test/helpers/wait';
import { BULK_PRIORITY, criteriaFrom, runRescore } from './rescore';

const MAIN = path.resolve(__dirname, '..', 'dist', 'tools', 'rescore.js');
const DAY = 86_400_000;
const NOW = Date.now();
const CURRENT = 'neurotriage-synthetic-reference@2026.12.06-dwi-domain';
const uid = (n: number) => `1.2.826.0.1.3680043.8.498.95${n}`;

let redis: Redis;
let queue: Queue<StudyJobData>;
const log = createLogger('rescore-test', 'silent');

/** A study as the listener and the worker leave it: study hash, one recorded instance, a result when scored. */
async function study(n: number, status: string, lastReceivedAt: number, model?: string | 'unreadable'): Promise<string> {
  const u = uid(n);
  await redis.hset(keys.study(u), { StudyInstanceUID: u, status, lastReceivedAt, firstReceivedAt: lastReceivedAt, instances: 1 });
  await redis.hset(keys.studyInstances(u), `${u}.1.1`, `${studyStorageKey(u)}/${u}.1/${u}.1.1.dcm`);
  if (model === 'unreadable') await redis.set(resultKeys.result(u), '{"StudyInstanceUID":');
  else if (model) {
    const [bundleId, version] = model.split('@');
    const result: StudyResult = {
      StudyInstanceUID: u, priority: 'ROUTINE', priorityProbability: null, findings: [], abnormalProbability: 0.1, sequencesUsed: ['DWI'], sequencesMissing: [],
      series: [], confidence: 1, model: { bundleId, version }, judgedWith: { querySetVersion: 'test', classThresholds: {} }, provider: 'cpu',
      timingsMs: { decode: 1, preprocess: 1, inference: 1, scoring: 1, total: 4 }, receivedAt: lastReceivedAt, scoredAt: lastReceivedAt + 1000,
    };
    await redis.set(resultKeys.result(u), JSON.stringify(result));
  }
  return u;
}

const queued = async () => (await queue.getJobs(['prioritized', 'waiting'])).map((j) => j.data.StudyInstanceUID).sort();

beforeAll(async () => ({ redis, queue } = await startStudyQueue()));
afterAll(() => stopRedisClient(redis, queue));
beforeEach(async () => {
  await redis.flushdb();
  await study(1, 'failed', NOW - DAY);
  await study(2, 'failed', NOW - 20 * DAY);
  await study(3, 'unsupported', NOW - DAY);
  await study(4, 'scored', NOW - DAY, 'neurotriage-synthetic-reference@2026.11.28-19a12c0c');
  await study(5, 'scored', NOW - DAY, CURRENT);
  await study(6, 'scored', NOW - DAY, 'unreadable');
});

test('failed studies since a date are queued behind new arrivals; a dry run queues nothing', async () => {
  const criteria = { statuses: ['failed' as const], since: NOW - 7 * DAY };
  const dry = await runRescore({ redis, queue, log, criteria, limit: 100, dryRun: true });
  expect(dry).toEqual({ selected: 1, outcomes: { 'would-queue': 1 }, limited: false, dryRun: true });
  expect(await queued()).toEqual([]);

  const seen: string[] = [];
  const run = await runRescore({ redis, queue, log, criteria, limit: 100, onStudy: (u, o) => seen.push(`${u} ${o}`) });
  expect(run).toEqual({ selected: 1, outcomes: { queued: 1 }, limited: false, dryRun: false });
  expect(seen).toEqual([`${uid(1)} queued`]);
  const [job] = await queue.getJobs(['prioritized']);
  expect(job.data.StudyInstanceUID).toBe(uid(1));
  expect(job.opts.priority).toBe(BULK_PRIORITY);
  expect(await redis.hget(keys.study(uid(1)), 'status')).toBe('queued');

  // A study arriving afterwards (the listener's job, no priority) is scored first.
  await queue.add(SCORE_STUDY_JOB, { StudyInstanceUID: uid(9), storageKey: studyStorageKey(uid(9)), traceId: 't' }, { jobId: 'study-new-arrival' });
  const order: string[] = [];
  const consumer = new Worker<StudyJobData>(STUDY_QUEUE, async (j) => { order.push(j.data.StudyInstanceUID); }, { connection: redis.duplicate(), concurrency: 1 });
  try {
    await waitFor('both jobs to run', () => order.length === 2);
    expect(order).toEqual([uid(9), uid(1)]);
  } finally {
    await consumer.close();
  }
});

test('after a bundle upgrade: the studies another bundle scored, and results that cannot be read', async () => {
  const run = await runRescore({ redis, queue, log, criteria: { modelOtherThan: CURRENT }, limit: 100 });
  expect(run.outcomes).toEqual({ queued: 2 });
  expect(await queued()).toEqual([uid(4), uid(6)].sort());
});

test('a list of studies, a job already holding one, and the limit', async () => {
  await runRescore({ redis, queue, log, criteria: { studies: [uid(3)] }, limit: 100 });
  const again = await runRescore({ redis, queue, log, criteria: { studies: [uid(3), uid(1), '1.2.3.404'] }, limit: 100 });
  // The unknown UID has no study hash and is not selected; uid(3) already has its job.
  expect(again.outcomes).toEqual({ 'already-queued': 1, queued: 1 });
  const limited = await runRescore({ redis, queue, log, criteria: { statuses: ['scored'] }, limit: 1, dryRun: true });
  expect(limited).toMatchObject({ selected: 1, limited: true });
});

test('a dry run says what the real run will do with each study: purged, purging, no instances, already queued', async () => {
  // Retention deleted uid(2)'s instances, is deleting uid(3)'s now; uid(4)'s records are gone; uid(5) has its job.
  await redis.del(keys.studyInstances(uid(2)), keys.studyInstances(uid(3)), keys.studyInstances(uid(4)));
  await redis.hset(keys.study(uid(2)), PURGED_FIELD, NOW - DAY);
  await redis.hset(keys.study(uid(3)), PURGING_FIELD, Date.now());
  await runRescore({ redis, queue, log, criteria: { studies: [uid(5)] }, limit: 100 });
  const criteria = { studies: [uid(1), uid(2), uid(3), uid(4), uid(5)] };

  const said: string[] = [];
  const dry = await runRescore({ redis, queue, log, criteria, limit: 100, dryRun: true, onStudy: (u, o) => said.push(`${u} ${o}`) });
  expect(dry.outcomes).toEqual({ 'would-queue': 1, purged: 1, purging: 1, 'no-instances': 1, 'already-queued': 1 });
  // Nothing changed: no job added, nothing made pending (retention still takes the dry run's studies).
  expect(await queued()).toEqual([uid(5)]);
  expect(await redis.smembers(keys.pendingStudies())).toEqual([uid(5)]);

  const done: string[] = [];
  await runRescore({ redis, queue, log, criteria, limit: 100, onStudy: (u, o) => done.push(`${u} ${o}`) });
  expect(said).toEqual(done.map((l) => l.replace(/ queued$/, ' would-queue')));
});

test('the command line: what each option means, and what it refuses', () => {
  expect(criteriaFrom(['--status', 'failed,unsupported', '--since', '2026-12-01', '--limit', '50'])).toEqual({
    criteria: { statuses: ['failed', 'unsupported'], since: Date.parse('2026-12-01') }, limit: 50, dryRun: false,
  });
  expect(criteriaFrom(['--model-other-than', CURRENT, '--dry-run']).criteria).toEqual({ modelOtherThan: CURRENT });
  expect(() => criteriaFrom([])).toThrow('say which studies: --study, --status or --model-other-than (nothing is re-scored by default)');
  expect(() => criteriaFrom(['--status', 'done'])).toThrow('--status: done is not a study status');
  expect(() => criteriaFrom(['--study', '1.2.3,Smith^John'])).toThrow('--study: 1 of 2 values are not a DICOM UID');
  expect(() => criteriaFrom(['--study', '1.2.3', '--since', 'yesterday'])).toThrow('--since: expected an ISO 8601 date or time');
  expect(() => criteriaFrom(['--model-other-than', 'current'])).toThrow('--model-other-than: expected <bundleId>@<version>');
  expect(() => criteriaFrom(['--study', '1.2.3', '--limit', '0'])).toThrow('--limit: expected a whole number of studies, at least 1');
});

test('the built CLI lists each study and sums up; without a selection it exits 2 and says why', async () => {
  const env = { PATH: process.env.PATH ?? '', REDIS_URL: redisUrl(redis), LOG_LEVEL: 'silent' };
  const run = spawnSync(process.execPath, [MAIN, '--status', 'failed', '--since', new Date(NOW - 7 * DAY).toISOString()], { env, encoding: 'utf8', timeout: 20_000 });
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  expect(run.stdout).toBe(`${uid(1)}\tqueued\n1 studies selected (queued 1)\n`);
  expect(await queued()).toEqual([uid(1)]);

  const none = spawnSync(process.execPath, [MAIN], { env, encoding: 'utf8', timeout: 20_000 });
  expect(none.status).toBe(2);
  expect(none.stderr).toContain('say which studies');

  // No Redis answering: one line that says so, exit 1, no stack.
  const down = spawnSync(process.execPath, [MAIN, '--status', 'failed'], { env: { ...env, REDIS_URL: 'redis://127.0.0.1:9' }, encoding: 'utf8', timeout: 30_000 });
  expect(down.status).toBe(1);
  expect(down.stderr).toMatch(/^Redis not reachable within 10 s \(.*\): nothing queued\n$/);
});
