// Recovering study records from the instance store against a real Redis, the real BullMQ study queue and real
// Part 10 files laid out as the listener stores them: after Redis lost them, a study wholly on disk and one partly
// known are recorded as the listener would have recorded them and queued behind new arrivals; what Redis knows is
// left alone (a second run does nothing); files that are not the instance their path names are reported and left;
// a study retention is deleting is not touched; a dry run and the built CLI.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { axialPositions, makeSeries, phantom, uid as newUid } from '../shared/imaging/synthetic';
import { createLogger } from '../shared/logger';
import { instanceStorageKey, keys, PURGED_FIELD, PURGING_FIELD, SCORE_STUDY_JOB, STUDY_JOB_OPTIONS, STUDY_QUEUE, studyJobData, type StudyJobData } from '../shared/studies';
import { redisUrl, startStudyQueue, stopRedisClient } from '../test/helpers/redis-client';
import { BULK_PRIORITY } from './rescore';
import { ARRIVING_SLACK_MS, recoverOptionsFrom, runRecover } from './recover';

const MAIN = path.resolve(__dirname, '..', 'dist', 'tools', 'recover.js');
const log = createLogger('recover-test', 'silent');
const T0 = Date.parse('2026-12-01T08:00:00Z');

let redis: Redis;
let queue: Queue<StudyJobData>;
let dataDir: string;

interface Written {
  StudyInstanceUID: string;
  files: Array<{ SeriesInstanceUID: string; SOPInstanceUID: string; key: string; bytes: number }>;
}

/** A study of `series` x `slices` instances stored as the listener stores them, file n modified at T0 + n minutes. */
function storeStudy(series: number, slices: number, AccessionNumber?: string): Written {
  const StudyInstanceUID = newUid();
  const files: Written['files'] = [];
  for (let s = 1; s <= series; s++) {
    const SeriesInstanceUID = `${StudyInstanceUID}.${s}`;
    const data = makeSeries({
      StudyInstanceUID, SeriesInstanceUID, SeriesNumber: s, rows: 16, columns: 16, pixelSpacing: [4, 4],
      positions: axialPositions([0, 0, 0], slices, 5, 16, 16, [4, 4]), intensity: phantom([0, 0, 0], [5, 5, 5]),
      attributes: AccessionNumber ? { AccessionNumber } : {},
    });
    data.forEach((bytes, k) => {
      const SOPInstanceUID = `${SeriesInstanceUID}.${k + 1}`;
      const key = instanceStorageKey(StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID);
      mkdirSync(path.dirname(path.join(dataDir, key)), { recursive: true });
      writeFileSync(path.join(dataDir, key), bytes);
      const at = new Date(T0 + (files.length + 1) * 60_000);
      utimesSync(path.join(dataDir, key), at, at);
      files.push({ SeriesInstanceUID, SOPInstanceUID, key, bytes: bytes.byteLength });
    });
  }
  return { StudyInstanceUID, files };
}

/** What the listener leaves in Redis for the given instances of a study (study hash, instance records). */
async function recordAsListener(study: Written, count: number, status: string): Promise<void> {
  const known = study.files.slice(0, count);
  await redis.hset(keys.study(study.StudyInstanceUID), {
    StudyInstanceUID: study.StudyInstanceUID, status, instances: count, bytes: known.reduce((n, f) => n + f.bytes, 0),
    firstReceivedAt: T0 + 60_000, lastReceivedAt: T0 + count * 60_000,
  });
  for (const f of known) await redis.hset(keys.studyInstances(study.StudyInstanceUID), f.SOPInstanceUID, f.key);
}

const jobsFor = async (uid: string) => (await queue.getJobs(['prioritized', 'waiting', 'delayed'])).filter((j) => j.data.StudyInstanceUID === uid);

beforeAll(async () => ({ redis, queue } = await startStudyQueue()));
afterAll(() => stopRedisClient(redis, queue));
beforeEach(async () => {
  await redis.flushdb();
  dataDir = mkdtempSync(path.join(tmpdir(), 'nt-recover-'));
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

test('instances Redis lost are recorded as the listener recorded them and their studies queued behind new arrivals; what Redis knows stays as it is', async () => {
  const lost = storeStudy(2, 3, 'ACC-RECOVER-1');
  const partly = storeStudy(1, 4);
  const known = storeStudy(1, 2);
  await recordAsListener(partly, 1, 'scored');
  await recordAsListener(known, 2, 'scored');
  const before = await redis.hgetall(keys.study(known.StudyInstanceUID));

  const seen: string[] = [];
  const run = await runRecover({ redis, queue, log, dataDir, limit: 100, onStudy: (u, o, n) => seen.push(`${u} ${o} ${n}`) });
  expect(run).toEqual({ studies: 3, recovered: 2, instances: 6 + 3, unreadable: 0, outcomes: { queued: 2 }, limited: false, dryRun: false });
  expect(seen.sort()).toEqual([`${lost.StudyInstanceUID} queued 6`, `${partly.StudyInstanceUID} queued 3`].sort());

  const study = await redis.hgetall(keys.study(lost.StudyInstanceUID));
  expect(study).toMatchObject({
    StudyInstanceUID: lost.StudyInstanceUID, status: 'queued', instances: '6', bytes: String(lost.files.reduce((n, f) => n + f.bytes, 0)),
    firstReceivedAt: String(T0 + 60_000), lastReceivedAt: String(T0 + 6 * 60_000), AccessionNumber: 'ACC-RECOVER-1',
  });
  expect(await redis.hgetall(keys.studyInstances(lost.StudyInstanceUID))).toEqual(Object.fromEntries(lost.files.map((f) => [f.SOPInstanceUID, f.key])));
  // Pending: should the job be lost, the listener queues the study again at its next start.
  expect(await redis.sismember(keys.pendingStudies(), lost.StudyInstanceUID)).toBe(1);
  const [job] = await jobsFor(lost.StudyInstanceUID);
  expect(job.opts.priority).toBe(BULK_PRIORITY);
  expect(job.id).toBe(study.jobId);

  // The partly known study gains the three instances it lacked; its times widen, its status leaves 'scored'.
  expect(await redis.hgetall(keys.study(partly.StudyInstanceUID))).toMatchObject({ status: 'queued', instances: '4', lastReceivedAt: String(T0 + 4 * 60_000) });
  expect(await redis.hlen(keys.studyInstances(partly.StudyInstanceUID))).toBe(4);
  expect(await jobsFor(partly.StudyInstanceUID)).toHaveLength(1);

  // The study Redis knew whole: not touched, not queued.
  expect(await redis.hgetall(keys.study(known.StudyInstanceUID))).toEqual(before);
  expect(await jobsFor(known.StudyInstanceUID)).toHaveLength(0);

  // Run again: nothing left to recover, nothing queued twice.
  const again = await runRecover({ redis, queue, log, dataDir, limit: 100 });
  expect(again).toMatchObject({ studies: 3, recovered: 0, instances: 0, outcomes: {} });
  expect(await jobsFor(lost.StudyInstanceUID)).toHaveLength(1);
});

test('a dry run records and queues nothing; files that are not the instance their path names are reported and left; the limit', async () => {
  const a = storeStudy(1, 2);
  const b = storeStudy(1, 2);
  // A torn file, a valid instance of study a filed under study b's path, and stray names.
  writeFileSync(path.join(dataDir, a.files[1].key), Buffer.from('DICM? no: the end of a torn write'));
  const misfiled = instanceStorageKey(b.StudyInstanceUID, b.files[0].SeriesInstanceUID, `${b.files[0].SeriesInstanceUID}.99`);
  writeFileSync(path.join(dataDir, misfiled), readFileSync(path.join(dataDir, a.files[0].key)));
  writeFileSync(path.join(dataDir, 'store', 'README'), 'not a study');
  writeFileSync(path.join(dataDir, 'store', b.StudyInstanceUID, b.files[0].SeriesInstanceUID, 'notes.txt'), 'x');

  const left: string[] = [];
  const dry = await runRecover({ redis, queue, log, dataDir, limit: 100, dryRun: true, onUnreadable: (k, why) => left.push(`${k}: ${why}`) });
  expect(dry).toEqual({ studies: 2, recovered: 2, instances: 3, unreadable: 4, outcomes: { 'would-queue': 2 }, limited: false, dryRun: true });
  expect(left).toHaveLength(4);
  expect(left).toEqual(expect.arrayContaining([
    `${misfiled}: its UIDs are not those its path names`,
    `store/${b.StudyInstanceUID}/${b.files[0].SeriesInstanceUID}/notes.txt: not an instance file (named <SOPInstanceUID>.dcm)`,
    'store/README: not a study folder (named by a StudyInstanceUID)',
  ]));
  expect(left.find((l) => l.startsWith(a.files[1].key))).toMatch(/: not a readable DICOM instance \(.+\)$/);
  // The message names the file by its key under DATA_DIR, not the machine's path.
  expect(left.join('\n')).not.toContain(dataDir);
  expect(await redis.dbsize()).toBe(0);

  const limited = await runRecover({ redis, queue, log, dataDir, limit: 1 });
  expect(limited).toMatchObject({ recovered: 1, limited: true });
  const rest = await runRecover({ redis, queue, log, dataDir, limit: 1 });
  expect(rest).toMatchObject({ recovered: 1, limited: false });
  expect(limited.instances + rest.instances).toBe(3);
  // The torn and misfiled files stay unrecorded: a worker never reads them as instances of their study.
  expect(await redis.hexists(keys.studyInstances(a.StudyInstanceUID), a.files[1].SOPInstanceUID)).toBe(0);
  expect(await redis.hkeys(keys.studyInstances(b.StudyInstanceUID))).toEqual(expect.arrayContaining(b.files.map((f) => f.SOPInstanceUID)));
  expect(await redis.hlen(keys.studyInstances(b.StudyInstanceUID))).toBe(2);
});

test('a study retention is deleting is left to retention, and a dry run says so', async () => {
  const purging = storeStudy(1, 2);
  await redis.hset(keys.study(purging.StudyInstanceUID), { StudyInstanceUID: purging.StudyInstanceUID, status: 'scored', [PURGING_FIELD]: Date.now() });
  // Purged before the backup, sent again after it: the records to be made count, not the old purge.
  const resent = storeStudy(1, 2);
  await redis.hset(keys.study(resent.StudyInstanceUID), { StudyInstanceUID: resent.StudyInstanceUID, status: 'scored', [PURGED_FIELD]: T0 });
  const dry = await runRecover({ redis, queue, log, dataDir, limit: 100, dryRun: true });
  expect(dry).toMatchObject({ recovered: 1, instances: 2, outcomes: { purging: 1, 'would-queue': 1 } });
  const run = await runRecover({ redis, queue, log, dataDir, limit: 100 });
  expect(run.outcomes).toEqual({ purging: 1, queued: 1 });
  expect(await redis.exists(keys.studyInstances(purging.StudyInstanceUID))).toBe(0);
  expect(await jobsFor(purging.StudyInstanceUID)).toHaveLength(0);
});

test('a study whose files are still arriving is left to the listener until its quiet period has passed', async () => {
  const arriving = storeStudy(1, 2);
  const now = Date.now();
  for (const f of arriving.files) utimesSync(path.join(dataDir, f.key), new Date(now - 1000), new Date(now - 1000));
  const early = await runRecover({ redis, queue, log, dataDir, limit: 100, quietMs: 5000, now: () => now });
  expect(early.outcomes).toEqual({ 'still-arriving': 1 });
  expect(early.recovered).toBe(0);
  expect(await redis.exists(keys.study(arriving.StudyInstanceUID))).toBe(0);
  const later = await runRecover({ redis, queue, log, dataDir, limit: 100, quietMs: 5000, now: () => now + 5000 + ARRIVING_SLACK_MS });
  expect(later).toMatchObject({ recovered: 1, instances: 2, outcomes: { queued: 1 } });
});

test('the command line: options, and what it refuses', () => {
  expect(recoverOptionsFrom([])).toEqual({ limit: 1000, dryRun: false });
  expect(recoverOptionsFrom(['--limit', '5', '--dry-run'])).toEqual({ limit: 5, dryRun: true });
  expect(() => recoverOptionsFrom(['--limit', 'all'])).toThrow('--limit: expected a whole number of studies, at least 1 (got all)');
  expect(() => recoverOptionsFrom(['--study', '1.2.3'])).toThrow();
});

test('the built CLI lists each study recovered and sums up', async () => {
  const lost = storeStudy(1, 2);
  const env = { PATH: process.env.PATH ?? '', REDIS_URL: redisUrl(redis), DATA_DIR: dataDir, LOG_LEVEL: 'silent' };
  const run = spawnSync(process.execPath, [MAIN], { env, encoding: 'utf8', timeout: 20_000 });
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  expect(run.stdout).toBe(
    `${lost.StudyInstanceUID}\tqueued\t2 instances\n` +
      '1 study folders; 1 studies with 2 instances Redis had no record of (queued 1); 0 files left as they are\n',
  );
  expect(await jobsFor(lost.StudyInstanceUID)).toHaveLength(1);
});

test('a study a worker is scoring when its lost instances are recorded is scored again once that job ends', async () => {
  const scoring = storeStudy(1, 3);
  await recordAsListener(scoring, 1, 'scoring');
  await queue.add(SCORE_STUDY_JOB, studyJobData(scoring.StudyInstanceUID, 'test'), { ...STUDY_JOB_OPTIONS, jobId: 'study-active', deduplication: { id: scoring.StudyInstanceUID } });
  const connection = redis.duplicate();
  const worker = new Worker<StudyJobData>(STUDY_QUEUE, null, { connection, autorun: false });
  try {
    const active = (await worker.getNextJob('token-1'))!;
    expect(active.id).toBe('study-active');
    const run = await runRecover({ redis, queue, log, dataDir, limit: 100 });
    expect(run).toMatchObject({ recovered: 1, instances: 2, outcomes: { 'already-queued': 1 } });
    // The running job scored the study without those instances; its result leaves the study pending ('received').
    expect(await redis.hget(keys.study(scoring.StudyInstanceUID), 'status')).toBe('received');
    await active.moveToCompleted({}, 'token-1', false);
    const next = await jobsFor(scoring.StudyInstanceUID);
    expect(next).toHaveLength(1);
    expect(next[0].opts.priority).toBe(BULK_PRIORITY);
  } finally {
    await worker.close();
    connection.disconnect();
  }
});
