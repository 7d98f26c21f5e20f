// The listener on a disk that fills up or turns read-only mid-association, on a real small file system (a private
// tmpfs, test/helpers/small-fs.ts) with the watermark off (DISK_MIN_FREE_MB 0), so the writes themselves fail: each
// such C-STORE answers A700 and the association carries on, nothing half-written stays nor is recorded, the failures
// are counted as OutOfDiskError (what the disk alerts and docs name), and new studies store once space returns.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { keys } from '../../shared/studies';
import { echoscu, newUid, storescu, writeMrInstance } from '../helpers/dcmtk';
import { startRedis } from '../helpers/redis';
import { startSmallFs, type SmallFs } from '../helpers/small-fs';
import { leftoverTempFiles, listFiles, metricsText, startHarness, tempDir, waitFor, type Harness } from './harness';

let fs: SmallFs;
let h: Harness;
let files: string;

beforeAll(async () => {
  fs = await startSmallFs(4096);
  // Data sets over 1 MB stream to their temp file as they arrive: the write that fills the disk is mid-transfer.
  h = await startHarness({ DISK_MIN_FREE_MB: 0, DICOM_SPOOL_MEMORY_MB: 1 }, { redis: await startRedis(), dataDir: fs.dir });
  files = tempDir('nt-disk-full-');
});

afterAll(async () => {
  await h?.stop();
  await h?.redis.stop();
  await fs?.stop();
  rmSync(files, { recursive: true, force: true });
});

/** An MR instance of `size` x `size` 16-bit pixels in a series of its own study. */
function instance(study: string, n: number, size: number): string {
  const file = path.join(files, `${study}-${n}.dcm`);
  writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: `${study}.1`, InstanceNumber: n, rows: size, columns: size });
  return file;
}

const outcome = async (name: string) => Number(new RegExp(`neurotriage_listener_instances_total\\{outcome="${name}"\\} (\\d+)`).exec(await metricsText(h.listener.metricsPort))?.[1] ?? 0);

test('a volume without room for the write-ahead log: the listener starts without it, says so, and flushes each file instead', () => {
  // DICOM_WAL_MB is 64 by default and this file system holds 4 MB.
  const warned = h.logLines.map((l) => JSON.parse(l) as { msg: string; err?: string }).find((l) => l.msg.startsWith('no write-ahead log'));
  expect(warned?.err).toMatch(/ENOSPC/);
  expect(listFiles(path.join(fs.dir, 'tmp')).filter((f) => f.endsWith('instances.wal'))).toEqual([]);
});

test('a disk that fills while an instance streams in: A700 for it, the next one stored, nothing half-written', async () => {
  const study = newUid();
  fs.fill(1_200_000);
  // 2 MB does not fit; the small one after it does once the refused one's temp file is gone.
  const r = await storescu(h.ae, [instance(study, 1, 1024), instance(study, 2, 64)], ['-nh']);
  expect(r.statuses).toEqual([0xa700, 0]);
  expect(listFiles(path.join(fs.dir, 'store', study))).toHaveLength(1);
  expect(await h.client.hlen(keys.studyInstances(study))).toBe(1);
  expect(leftoverTempFiles(fs.dir)).toEqual([]);
  expect(await outcome('OutOfDiskError')).toBe(1);
  expect(await outcome('ENOSPC')).toBe(0);
  fs.drain();
});

test('a store that turns read-only: A700 for each instance, the listener stays up, and stores again afterwards', async () => {
  const study = newUid();
  await fs.readOnly('store', true);
  try {
    const r = await storescu(h.ae, [instance(study, 1, 64), instance(study, 2, 64)], ['-nh']);
    expect(r.statuses).toEqual([0xa700, 0xa700]);
    expect(await h.client.exists(keys.studyInstances(study))).toBe(0);
    expect(leftoverTempFiles(fs.dir)).toEqual([]);
    expect((await echoscu(h.ae)).code).toBe(0);
  } finally {
    await fs.readOnly('store', false);
  }
  const again = await storescu(h.ae, [instance(study, 1, 64), instance(study, 2, 64)]);
  expect(again.statuses).toEqual([0, 0]);
  expect(listFiles(path.join(fs.dir, 'store', study))).toHaveLength(2);
  // The log says which instance failed and why, never who the patient is.
  const log = h.logLines.join('\n');
  expect(log).toMatch(/C-STORE failed/);
  expect(log).not.toMatch(/TEST\^SYNTHETIC|SYN0001/);
});

test('a temp folder that turns read-only: A700, and the temp files it kept from being removed go once it is writable', async () => {
  const study = newUid();
  // Empty temp files are created ahead of need; the ones already open are written, and then cannot be removed.
  await fs.readOnly('tmp', true);
  try {
    const r = await storescu(h.ae, [1, 2, 3].map((n) => instance(study, n, 64)), ['-nh']);
    expect(r.statuses).toEqual([0xa700, 0xa700, 0xa700]);
  } finally {
    await fs.readOnly('tmp', false);
  }
  // The failure logged is the store's (the rename), not the clean-up's.
  expect(h.logLines.filter((l) => l.includes('C-STORE failed')).slice(-3).map((l) => (JSON.parse(l) as { err: string }).err)).not.toContainEqual(expect.stringMatching(/unlink/));
  expect((await storescu(h.ae, [instance(study, 4, 64)])).statuses).toEqual([0]);
  await waitFor(() => leftoverTempFiles(fs.dir).length === 0, 10_000, 'the temp files of the refused instances removed');
  expect(listFiles(path.join(fs.dir, 'store', study))).toHaveLength(1);
});
