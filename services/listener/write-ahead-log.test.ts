// The write-ahead log on a real file system: records read back as written, a checkpoint flushes only settled
// records and frees their space, a torn record or one of an earlier generation is never replayed, and the ring
// wraps and says no (rather than overwriting) when full.
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, statSync, writeSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BLOCK, WriteAheadLog, readLog, toReplay, type CheckpointSync } from './write-ahead-log';

let dir: string;
let synced: string[];
const sync: CheckpointSync = {
  syncFile: async (file) => {
    synced.push(file);
  },
  syncDir: async () => undefined,
};
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'nt-wal-'));
  synced = [];
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const key = (n: number) => `store/1.2/3.4/${n}.dcm`;
const data = (n: number, size = 5000) => Buffer.alloc(size, n);

test('appended records read back with their keys and bytes, oldest first; a checkpoint of settled records removes them from what is replayed', async () => {
  const file = path.join(dir, 'wal');
  const log = await WriteAheadLog.create(file, 64 * BLOCK, sync, 60_000);
  expect(statSync(file).size).toBe(64 * BLOCK);
  const entries = [1, 2, 3].map((n) => log.append(key(n), `/d/${key(n)}`, [data(n, 10), data(n, 4990)]));
  await Promise.all(entries.map((e) => e?.flushed));
  const logged = await readLog(file);
  expect(logged.map((r) => r.key)).toEqual([key(1), key(2), key(3)]);
  expect(logged[1].data.equals(data(2))).toBe(true);

  // Only the oldest settled run is checkpointed: 2 is settled but 1 is not, so nothing is.
  log.settle(entries[1]!);
  await log.checkpoint();
  expect(synced).toEqual([]);
  log.settle(entries[0]!);
  await log.checkpoint();
  expect(synced).toEqual([`/d/${key(1)}`, `/d/${key(2)}`]);
  expect((await readLog(file)).map((r) => r.key)).toEqual([key(3)]);
  expect(log.pending()).toBe(1);
  log.settle(entries[2]!);
  await log.close();
  expect(await readLog(file)).toEqual([]);
  // Appends never grew the file, so their flush never had metadata to commit.
  expect(statSync(file).size).toBe(64 * BLOCK);
});

test('a record torn by a crash, or written under an earlier generation, is not replayed', async () => {
  const file = path.join(dir, 'wal');
  const log = await WriteAheadLog.create(file, 64 * BLOCK, sync, 60_000);
  const first = log.append(key(1), '/d/1', [data(1)]);
  const second = log.append(key(2), '/d/2', [data(2)]);
  await Promise.all([first?.flushed, second?.flushed]);
  // One byte of the second record's data never reached the disk.
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.from([0xee]), 0, 1, second!.start + 4000);
  closeSync(fd);
  expect((await readLog(file)).map((r) => r.key)).toEqual([key(1)]);
  await log.close();

  // A new log over the old file: the old records are still in its blocks but belong to another generation.
  const old = readFileSync(file);
  const again = await WriteAheadLog.create(file, 64 * BLOCK, sync, 60_000);
  const fd2 = openSync(file, 'r+');
  writeSync(fd2, old, BLOCK, old.length - BLOCK, BLOCK);
  closeSync(fd2);
  expect(await readLog(file)).toEqual([]);
  await again.close();
});

test('the ring wraps to its start once the oldest records are checkpointed, and refuses a record while it is full', async () => {
  const file = path.join(dir, 'wal');
  // 15 blocks of records; each record here takes 2.
  const log = await WriteAheadLog.create(file, 16 * BLOCK, sync, 60_000);
  const entries = [];
  for (let n = 1; n <= 7; n++) entries.push(log.append(key(n), `/d/${n}`, [data(n)]));
  expect(entries.every((e) => e !== undefined)).toBe(true);
  // 14 of 15 blocks used: the eighth does not fit at the end, and block 1 still holds an unsettled record.
  expect(log.append(key(8), '/d/8', [data(8)])).toBeUndefined();
  for (const e of entries.slice(0, 3)) log.settle(e!);
  await log.checkpoint();
  const wrapped = log.append(key(8), '/d/8', [data(8)]);
  expect(wrapped?.start).toBe(BLOCK);
  await wrapped?.flushed;
  expect((await readLog(file)).map((r) => r.key)).toEqual([4, 5, 6, 7, 8].map(key));
  // A record larger than half the ring never goes to the log.
  expect(log.append(key(9), '/d/9', [Buffer.alloc(8 * BLOCK)])).toBeUndefined();
  for (const e of [...entries.slice(3), wrapped]) log.settle(e!);
  await log.close();
  expect(await readLog(file)).toEqual([]);
});

test('a file that is not a log, or no file, has nothing to replay', async () => {
  const file = path.join(dir, 'wal');
  expect(await readLog(file)).toEqual([]);
  writeFileSync(file, Buffer.alloc(8 * BLOCK, 0x41));
  expect(await readLog(file)).toEqual([]);
});

test('a tombstone voids the record it names: read back with its key and that sequence number, flushed when it resolves, and nothing once the record is checkpointed', async () => {
  const file = path.join(dir, 'wal');
  const log = await WriteAheadLog.create(file, 64 * BLOCK, sync, 60_000);
  const first = log.append(key(1), `/d/${key(1)}`, [data(1)])!;
  const second = log.append(key(2), `/d/${key(2)}`, [data(2)])!;
  await Promise.all([first.flushed, second.flushed]);
  await log.tombstone(first);
  const logged = await readLog(file);
  expect(logged.map((r) => [r.key, r.voids])).toEqual([[key(1), undefined], [key(2), undefined], [key(1), first.seq]]);
  expect(logged[2].data).toHaveLength(0);
  expect(logged[2].seq).toBeGreaterThan(second.seq);
  // The voided record is not replayed; the other one is.
  expect([...toReplay(logged).keys()]).toEqual([key(2)]);

  // A checkpoint that leaves no record behind covers the tombstone too: the log reads back empty.
  log.settle(first);
  log.settle(second);
  await log.checkpoint();
  expect(await readLog(file)).toEqual([]);
  // A record a checkpoint freed is never replayed: voiding it writes nothing.
  await log.tombstone(second);
  expect(await readLog(file)).toEqual([]);
  await log.close();
});

test('of the records of one key, the last that no tombstone voids is replayed; a key whose records are all voided is not', async () => {
  const file = path.join(dir, 'wal');
  const log = await WriteAheadLog.create(file, 64 * BLOCK, sync, 60_000);
  // Key 1: an acknowledged copy, then a resend that failed. Key 2: the other way round. Key 3: one that failed.
  const acknowledged1 = log.append(key(1), '/d/1', [data(1)])!;
  const failed1 = log.append(key(1), '/d/1', [data(11)])!;
  const failed2 = log.append(key(2), '/d/2', [data(2)])!;
  const acknowledged2 = log.append(key(2), '/d/2', [data(22)])!;
  const failed3 = log.append(key(3), '/d/3', [data(3)])!;
  await Promise.all([acknowledged1.flushed, acknowledged2.flushed]);
  for (const entry of [failed1, failed3, failed2]) await log.tombstone(entry);
  const replayed = toReplay(await readLog(file));
  expect([...replayed.keys()].sort()).toEqual([key(1), key(2)]);
  expect(replayed.get(key(1))?.equals(data(1))).toBe(true);
  expect(replayed.get(key(2))?.equals(data(22))).toBe(true);
  // Without the tombstones the last record of each key is replayed, as before.
  const records = (await readLog(file)).filter((r) => r.voids === undefined);
  expect([...toReplay(records).entries()].map(([k, d]) => [k, d[0]])).toEqual([[key(1), 11], [key(2), 22], [key(3), 3]]);
  for (const entry of [acknowledged1, failed1, failed2, acknowledged2, failed3]) log.settle(entry);
  await log.close();
});

test('with no room in the ring for a tombstone a checkpoint frees the record instead; when none can, the tombstone is refused', async () => {
  const file = path.join(dir, 'wal');
  // 15 blocks of records: seven of 2 blocks and one tombstone fill it.
  const log = await WriteAheadLog.create(file, 16 * BLOCK, sync, 60_000);
  const entries = [1, 2, 3, 4, 5, 6, 7].map((n) => log.append(key(n), `/d/${n}`, [data(n)])!);
  await log.tombstone(entries[6]);
  // The ring is full and the oldest record is not settled: no checkpoint frees the record, and it may be replayed.
  await expect(log.tombstone(entries[5])).rejects.toThrow(/no room/);
  expect(toReplay(await readLog(file)).has(key(6))).toBe(true);
  // Once the records before it are settled, the checkpoint frees it: it is not replayed, and nothing was written.
  for (const e of entries) log.settle(e);
  await log.tombstone(entries[5]);
  expect(await readLog(file)).toEqual([]);
  await log.close();
});

test('a tombstone flushes the file at its record\'s path before the record is voided: a replay no longer writes that file, which may be the failed copy placed unflushed over an acknowledged one', async () => {
  const file = path.join(dir, 'wal');
  // Whether the log already held a tombstone when the file was flushed.
  const voidedFirst: boolean[] = [];
  const watching: CheckpointSync = {
    syncFile: async (f) => {
      synced.push(f);
      voidedFirst.push((await readLog(file)).some((r) => r.voids !== undefined));
    },
    syncDir: async () => undefined,
  };
  const log = await WriteAheadLog.create(file, 64 * BLOCK, watching, 60_000);
  const entry = log.append(key(1), `/d/${key(1)}`, [data(1)])!;
  await entry.flushed;
  log.settle(entry);
  await log.tombstone(entry);
  expect(toReplay(await readLog(file)).size).toBe(0);
  expect(synced).toEqual([`/d/${key(1)}`]);
  expect(voidedFirst).toEqual([false]);
  await log.close();
});
