// The instance store on a real file system: in-memory and spilled spools give the same Part 10 file, the watermark
// refuses before anything is written, aborted spools leave no temp file, abandoned temp dirs are swept and live
// ones (another replica's, however idle) are not, and a temp file or dir removed under the store is recovered.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, utimesSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir, hostname } from 'node:os';
import path from 'node:path';
import { GroupSync, InstanceStore, LEASE_FILE, LOG_FILE, LEASE_STALE_MS, TEMP_POOL_SIZE, type Spool } from './instance-store';
import { OutOfDiskError } from './errors';
import { WriteAheadLog, readLog } from './write-ahead-log';

// fsync and fdatasync pass through, noting the path each one flushed: what makes an instance durable is which
// flushes ran before its Success, which no file's contents show.
const mockFlushed: string[] = [];
jest.mock('node:fs', () => {
  const actual = jest.requireActual<typeof import('node:fs')>('node:fs');
  const noting = (sync: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void) => (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    try {
      mockFlushed.push(actual.readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // not a descriptor (the flush fails too)
    }
    sync(fd, cb);
  };
  return { ...actual, fsync: noting(actual.fsync), fdatasync: noting(actual.fdatasync) };
});

let dataDir: string;
beforeEach(() => {
  mockFlushed.length = 0;
  dataDir = mkdtempSync(path.join(tmpdir(), 'nt-store-'));
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

function feed(spool: Spool, chunks: Buffer[]): Promise<void> {
  for (const c of chunks) spool.write(c);
  spool.end();
  return spool.done;
}

async function waitUntil(probe: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !probe(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(probe()).toBe(true);
}

const meta = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from('meta')]);
const chunks = Array.from({ length: 40 }, (_, i) => Buffer.alloc(16 * 1024, i));

test.each([
  ['held in memory', 64 * 1024 * 1024],
  ['spilled to the temp file', 100 * 1024],
])('a data set %s becomes meta + the received bytes under its storage key', async (_label, memoryLimitBytes) => {
  const store = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes });
  await store.init();
  const spool = store.openSpool(meta, false);
  await feed(spool, chunks);
  expect(spool.bytes).toBe(40 * 16 * 1024);
  await store.commit(spool, 'store/1.2/3.4/5.6.dcm');
  const written = readFileSync(path.join(dataDir, 'store/1.2/3.4/5.6.dcm'));
  expect(written.equals(Buffer.concat([meta, ...chunks]))).toBe(true);
  // What is left in the temp dir is the pool's empty files, and close() removes them.
  expect(readdirSync(store.tmpDir).map((f) => statSync(path.join(store.tmpDir, f)).size)).not.toContain(meta.length + spool.bytes);
  expect(readdirSync(store.tmpDir)).toContain(LEASE_FILE);
  await store.close();
  expect(readdirSync(store.tmpDir)).toEqual([]);
});

test('a refusal below the watermark lifts by itself once the disk has room again (no restart)', async () => {
  const store = new InstanceStore({ dataDir, minFreeBytes: 1, memoryLimitBytes: 100 * 1024 });
  await store.init();
  // As if the disk had been full when last read, long enough ago for that figure to be stale; refused C-STOREs
  // never reach ensureSpace(), so only belowWatermark() can notice the space that was freed since.
  (store as unknown as { free: { bytes: number; at: number } }).free = { bytes: 0, at: Date.now() - 60_000 };
  expect(store.belowWatermark()).toBe(true);
  await waitUntil(() => !store.belowWatermark());
  expect(store.lastFreeBytes()).toBeGreaterThan(1);
  await store.close();
});

test('below the watermark nothing is written and the temp file is gone', async () => {
  const store = new InstanceStore({ dataDir, minFreeBytes: Number.MAX_SAFE_INTEGER, memoryLimitBytes: 100 * 1024 });
  await store.init();
  expect(store.belowWatermark()).toBe(true);
  const spool = store.openSpool(meta, false);
  await feed(spool, chunks);
  await expect(store.commit(spool, 'store/1.2/3.4/5.6.dcm')).rejects.toBeInstanceOf(OutOfDiskError);
  expect(existsSync(path.join(dataDir, 'store/1.2'))).toBe(false);
  await store.close();
  expect(readdirSync(store.tmpDir)).toEqual([]);
});

test('an aborted spill removes its temp file', async () => {
  const store = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 20 * 1024 });
  await store.init();
  const spool = store.openSpool(meta, false);
  for (const c of chunks.slice(0, 4)) spool.write(c);
  // The spill opens its temp file on the thread pool and then writes what was held: wait until it has begun writing
  // (the spool then holds the open file) rather than for a fixed time.
  await waitUntil(() => existsSync(spool.tmpPath) && statSync(spool.tmpPath).size > 0);
  expect(existsSync(spool.tmpPath)).toBe(true);
  await spool.abort();
  expect(existsSync(spool.tmpPath)).toBe(false);
  await store.close();
});

test('a spill aborted while its temp file is being opened leaves neither the file nor an open descriptor', async () => {
  const store = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 20 * 1024 });
  await store.init();
  await waitUntil(() => store.pooledTempFiles() === TEMP_POOL_SIZE);
  const openFds = () => readdirSync('/proc/self/fd').length;
  const before = openFds();
  const spool = store.openSpool(meta, false);
  // The second chunk passes the memory limit and starts the spill's open on the thread pool; each write's callback
  // runs once that spill has settled, so they say when the open has finished (an earlier check could see no file
  // and no new descriptor only because the open had not happened yet).
  const settled = Promise.all(chunks.slice(0, 4).map((c) => new Promise<void>((resolve) => spool.write(c, () => resolve()))));
  // Abort before the open can have finished.
  await spool.abort();
  await settled;
  await waitUntil(() => openFds() === before && !existsSync(spool.tmpPath));
  expect(readdirSync(store.tmpDir).filter((f) => f.endsWith('.part')).length).toBe(TEMP_POOL_SIZE);
  await store.close();
});

test('instances take pre-created temp files; a crashed listener\'s unused ones are swept, not counted as instances', async () => {
  const store = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 64 * 1024 * 1024 });
  await store.init();
  await waitUntil(() => store.pooledTempFiles() === TEMP_POOL_SIZE);
  const pooled = new Set(readdirSync(store.tmpDir).filter((f) => f !== LEASE_FILE));
  expect(pooled.size).toBe(TEMP_POOL_SIZE);
  const spool = store.openSpool(meta, false);
  await feed(spool, chunks);
  await store.prepare(spool, 'store/1.2/3.4/5.6.dcm');
  // The instance was written into one of the files created ahead, not a new one.
  expect(pooled.has(path.basename(spool.tmpPath))).toBe(true);
  await store.publish(spool, 'store/1.2/3.4/5.6.dcm');
  expect(readFileSync(path.join(dataDir, 'store/1.2/3.4/5.6.dcm')).equals(Buffer.concat([meta, ...chunks]))).toBe(true);
  await waitUntil(() => store.pooledTempFiles() === TEMP_POOL_SIZE);

  // A listener killed now leaves its pooled files (empty) and a half-received instance in its temp dir.
  const crashed = path.join(dataDir, 'tmp', `${hostname()}-999999999`);
  cpSync(store.tmpDir, crashed, { recursive: true });
  writeFileSync(path.join(crashed, 'half.part'), 'half');
  writeFileSync(path.join(crashed, LEASE_FILE), JSON.stringify({ host: hostname(), pid: 999999999, pidns: readlinkSync('/proc/self/ns/pid') }));
  await store.close();
  const next = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 1024 });
  expect(await next.init()).toEqual({ removedTempFiles: 1, replayedInstances: 0, repairedStudies: [] });
  expect(existsSync(crashed)).toBe(false);
  // The store holds only the acknowledged instance.
  expect(readdirSync(path.join(dataDir, 'store/1.2/3.4'))).toEqual(['5.6.dcm']);
  await next.close();
});

test('init sweeps temp dirs of dead processes on this host and keeps live ones', async () => {
  const dead = path.join(dataDir, 'tmp', `${hostname()}-999999999`);
  const live = path.join(dataDir, 'tmp', `${hostname()}-${process.ppid}`);
  for (const d of [dead, live]) {
    mkdirSync(d, { recursive: true });
    writeFileSync(path.join(d, 'x.part'), 'half');
  }
  const store = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 1024 });
  expect(await store.init()).toEqual({ removedTempFiles: 1, replayedInstances: 0, repairedStudies: [] });
  expect(existsSync(dead)).toBe(false);
  expect(existsSync(live)).toBe(true);
  await store.close();
});

/** Sets a file's or dir's times `ms` in the past. */
function age(p: string, ms: number): void {
  const t = new Date(Date.now() - ms);
  utimesSync(p, t, t);
}

test('another host\'s temp dir is kept while its lease is fresh, however old its files, and swept once the lease is stale', async () => {
  // A replica on another host: idle for two hours, but alive (it renews its lease).
  const idle = path.join(dataDir, 'tmp', 'other-host-1');
  const gone = path.join(dataDir, 'tmp', 'gone-host-1');
  for (const d of [idle, gone]) {
    mkdirSync(d, { recursive: true });
    writeFileSync(path.join(d, 'pooled.part'), '');
    writeFileSync(path.join(d, 'half.part'), 'half');
    writeFileSync(path.join(d, LEASE_FILE), JSON.stringify({ host: d.endsWith('other-host-1') ? 'other-host' : 'gone-host', pid: 1, pidns: 'pid:[1]' }));
    for (const f of readdirSync(d)) age(path.join(d, f), 2 * 3600_000);
    age(d, 2 * 3600_000);
  }
  utimesSync(path.join(idle, LEASE_FILE), new Date(), new Date());
  age(path.join(gone, LEASE_FILE), LEASE_STALE_MS + 60_000);
  const store = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 1024 * 1024, instanceName: 'this-host-1' });
  expect(await store.init()).toEqual({ removedTempFiles: 1, replayedInstances: 0, repairedStudies: [] });
  expect(readdirSync(idle).sort()).toEqual([LEASE_FILE, 'half.part', 'pooled.part'].sort());
  expect(existsSync(gone)).toBe(false);
  await store.close();
});

test('a temp dir removed under a running store is taken again: the instance in flight and the next ones are stored', async () => {
  const store = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 64 * 1024 * 1024 });
  await store.init();
  await waitUntil(() => store.pooledTempFiles() === TEMP_POOL_SIZE);
  // Removed between the fsync of the temp file and its rename (what a sweeping replica did in issue 15).
  const first = store.openSpool(meta, false);
  await feed(first, chunks);
  await store.prepare(first, 'store/1.2/3.4/1.dcm');
  rmSync(store.tmpDir, { recursive: true, force: true });
  await store.publish(first, 'store/1.2/3.4/1.dcm');
  // Removed before the next instance: its pooled temp file is gone too.
  rmSync(store.tmpDir, { recursive: true, force: true });
  const second = store.openSpool(meta, false);
  await feed(second, chunks);
  await store.commit(second, 'store/1.2/3.4/2.dcm');
  for (const name of ['1.dcm', '2.dcm']) {
    expect(readFileSync(path.join(dataDir, 'store/1.2/3.4', name)).equals(Buffer.concat([meta, ...chunks]))).toBe(true);
  }
  expect(existsSync(path.join(store.tmpDir, LEASE_FILE))).toBe(true);
  await store.close();
});

test('a spilled instance whose temp file is removed before its rename fails alone, as retryable', async () => {
  const store = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 100 * 1024 });
  await store.init();
  const spool = store.openSpool(meta, false);
  await feed(spool, chunks);
  await store.prepare(spool, 'store/1.2/3.4/1.dcm');
  rmSync(store.tmpDir, { recursive: true, force: true });
  await expect(store.publish(spool, 'store/1.2/3.4/1.dcm')).rejects.toMatchObject({ name: 'TempFileLostError', retryable: true });
  const next = store.openSpool(meta, false);
  await feed(next, chunks);
  await store.commit(next, 'store/1.2/3.4/2.dcm');
  expect(readdirSync(path.join(dataDir, 'store/1.2/3.4'))).toEqual(['2.dcm']);
  await store.close();
});

test('directory fsyncs are group-committed: callers during one fsync share the next, none rides on one that began before it', async () => {
  const started: Array<{ key: string; done: () => void }> = [];
  const group = new GroupSync((key) => new Promise<void>((resolve) => started.push({ key, done: resolve })));
  const settled: string[] = [];
  const track = (name: string, p: Promise<void>) => p.then(() => settled.push(name));
  const first = track('first', group.sync('d'));
  const waiting = ['a', 'b', 'c', 'd'].map((n) => track(n, group.sync('d')));
  const other = track('other', group.sync('e'));
  expect(started.map((s) => s.key)).toEqual(['d', 'e']);
  started[0].done();
  await first;
  await new Promise((r) => setImmediate(r));
  // One more fsync for the four that came while the first ran; they have not settled on the first.
  expect(started.map((s) => s.key)).toEqual(['d', 'e', 'd']);
  expect(settled).toEqual(['first']);
  const late = track('late', group.sync('d'));
  started[2].done();
  await Promise.all(waiting);
  await new Promise((r) => setImmediate(r));
  expect(started).toHaveLength(4);
  started[3].done();
  started[1].done();
  await Promise.all([late, other]);
  expect(settled.sort()).toEqual(['a', 'b', 'c', 'd', 'first', 'late', 'other']);
});

describe('with the write-ahead log', () => {
  const logBytes = 4 * 1024 * 1024;
  const key = 'store/1.2/3.4/5.6.dcm';
  const expected = () => Buffer.concat([meta, ...chunks]);

  async function storeOne(instanceName: string): Promise<InstanceStore> {
    // A checkpoint an hour away: the process "crashes" before its instance's own file is flushed.
    const store = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 64 * 1024 * 1024, logBytes, logCheckpointDelayMs: 3600_000, instanceName });
    await store.init();
    const spool = store.openSpool(meta, false);
    await feed(spool, chunks);
    await store.commit(spool, key);
    expect(readFileSync(path.join(dataDir, key)).equals(expected())).toBe(true);
    return store;
  }

  test('an instance whose own file was lost after its Success is written again from the log when the listener restarts', async () => {
    const crashed = await storeOne('restarting-1');
    // What a power cut can do to a file and directory entry that were never flushed.
    rmSync(path.join(dataDir, key));
    const restarted = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 1024, logBytes, instanceName: 'restarting-1' });
    expect(await restarted.init()).toEqual({ removedTempFiles: 0, replayedInstances: 1, repairedStudies: ['1.2'] });
    expect(readFileSync(path.join(dataDir, key)).equals(expected())).toBe(true);
    // Replayed once: the restarted listener's new log holds nothing of it, and a clean stop leaves an empty temp dir.
    await restarted.close();
    expect(readdirSync(restarted.tmpDir)).toEqual([]);
    await crashed.close();
  });

  test('a restart after a kill (the file intact in the store) flushes it where it is and repairs nothing', async () => {
    const crashed = await storeOne('killed-1');
    const restarted = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 1024, logBytes, instanceName: 'killed-1' });
    expect(await restarted.init()).toEqual({ removedTempFiles: 0, replayedInstances: 1, repairedStudies: [] });
    expect(readFileSync(path.join(dataDir, key)).equals(expected())).toBe(true);
    await restarted.close();
    await crashed.close();
  });

  test('of two records of one key only the last is replayed: a file holding it repairs nothing', async () => {
    const dead = path.join(dataDir, 'tmp', 'gone-host-2');
    mkdirSync(dead, { recursive: true });
    const log = await WriteAheadLog.create(path.join(dead, LOG_FILE), logBytes, { syncFile: async () => undefined, syncDir: async () => undefined }, 3600_000);
    await log.append(key, path.join(dataDir, key), [Buffer.from('first copy')])?.flushed;
    await log.append(key, path.join(dataDir, key), [expected()])?.flushed;
    await log.close();
    mkdirSync(path.dirname(path.join(dataDir, key)), { recursive: true });
    writeFileSync(path.join(dataDir, key), expected());
    writeFileSync(path.join(dead, LEASE_FILE), JSON.stringify({ host: 'gone-host', pid: 1, pidns: 'pid:[1]' }));
    age(path.join(dead, LEASE_FILE), LEASE_STALE_MS + 60_000);
    const other = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 1024, logBytes, instanceName: 'this-host-1' });
    expect(await other.init()).toEqual({ removedTempFiles: 0, replayedInstances: 1, repairedStudies: [] });
    expect(readFileSync(path.join(dataDir, key)).equals(expected())).toBe(true);
    await other.close();
  });

  test("a dead replica's logged instances are written into the store before its temp dir is swept", async () => {
    const crashed = await storeOne('gone-host-1');
    // Named but empty: what ext4's delayed allocation leaves of a file renamed and never flushed before a power cut.
    writeFileSync(path.join(dataDir, key), '');
    writeFileSync(path.join(crashed.tmpDir, LEASE_FILE), JSON.stringify({ host: 'gone-host', pid: 1, pidns: 'pid:[1]' }));
    age(path.join(crashed.tmpDir, LEASE_FILE), LEASE_STALE_MS + 60_000);
    const other = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 1024, logBytes, instanceName: 'this-host-1' });
    expect(await other.init()).toEqual({ removedTempFiles: 0, replayedInstances: 1, repairedStudies: ['1.2'] });
    expect(readFileSync(path.join(dataDir, key)).equals(expected())).toBe(true);
    expect(existsSync(crashed.tmpDir)).toBe(false);
    await other.close();
  });

  test('a checkpoint empties the log; a spilled instance is stored the usual way', async () => {
    const store = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 100 * 1024, logBytes, logCheckpointDelayMs: 1, instanceName: 'one-1' });
    await store.init();
    const held = store.openSpool(meta, false);
    await feed(held, chunks.slice(0, 4));
    await store.commit(held, 'store/1.2/3.4/1.dcm');
    const spilled = store.openSpool(meta, false);
    await feed(spilled, chunks);
    await store.commit(spilled, 'store/1.2/3.4/2.dcm');
    await waitUntil(() => existsSync(path.join(store.tmpDir, 'instances.wal')));
    for (let i = 0; i < 200 && (await readLog(path.join(store.tmpDir, 'instances.wal'))).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await readLog(path.join(store.tmpDir, 'instances.wal'))).toEqual([]);
    expect(readFileSync(path.join(dataDir, 'store/1.2/3.4/1.dcm')).equals(Buffer.concat([meta, ...chunks.slice(0, 4)]))).toBe(true);
    expect(readFileSync(path.join(dataDir, 'store/1.2/3.4/2.dcm')).equals(expected())).toBe(true);
    await store.close();
  });

  test("a study that retention removed before the checkpoint does not stop the log's checkpoints, nor come back at restart", async () => {
    const errors: Error[] = [];
    const store = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 64 * 1024 * 1024, logBytes, logCheckpointDelayMs: 3600_000, instanceName: 'purge-1', onLogError: (err) => errors.push(err) });
    await store.init();
    const spool = store.openSpool(meta, false);
    await feed(spool, chunks);
    await store.commit(spool, key);
    // Retention deletes the study's folder (a C-STORE during the purge is answered A700 and its file removed).
    rmSync(path.join(dataDir, 'store/1.2'), { recursive: true });
    await store.close();
    expect(errors).toEqual([]);
    expect(existsSync(path.join(store.tmpDir, 'instances.wal'))).toBe(false);
    const restarted = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 1024, logBytes, instanceName: 'purge-1' });
    expect(await restarted.init()).toEqual({ removedTempFiles: 0, replayedInstances: 0, repairedStudies: [] });
    expect(existsSync(path.join(dataDir, 'store/1.2'))).toBe(false);
    await restarted.close();
  });

  test('a restart whose replay fails keeps the log, and the next restart replays it', async () => {
    const crashed = await storeOne('restarting-1');
    rmSync(path.join(dataDir, 'store/1.2'), { recursive: true });
    // Something in the way of the instance's directory (any replay failure: a full disk, a read-only volume).
    writeFileSync(path.join(dataDir, 'store/1.2'), 'in the way');
    const failed = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 1024, logBytes, instanceName: 'restarting-1' });
    await expect(failed.init()).rejects.toThrow();
    rmSync(path.join(dataDir, 'store/1.2'));
    const restarted = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 1024, logBytes, instanceName: 'restarting-1' });
    expect(await restarted.init()).toEqual({ removedTempFiles: 0, replayedInstances: 1, repairedStudies: ['1.2'] });
    expect(readFileSync(path.join(dataDir, key)).equals(expected())).toBe(true);
    await restarted.close();
    await crashed.close();
  });

  test('an instance logged just before its temp dir was found removed (and the log with it) is flushed the usual way before Success', async () => {
    const store = new InstanceStore({ dataDir, minFreeBytes: 0, memoryLimitBytes: 64 * 1024 * 1024, logBytes, logCheckpointDelayMs: 3600_000, instanceName: 'lost-1' });
    await store.init();
    await waitUntil(() => store.pooledTempFiles() === TEMP_POOL_SIZE);
    rmSync(store.tmpDir, { recursive: true, force: true });
    const spool = store.openSpool(meta, false);
    await feed(spool, chunks);
    mockFlushed.length = 0;
    await store.commit(spool, key);
    expect(readFileSync(path.join(dataDir, key)).equals(expected())).toBe(true);
    // Its record went to the removed log file, which no restart reads: its own file and directory were flushed.
    expect(await readLog(path.join(store.tmpDir, 'instances.wal'))).toEqual([]);
    expect(mockFlushed).toContain(path.join(dataDir, key));
    expect(mockFlushed).toContain(path.join(dataDir, 'store/1.2/3.4'));
    await store.close();
  });
});
