// A listener that died with instances in its write-ahead log whose own files never reached the disk (a power cut
// before the checkpoint): the next listener on the volume writes them into the store from the log before it takes
// an association, and scores their studies again, since a worker may have read the damaged files meanwhile. Real
// Redis, a real listener, a log written by the listener's own code, a Part 10 file from DCMTK's helpers.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { Queue, Worker } from 'bullmq';
import {
  instanceStorageKey,
  keys,
  PURGED_FIELD,
  PURGING_FIELD,
  SCORE_STUDY_JOB,
  STUDY_JOB_OPTIONS,
  STUDY_QUEUE,
  studyJobData,
  type StudyJobData,
} from '../../shared/studies';
import { connectRedis } from '../../shared/redis';
import { createLogger } from '../../shared/logger';
import { LEASE_FILE, LEASE_REFRESH_MS, LOG_FILE } from '../../services/listener/instance-store';
import { startListener } from '../../services/listener/listener';
import { WriteAheadLog } from '../../services/listener/write-ahead-log';
import { StudyAssembler } from '../../services/listener/study-assembler';
import { BackendUnavailableError } from '../../services/listener/errors';
import { startRedis, type TestRedis } from '../helpers/redis';
import { newUid, storescu, writeMrInstance } from '../helpers/dcmtk';
import { waitFor } from '../helpers/wait';
import { startHarness, studyJobs, tempDir, testListenerSettings, type Harness } from './harness';

let redis: TestRedis;
let dataDir: string;
let h: Harness | undefined;

beforeAll(async () => {
  redis = await startRedis();
  dataDir = tempDir('nt-wal-replay-');
});

afterAll(async () => {
  await h?.stop();
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

test("a dead listener's logged instance, empty in the store after a power cut, is written back and its study scored again", async () => {
  // The dead listener's temp dir (its lease names an exited process of this host, its log holds the record) and the
  // instance's file in the store, empty; the study was scored and is not pending.
  const { study, key, bytes } = await deadListener(dataDir, 'dead-1');

  h = await startHarness({}, { redis, dataDir });
  expect(readFileSync(path.join(dataDir, key)).equals(bytes)).toBe(true);
  expect(await h.client.sismember(keys.pendingStudies(), study)).toBe(1);
  const jobs = await studyJobs(redis.url);
  expect(jobs.map((j) => j.data.StudyInstanceUID)).toEqual([study]);
  const warned = h.logLines.map((l) => JSON.parse(l) as { msg: string; studies?: number }).find((l) => l.msg.startsWith('instances replayed from a write-ahead log'));
  expect(warned?.studies).toBe(1);
  // The study's UID is not a patient identifier, but the warning carries a count only.
  expect(h.logLines.join('\n')).not.toContain(study);
});

/**
 * A dead listener's temp dir under `dataDir` (its lease names an exited process of this host) whose log holds one
 * instance of a new study, and that instance's file in the store empty, as a power cut leaves it.
 */
async function deadListener(dataDir: string, name: string, study = newUid()): Promise<{ study: string; key: string; bytes: Buffer; dir: string }> {
  const series = newUid();
  const sop = newUid();
  const source = path.join(tempDir('nt-wal-src-'), 'i.dcm');
  writeMrInstance(source, { StudyInstanceUID: study, SeriesInstanceUID: series, SOPInstanceUID: sop, InstanceNumber: 1 });
  const bytes = readFileSync(source);
  const key = instanceStorageKey(study, series, sop);
  const dir = path.join(dataDir, 'tmp', name);
  mkdirSync(dir, { recursive: true });
  const log = await WriteAheadLog.create(path.join(dir, LOG_FILE), 1024 * 1024, { syncFile: async () => undefined, syncDir: async () => undefined }, 3600_000);
  await log.append(key, path.join(dataDir, key), [bytes])?.flushed;
  await log.close();
  mkdirSync(path.dirname(path.join(dataDir, key)), { recursive: true });
  writeFileSync(path.join(dataDir, key), '');
  const exited = spawnSync('true').pid;
  writeFileSync(path.join(dir, LEASE_FILE), JSON.stringify({ host: hostname(), pid: exited, pidns: readlinkSync('/proc/self/ns/pid') }));
  return { study, key, bytes, dir };
}

async function jobsOf(study: string) {
  return (await studyJobs(redis.url)).filter((j) => j.data.StudyInstanceUID === study);
}

test('a repaired study whose job a worker is scoring at the replay (from the damaged file) is scored again after it', async () => {
  const dir = tempDir('nt-wal-active-');
  const study = newUid();
  const connection = connectRedis(redis.url, 'worker');
  const queue = new Queue<StudyJobData>(STUDY_QUEUE, { connection });
  await queue.add(SCORE_STUDY_JOB, studyJobData(study, 'before-the-replay'), { ...STUDY_JOB_OPTIONS, jobId: `study-${study}-1`, deduplication: { id: study } });
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const taken: string[] = [];
  const worker = new Worker<StudyJobData>(
    STUDY_QUEUE,
    async (job) => {
      if (job.data.StudyInstanceUID !== study) return;
      taken.push(job.data.traceId);
      if (taken.length === 1) await held;
      await connection.srem(keys.pendingStudies(), study);
    },
    { connection: connectRedis(redis.url, 'worker'), concurrency: 1 },
  );
  worker.on('error', () => undefined);
  await waitFor('the first job active', () => taken.length === 1);
  await deadListener(dir, 'dead-active', study);
  const other = await startHarness({}, { redis, dataDir: dir });
  try {
    expect(await other.client.sismember(keys.pendingStudies(), study)).toBe(1);
    release();
    await waitFor('a second job for the repaired study', () => taken.length === 2, 5000);
  } finally {
    release();
    await worker.close();
    await queue.close();
    connection.disconnect();
    await other.stop();
  }
});

test('a study retention purged, or is purging, is not made pending again by a replay', async () => {
  const dir = tempDir('nt-wal-purged-');
  const client = connectRedis(redis.url, 'worker');
  const purged = await deadListener(dir, 'dead-purged');
  await client.hset(keys.study(purged.study), 'status', 'scored', PURGED_FIELD, String(Date.now() - 60_000));
  const purging = await deadListener(dir, 'dead-purging');
  await client.hset(keys.study(purging.study), 'status', 'scored', PURGING_FIELD, String(Date.now()));
  await client.hset(keys.studyInstances(purging.study), '1.2.3', purging.key);
  const other = await startHarness({}, { redis, dataDir: dir });
  try {
    for (const { study } of [purged, purging]) {
      expect(await client.sismember(keys.pendingStudies(), study)).toBe(0);
      expect(await jobsOf(study)).toEqual([]);
    }
  } finally {
    client.disconnect();
    await other.stop();
  }
});

test('a start that cannot reach Redis replays nothing, so the next start still repairs and scores the study', async () => {
  const dir = tempDir('nt-wal-noredis-');
  const dead = await deadListener(dir, 'dead-noredis');
  // A client that never connects: the start gives up after 10 s, as when Redis is down after a power cut.
  const client = connectRedis(redis.url, 'producer', { lazyConnect: true });
  await expect(startListener({ settings: testListenerSettings(redis.url, dir), log: createLogger('listener', 'silent'), redis: client })).rejects.toThrow(/Redis not reachable/);
  client.disconnect();
  expect(existsSync(dead.dir)).toBe(true);
  expect(readFileSync(path.join(dir, dead.key))).toHaveLength(0);
  const next = await startHarness({}, { redis, dataDir: dir });
  try {
    expect(readFileSync(path.join(dir, dead.key)).equals(dead.bytes)).toBe(true);
    expect(await next.client.sismember(keys.pendingStudies(), dead.study)).toBe(1);
    expect(await jobsOf(dead.study)).toHaveLength(1);
  } finally {
    await next.stopListener();
    next.client.disconnect();
  }
}, 60_000);

test('a sweep under way when the listener closes still has its repaired study scored again', async () => {
  const dir = tempDir('nt-wal-closing-');
  const spy = jest.spyOn(global, 'setInterval');
  let other: Harness;
  let heartbeat: () => void;
  try {
    other = await startHarness({}, { redis, dataDir: dir });
    heartbeat = spy.mock.calls.find((c) => c[1] === LEASE_REFRESH_MS)?.[0] as () => void;
  } finally {
    spy.mockRestore();
  }
  const dead = await deadListener(dir, 'dead-closing');
  heartbeat();
  await other.stopListener();
  try {
    expect(readFileSync(path.join(dir, dead.key)).equals(dead.bytes)).toBe(true);
    expect(await other.client.sismember(keys.pendingStudies(), dead.study)).toBe(1);
    expect(await jobsOf(dead.study)).toHaveLength(1);
    expect(other.logLines.filter((l) => l.includes('could not schedule'))).toEqual([]);
  } finally {
    await other.stop();
  }
});

/**
 * A listener that logs one instance of a new study, answers it `status` because its arrival could not be recorded
 * (what `refuse` sets up), and stops without a checkpoint, as a process killed within ~200 ms of the failure leaves
 * its log. Returns the study and the instance's storage key.
 */
async function unacknowledgedThenKilled(dir: string, refuse: (study: string) => Promise<void>, status: number): Promise<{ study: string; key: string }> {
  const study = newUid();
  const series = newUid();
  const file = path.join(tempDir('nt-wal-src-'), 'i.dcm');
  const sop = writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: series, InstanceNumber: 1 });
  const checkpoints = jest.spyOn(WriteAheadLog.prototype, 'checkpoint').mockResolvedValue(undefined);
  try {
    const crashed = await startHarness({}, { redis, dataDir: dir });
    try {
      await refuse(study);
      expect((await storescu(crashed.ae, [file])).statuses).toEqual([status]);
    } finally {
      await crashed.stop();
    }
  } finally {
    checkpoints.mockRestore();
  }
  return { study, key: instanceStorageKey(study, series, sop) };
}

async function expectNotReplayed(restarted: Harness, study: string, key: string): Promise<void> {
  expect(existsSync(path.join(restarted.dataDir, key))).toBe(false);
  expect(await restarted.client.sismember(keys.pendingStudies(), study)).toBe(0);
  expect(await jobsOf(study)).toEqual([]);
  expect(restarted.logLines.filter((l) => l.includes('instances replayed from a write-ahead log'))).toEqual([]);
}

test('a logged instance whose arrival Redis refused, its listener dead before the checkpoint, is not written into the store by the replay nor its study scored', async () => {
  const dir = tempDir('nt-wal-refused-');
  const refused = jest.spyOn(StudyAssembler.prototype, 'recordArrival');
  const { study, key } = await unacknowledgedThenKilled(
    dir,
    async () => void refused.mockRejectedValueOnce(new BackendUnavailableError('Redis refused the arrival record')),
    0xa700,
  ).finally(() => refused.mockRestore());
  // Its file was placed unflushed and left for the resend to replace; the power cut took it.
  rmSync(path.join(dir, key));
  const restarted = await startHarness({}, { redis, dataDir: dir });
  try {
    await expectNotReplayed(restarted, study, key);
  } finally {
    await restarted.stop();
  }
});

test('a logged instance refused because retention is purging its study, its listener killed before the checkpoint, is not written back by the replay', async () => {
  const dir = tempDir('nt-wal-purging-refused-');
  const client = connectRedis(redis.url, 'worker');
  try {
    const { study, key } = await unacknowledgedThenKilled(
      dir,
      async (uid) => void (await client.hset(keys.study(uid), 'status', 'scored', PURGING_FIELD, String(Date.now()))),
      0xa700,
    );
    // The file was removed at the refusal; a replay writing it back would leave image data of a deleted study.
    expect(existsSync(path.join(dir, key))).toBe(false);
    const restarted = await startHarness({}, { redis, dataDir: dir });
    try {
      await expectNotReplayed(restarted, study, key);
    } finally {
      await restarted.stop();
    }
  } finally {
    client.disconnect();
  }
});
