// A listener that died with instances in its write-ahead log whose own files never reached the disk (a power cut
// before the checkpoint): the next listener on the volume writes them into the store from the log before it takes
// an association, and scores their studies again, since a worker may have read the damaged files meanwhile. Real
// Redis, a real listener, a log written by the listener's own code, a Part 10 file from DCMTK's helpers.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { instanceStorageKey, keys } from '../../shared/studies';
import { LEASE_FILE, LOG_FILE } from '../../services/listener/instance-store';
import { WriteAheadLog } from '../../services/listener/write-ahead-log';
import { startRedis, type TestRedis } from '../helpers/redis';
import { newUid, writeMrInstance } from '../helpers/dcmtk';
import { startHarness, studyJobs, tempDir, type Harness } from './harness';

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
  const study = newUid();
  const series = newUid();
  const sop = newUid();
  const source = path.join(tempDir('nt-wal-src-'), 'i.dcm');
  writeMrInstance(source, { StudyInstanceUID: study, SeriesInstanceUID: series, SOPInstanceUID: sop, InstanceNumber: 1 });
  const bytes = readFileSync(source);
  const key = instanceStorageKey(study, series, sop);

  // The dead listener's temp dir: its lease names a process of this host that has exited, its log holds the record.
  const deadDir = path.join(dataDir, 'tmp', 'dead-1');
  mkdirSync(deadDir, { recursive: true });
  const exited = spawnSync('true').pid;
  writeFileSync(path.join(deadDir, LEASE_FILE), JSON.stringify({ host: hostname(), pid: exited, pidns: readlinkSync('/proc/self/ns/pid') }));
  const log = await WriteAheadLog.create(path.join(deadDir, LOG_FILE), 1024 * 1024, { syncFile: async () => undefined, syncDir: async () => undefined }, 3600_000);
  await log.append(key, path.join(dataDir, key), [bytes])?.flushed;
  // Never settled, so closing checkpoints nothing: the record stays as the crash left it.
  await log.close();
  // The store names the file, empty (delayed allocation never wrote it), and the study was scored and is not pending.
  mkdirSync(path.dirname(path.join(dataDir, key)), { recursive: true });
  writeFileSync(path.join(dataDir, key), '');

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
