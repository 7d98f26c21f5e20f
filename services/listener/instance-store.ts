// Where received instances go and how they become durable: each C-STORE's bytes are spooled (in memory up to a
// limit, then into a temp file under DATA_DIR/tmp), then written as a Part 10 file, fsynced, renamed into
// DATA_DIR/store/<Study>/<Series>/<SOP>.dcm and the directory fsynced. Free disk below the watermark refuses the
// instance before anything reaches the store; a failed or aborted instance leaves no temp file behind (one that a
// read-only file system keeps is removed after the next stored instance). Empty temp files are created ahead of
// need (TempFilePool) so that creating one is not on the C-STORE response path.
// Several listeners may share DATA_DIR (replicas on one volume): each owns DATA_DIR/tmp/<name>/ and keeps a lease
// file in it fresh, and a temp dir is swept only when its owner is known dead or its lease has gone stale.
import { Writable } from 'node:stream';
import {
  promises as fsp,
  constants as fsConstants,
  existsSync,
  mkdirSync,
  open,
  openSync,
  readlinkSync,
  writevSync,
  closeSync,
  renameSync,
  unlinkSync,
  fdatasync,
  fsync,
} from 'node:fs';
import { promisify } from 'node:util';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { OutOfDiskError, TempFileLostError } from './errors';
import { fsyncDir, writeAllSync } from './sync-io';
import { WriteAheadLog, readLog, toReplay, type LogEntry, type LoggedInstance } from './write-ahead-log';

export interface InstanceStoreOptions {
  /** Absolute DATA_DIR. */
  dataDir: string;
  /** This listener's temp dir name under DATA_DIR/tmp; default <hostname>-<pid>. */
  instanceName?: string;
  /** DISK_MIN_FREE_MB in bytes. */
  minFreeBytes: number;
  /** Data sets up to this size stay in memory until commit (one write call); larger ones stream to the temp file. */
  memoryLimitBytes: number;
  /**
   * DICOM_WAL_MB in bytes: the write-ahead log (write-ahead-log.ts) that an instance held in memory is flushed to
   * before Success instead of flushing its own file and directory. 0 or absent: no log.
   */
  logBytes?: number;
  /** How long after an instance is stored its file is flushed by a checkpoint (default 200 ms; tests stretch it). */
  logCheckpointDelayMs?: number;
  /** Told when flushing logged instances' files fails (they stay in the log and are tried again). */
  onLogError?: (err: Error) => void;
  /**
   * Told of the studies whose files a replay found missing or different from the log (a power cut before the
   * checkpoint): a worker may have read them meanwhile, so they are scored again. At init() they are returned instead.
   */
  onRepaired?: (studies: string[]) => void;
}

const FREE_CACHE_MS = 250;
/**
 * How often the free-space figure is re-read without any C-STORE asking: the gauge follows the disk on an idle
 * listener, and a refusal below the watermark lifts by itself once space is freed (retention, an admin).
 */
export const FREE_REFRESH_MS = 5_000;
const fdatasyncAsync = promisify(fdatasync);
const fsyncAsync = promisify(fsync);
const openAsync = promisify(open);
/** Open directory descriptors kept for fsync after rename (a study's series directories are reused per instance). */
const DIR_FD_CACHE = 64;
const TMP_DIR = 'tmp';
/**
 * Empty temp files kept open ahead of need. One association uses one per instance and the pool refills in the
 * background, so a few cover many concurrent associations; when it runs dry a spool opens its own (as before).
 */
export const TEMP_POOL_SIZE = 8;

/** An empty temp file, already created and open for writing. */
export interface TempFile {
  path: string;
  fd: number;
}

/**
 * Temp file names: a random prefix drawn once per store and a counter. The directory belongs to this process and
 * files are opened with O_EXCL, so the counter is enough; a random name per file cost ~30 us of the response path.
 */
function tempNames(): () => string {
  const prefix = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  let n = 0;
  return () => `${prefix}-${(n += 1).toString(36)}.part`;
}

/**
 * Creates temp files on the thread pool before they are needed. Creating a file allocates an inode, which on ext4
 * costs ~0.05 ms, and ~0.5 ms of kernel time for a while after many files were deleted (the allocator skips
 * inodes freed in the last ~30 s); done inside the response path it was the largest single cost per instance.
 * Files it holds are empty and live only in this process's temp dir, which init() sweeps after a crash.
 */
export class TempFilePool {
  private readonly ready: TempFile[] = [];
  private opening = 0;
  private closed = false;
  private readonly pendingOpens = new Set<Promise<void>>();

  constructor(
    private readonly dir: string,
    private readonly size: number,
    private readonly nextName: () => string,
  ) {}

  /**
   * An open empty temp file, or undefined when none is ready (the caller then creates its own). Refilling is left
   * to the caller's fill() after its flushes: a create holds an ext4 journal handle, and one running beside an
   * fsync makes that fsync's journal commit wait for it.
   */
  take(): TempFile | undefined {
    const file = this.ready.pop();
    if (this.ready.length === 0) this.fill();
    return file;
  }

  /** Starts creating files until `size` are ready or on their way. */
  fill(): void {
    while (!this.closed && this.ready.length + this.opening < this.size) {
      this.opening += 1;
      const file = path.join(this.dir, this.nextName());
      const op = openAsync(file, 'wx', 0o640).then(
        (fd) => {
          if (this.closed) discardTemp({ path: file, fd });
          else this.ready.push({ path: file, fd });
        },
        // A full disk or a removed dir: spools open their own file and report the error; the next take() retries.
        () => undefined,
      );
      const tracked = op.finally(() => {
        this.opening -= 1;
        this.pendingOpens.delete(tracked);
      });
      this.pendingOpens.add(tracked);
    }
  }

  /** Files ready now (for tests and metrics). */
  readyCount(): number {
    return this.ready.length;
  }

  /** Stops refilling, waits for opens in flight, then closes and removes every unused file. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.pendingOpens.size > 0) await Promise.allSettled([...this.pendingOpens]);
    for (const file of this.ready.splice(0)) discardTemp(file);
  }
}

function discardTemp(file: TempFile): void {
  closeQuietly(file.fd);
  try {
    unlinkSync(file.path);
  } catch {
    // already gone (the temp dir was swept)
  }
}

/** Sees each fragment of a data set as it arrives (dataset-check.ts walks the structure this way). */
export interface ChunkInspector {
  write(chunk: Buffer): void;
}

/**
 * A Writable that dcmjs-dimse feeds with the data set's P-DATA fragments as they arrive. It never parses them;
 * an inspector, when given, sees each one on the way. Writes complete synchronously while in memory, so the
 * network layer is never held back by it.
 */
export class Spool extends Writable {
  /** Data set bytes received so far. */
  bytes = 0;
  private chunks: Buffer[] = [];
  private file: FileHandle | undefined;
  private aborted = false;
  readonly done: Promise<void>;
  private tmp: string;
  /**
   * The write-ahead log record of this instance, when prepare() logged it; kept once settled, so that an instance
   * not acknowledged after all can void it (InstanceStore.unacknowledged()).
   */
  logEntry: LogEntry | undefined;

  constructor(
    /** Preamble + File Meta Information, written before the data set. */
    readonly meta: Buffer,
    /** Where the temp file goes unless a pooled one is taken. */
    tmpPath: string,
    private readonly memoryLimitBytes: number,
    /** Count bytes but keep none (a storage class we accept and ignore, or an instance already refused). */
    readonly discard: boolean,
    /** Pre-created temp files; the usual in-memory spool takes one at commit instead of creating its own. */
    private readonly takeTemp: () => TempFile | undefined = () => undefined,
    private readonly inspector?: ChunkInspector,
    /** Told of a temp file that could not be removed (a read-only file system), to remove it later. */
    private readonly onUnremoved?: (tmpPath: string) => void,
  ) {
    super({ highWaterMark: 1024 * 1024 });
    this.tmp = tmpPath;
    this.done = new Promise<void>((resolve, reject) => {
      this.once('finish', resolve);
      this.once('error', reject);
      this.once('close', () => {
        if (this.aborted) reject(new Error('spool aborted'));
      });
    });
    // Callers await `done`; an abort without a waiter must not become an unhandled rejection.
    this.done.catch(() => undefined);
  }

  /** The temp file's path (a pooled file's once writeTempFile() took one). */
  get tmpPath(): string {
    return this.tmp;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.bytes += chunk.length;
    // A discarded data set may still be walked (a C-STORE refused 0122 is read for its study and series only).
    this.inspector?.write(chunk);
    if (this.discard) return callback();
    // A disk that fills while a spilled data set streams in is OutOfDiskError, as it is at commit.
    const failed = (err: unknown) => callback(diskError(err) as Error);
    if (this.file) {
      this.file.write(chunk).then(() => callback(), failed);
      return;
    }
    this.chunks.push(chunk);
    if (this.bytes <= this.memoryLimitBytes) return callback();
    // Too big to hold: move what we have to the temp file and stream the rest there.
    this.spill().then(() => callback(), failed);
  }

  private async spill(): Promise<void> {
    const file = await fsp.open(this.tmpPath, 'wx', 0o640);
    if (this.aborted) {
      // abort() ran while the file was being created: its removeTemp() had no handle to close and its rm may have
      // come first, so this open's handle and file are ours to drop.
      await file.close().catch(() => undefined);
      await fsp.rm(this.tmpPath, { force: true });
      throw new Error('spool aborted');
    }
    this.file = file;
    await writeAll(file, [this.meta, ...this.chunks]);
    this.chunks = [];
  }

  /** The full Part 10 file as the buffers held in memory; undefined once spilled to the temp file. */
  heldBuffers(): Buffer[] | undefined {
    return this.canRewrite() ? [this.meta, ...this.chunks] : undefined;
  }

  /** Makes the temp file hold the full Part 10 file, fsynced and closed (unsynced when `flush` is false). */
  async writeTempFile(flush = true): Promise<void> {
    const file = this.file;
    if (file) {
      // Spilled: the file already holds everything; only the fsync is left.
      await file.datasync();
      await file.close();
      this.file = undefined;
      return;
    }
    // In memory (the usual case): the file was created ahead by the pool; write and close go to the page cache in
    // microseconds, so they run synchronously instead of paying a thread-pool round trip each; only the fsync
    // waits on the disk. With the pool dry, create the file here.
    const pooled = this.takeTemp();
    if (pooled) this.tmp = pooled.path;
    await this.writeHeld(pooled ? pooled.fd : openSync(this.tmp, 'wx', 0o640), flush);
  }

  /** Writes meta + the chunks held in memory to `fd`, fdatasyncs (unless `flush` is false) and closes it. */
  private async writeHeld(fd: number, flush = true): Promise<void> {
    try {
      // The chunks stay until release(): if the temp file is lost before its rename, rewriteTemp() writes it again.
      writeAllSync(fd, [this.meta, ...this.chunks]);
      if (flush) await fdatasyncAsync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** True while the data set is still held in memory (not spilled), so a lost temp file can be written again. */
  canRewrite(): boolean {
    return this.file === undefined && this.chunks.length > 0 && !this.aborted;
  }

  /** Writes the temp file again from memory, at a new path (its old directory may have been removed). */
  async rewriteTemp(tmpPath: string): Promise<void> {
    this.tmp = tmpPath;
    await this.writeHeld(openSync(tmpPath, 'wx', 0o640), this.logEntry === undefined);
  }

  /** The data set is in the store: drop the copy held in memory. */
  release(): void {
    this.chunks = [];
  }

  /** Stops the spool and removes its temp file, whatever state it is in. Safe to call more than once. */
  async abort(): Promise<void> {
    this.aborted = true;
    this.chunks = [];
    if (!this.destroyed) this.destroy();
    await this.removeTemp();
  }

  /**
   * Never throws: the caller is answering another failure, whose error must be the one reported. A file that cannot
   * be removed now (the file system turned read-only) goes to onUnremoved, which removes it once it can.
   */
  async removeTemp(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    if (file) await file.close().catch(() => undefined);
    const tmp = this.tmpPath;
    await fsp.rm(tmp, { force: true }).catch(() => this.onUnremoved?.(tmp));
  }
}

async function writeAll(file: FileHandle, buffers: Buffer[]): Promise<void> {
  // One writev for the usual few fragments; a single buffer when there are many (IOV_MAX is 1024 on Linux).
  let pending = buffers.length > 256 ? [Buffer.concat(buffers)] : buffers;
  while (pending.length > 0) {
    const { bytesWritten } = await file.writev(pending);
    let left = bytesWritten;
    while (pending.length > 0 && left >= pending[0].length) {
      left -= pending[0].length;
      pending = pending.slice(1);
    }
    if (left > 0) pending = [pending[0].subarray(left), ...pending.slice(1)];
  }
}

export class InstanceStore {
  readonly tmpDir: string;
  private free: { bytes: number; at: number } | undefined;
  private readonly knownDirs = new Set<string>();
  private pool: TempFilePool | undefined;
  private readonly nextTempName = tempNames();

  private heartbeat: NodeJS.Timeout | undefined;
  /** The heartbeat's lease renewal and sweep of abandoned temp dirs, while one runs. */
  private sweeping: Promise<void> | undefined;
  /** Temp files of failed instances that could not be removed then; tried again after each stored instance and lease renewal. */
  private readonly unremoved = new Set<string>();
  private freeTimer: NodeJS.Timeout | undefined;
  private freeRefresh: Promise<number> | undefined;
  private log: WriteAheadLog | undefined;
  /**
   * Our temp dir was removed under us, and the log with it: records appended to the removed file would not survive
   * a crash, so no more are (the log's open records are still checkpointed).
   */
  private logLost = false;
  /** Instances between the choice of how to flush them (prepare) and the end of their flushes (syncPlaced). */
  private readonly flushing = new Set<Spool>();

  constructor(private readonly options: InstanceStoreOptions) {
    this.tmpDir = path.join(options.dataDir, TMP_DIR, options.instanceName ?? `${hostname()}-${process.pid}`);
  }

  /**
   * Creates DATA_DIR/tmp and DATA_DIR/store, removes temp files a killed process left behind, takes this
   * listener's lease and starts the temp file pool. removedTempFiles counts the non-empty ones (instances that were
   * never acknowledged); a stopped process's unused pooled files are empty and are removed without being counted.
   * The lease is refreshed, and other listeners' abandoned temp dirs swept, every LEASE_REFRESH_MS from then on.
   * Before a temp dir goes, the instances its write-ahead log holds past its last checkpoint are written into the
   * store (replayedInstances): each was flushed there before its Success, and its own file may not have been.
   * repairedStudies are those where a file was missing or not what the log holds.
   */
  async init(): Promise<{ removedTempFiles: number; replayedInstances: number; repairedStudies: string[]; logUnavailable?: string }> {
    await fsp.mkdir(path.join(this.options.dataDir, 'store'), { recursive: true });
    // Our own dir from a previous run under the same name (a restarted container keeps its hostname and pid 1).
    const ownLogged = await readLog(path.join(this.tmpDir, LOG_FILE));
    let removedTempFiles = await countNonEmpty(this.tmpDir);
    // The old dir (and its log) goes only once its instances are in the store: a replay that fails (a full disk) or
    // is cut short leaves them to the next start. Its lease is ours first, so no other listener sweeps it meanwhile.
    this.ensureTmpDir();
    const own = await this.replay(ownLogged);
    let replayedInstances = own.replayed;
    const repaired = new Set(own.repaired);
    await fsp.rm(this.tmpDir, { recursive: true, force: true });
    this.ensureTmpDir();
    const swept = await this.sweepAbandoned();
    removedTempFiles += swept.removed;
    replayedInstances += swept.replayed;
    for (const uid of swept.repaired) repaired.add(uid);
    await this.refreshFree();
    let logUnavailable: string | undefined;
    if (this.options.logBytes) {
      const file = path.join(this.tmpDir, LOG_FILE);
      try {
        this.log = await WriteAheadLog.create(file, this.options.logBytes, {
          syncFile: syncFileIfPresent,
          // A directory removed meanwhile (retention deleting the study) holds nothing left to flush; failing on it
          // would fail every later checkpoint too (they start at the same record), and replay the study at restart.
          syncDir: (dir) => this.dirSyncs.sync(dir).catch(ignoreMissing),
          onError: this.options.onLogError,
        }, this.options.logCheckpointDelayMs);
        // Our temp dir and DATA_DIR/tmp may be new (a first start, a new pod name): their names are the log's path.
        await fsyncDir(path.dirname(this.tmpDir));
        await fsyncDir(this.options.dataDir);
      } catch (err) {
        // No room for it (a small volume): every instance flushes its own file, as with DICOM_WAL_MB=0.
        logUnavailable = (err as Error).message;
        await fsp.rm(file, { force: true });
      }
    }
    this.pool = new TempFilePool(this.tmpDir, TEMP_POOL_SIZE, this.nextTempName);
    this.pool.fill();
    this.heartbeat = setInterval(() => {
      this.removeUnremoved();
      // One sweep at a time (a long replay must not be started again beside itself); close() waits for it, so a
      // dead replica's repaired studies are handed on while the listener can still schedule them.
      if (this.sweeping) return;
      this.sweeping = this.renewLease()
        .then(() => this.sweepAbandoned())
        .then((swept) => {
          if (swept.repaired.length > 0) this.options.onRepaired?.(swept.repaired);
        })
        .catch(() => undefined)
        .finally(() => {
          this.sweeping = undefined;
        });
    }, LEASE_REFRESH_MS);
    this.heartbeat.unref();
    this.freeTimer = setInterval(() => this.refreshFreeSoon(), FREE_REFRESH_MS);
    this.freeTimer.unref();
    return { removedTempFiles, replayedInstances, repairedStudies: [...repaired], ...(logUnavailable ? { logUnavailable } : {}) };
  }

  /** Our temp dir was found removed: take it again, without the log that went with it. */
  private tempDirLost(): void {
    if (this.log && !existsSync(path.join(this.tmpDir, LOG_FILE))) this.logLost = true;
    this.ensureTmpDir();
  }

  /** (Re)creates this listener's temp dir and lease; cheap when both exist. */
  private ensureTmpDir(): void {
    mkdirSync(this.tmpDir, { recursive: true });
    writeLease(this.tmpDir);
  }

  private async renewLease(): Promise<void> {
    const lease = path.join(this.tmpDir, LEASE_FILE);
    const now = new Date();
    try {
      await fsp.utimes(lease, now, now);
    } catch {
      // Our dir or lease was removed under us: take it again, so the pool and the next spools have a dir.
      this.tempDirLost();
      this.pool?.fill();
    }
  }

  /**
   * Removes the temp dirs of other listeners that are gone, after writing what their logs hold into the store;
   * counts their non-empty temp files (never acknowledged) and the instances replayed.
   */
  private async sweepAbandoned(): Promise<{ removed: number; replayed: number; repaired: string[] }> {
    const root = path.dirname(this.tmpDir);
    let removed = 0;
    let replayed = 0;
    const repaired: string[] = [];
    for (const entry of await fsp.readdir(root).catch(() => [] as string[])) {
      const dir = path.join(root, entry);
      if (dir === this.tmpDir || !(await isAbandoned(dir, entry))) continue;
      const done = await this.replay(await readLog(path.join(dir, LOG_FILE)));
      replayed += done.replayed;
      repaired.push(...done.repaired);
      removed += await countNonEmpty(dir);
      await fsp.rm(dir, { recursive: true, force: true });
    }
    return { removed, replayed, repaired: [...new Set(repaired)] };
  }

  /**
   * Writes logged instances into the store the way an unlogged one is written (temp file, fdatasync, rename,
   * directory fsync). Of several records of one key the last is what its C-STORE left, so only it is written; a
   * record a tombstone voids (its instance was not acknowledged) is never written, nor is its file touched (toReplay).
   * A file already holding the record's bytes is flushed where it is; the studies of the others are `repaired`.
   */
  private async replay(logged: LoggedInstance[]): Promise<{ replayed: number; repaired: string[] }> {
    const repaired = new Set<string>();
    const last = toReplay(logged);
    for (const [key, data] of last) {
      const finalPath = path.join(this.options.dataDir, key);
      const current = await fsp.readFile(finalPath).catch(() => undefined);
      if (current?.equals(data)) {
        await syncFileIfPresent(finalPath);
        await fsyncDir(path.dirname(finalPath));
        continue;
      }
      repaired.add(key.split('/')[1]);
      await this.ensureDir(path.dirname(finalPath));
      const tmp = path.join(this.tmpDir, this.nextTempName());
      const fd = openSync(tmp, 'wx', 0o640);
      try {
        writeAllSync(fd, [data]);
        await fdatasyncAsync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, finalPath);
      await fsyncDir(path.dirname(finalPath));
    }
    return { replayed: last.size, repaired: [...repaired] };
  }

  /** For /readyz: the store and this listener's temp dir exist and may be written. */
  async writable(): Promise<void> {
    await fsp.access(path.join(this.options.dataDir, 'store'), fsConstants.W_OK);
    await fsp.access(this.tmpDir, fsConstants.W_OK);
  }

  /** Last known free bytes on DATA_DIR's file system (for the metrics gauge). */
  lastFreeBytes(): number | undefined {
    return this.free?.bytes;
  }

  private async refreshFree(): Promise<number> {
    const s = await fsp.statfs(this.options.dataDir);
    const bytes = Number(s.bavail) * Number(s.bsize);
    this.free = { bytes, at: Date.now() };
    return bytes;
  }

  /** Re-reads the free space in the background, one read at a time; a failed read keeps the last figure. */
  private refreshFreeSoon(): void {
    if (this.freeRefresh) return;
    this.freeRefresh = this.refreshFree().finally(() => {
      this.freeRefresh = undefined;
    });
    this.freeRefresh.catch(() => undefined);
  }

  /** Throws OutOfDiskError when storing `incomingBytes` more would leave less than the watermark free. */
  async ensureSpace(incomingBytes: number): Promise<void> {
    const cached = this.free;
    const free = cached && Date.now() - cached.at < FREE_CACHE_MS ? cached.bytes : await this.refreshFree();
    if (free - incomingBytes < this.options.minFreeBytes) {
      // Re-read before refusing so a burst on a stale cache does not refuse needlessly.
      const fresh = cached && cached === this.free ? await this.refreshFree() : free;
      if (fresh - incomingBytes < this.options.minFreeBytes) {
        throw new OutOfDiskError('free disk below DISK_MIN_FREE_MB');
      }
    }
  }

  /**
   * Cheap synchronous check from the cached figure, used before the first fragment is kept. A refused instance
   * never reaches ensureSpace(), so a stale figure is re-read here in the background: the next instance (the
   * PACS's retry) sees the disk as it is now, not as it was when the refusals began.
   */
  belowWatermark(): boolean {
    const free = this.free;
    if (free === undefined || free.bytes >= this.options.minFreeBytes) return false;
    if (Date.now() - free.at >= FREE_CACHE_MS) this.refreshFreeSoon();
    return true;
  }

  openSpool(meta: Buffer, discard: boolean, inspector?: ChunkInspector): Spool {
    const pool = this.pool;
    return new Spool(meta, path.join(this.tmpDir, this.nextTempName()), this.options.memoryLimitBytes, discard, () => pool?.take(), inspector, (tmp) => this.unremoved.add(tmp));
  }

  /** Pooled temp files ready now. */
  pooledTempFiles(): number {
    return this.pool?.readyCount() ?? 0;
  }

  /** Whether a file exists at the storage key (relative to DATA_DIR); one stat, answered from the inode cache. */
  isStored(storageKey: string): boolean {
    return existsSync(path.join(this.options.dataDir, storageKey));
  }

  /**
   * Temp file -> fsync -> rename to DATA_DIR/<storageKey> -> fsync of the directory. After this returns, the
   * instance survives a crash or power loss (given a disk that honours fsync).
   */
  async commit(spool: Spool, storageKey: string): Promise<void> {
    await this.prepare(spool, storageKey);
    await this.publish(spool, storageKey);
  }

  /** First half of commit(): watermark check, directories, the full Part 10 file in the temp file, fsynced. */
  async prepare(spool: Spool, storageKey: string): Promise<void> {
    try {
      await this.ensureSpace(spool.bytes + spool.meta.length);
      const finalPath = path.join(this.options.dataDir, storageKey);
      await this.ensureDir(path.dirname(finalPath));
      // Logged: the record's flush stands for the temp file's and the directory's (syncPlaced awaits it). Only an
      // instance that would wait for its flushes alone is logged: while other instances are being flushed, their
      // journal commits are shared (GroupSync), and the log's second write of the bytes costs more CPU than the
      // shared commits cost time (measured in docs/benchmarks.md).
      const held = this.log && !this.logLost && this.flushing.size === 0 ? spool.heldBuffers() : undefined;
      if (held) spool.logEntry = this.log?.append(storageKey, finalPath, held);
      this.flushing.add(spool);
      try {
        await spool.writeTempFile(spool.logEntry === undefined);
      } catch (err) {
        // Our temp dir was removed (by hand, or by a listener of an older version sharing DATA_DIR): take it again.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || existsSync(this.tmpDir) || !spool.canRewrite()) throw err;
        this.tempDirLost();
        await spool.rewriteTemp(path.join(this.tmpDir, this.nextTempName()));
      }
    } catch (err) {
      this.settleLogged(spool);
      await spool.removeTemp();
      throw diskError(err);
    }
  }

  /**
   * The spool's flushes are over (done or failed); its log record, if any, needs nothing more from it: a
   * checkpoint may flush its file and free the record.
   */
  private settleLogged(spool: Spool): void {
    this.flushing.delete(spool);
    const entry = spool.logEntry;
    if (!entry || entry.settled) return;
    this.log?.settle(entry);
  }

  /**
   * The instance is not acknowledged after all (any failure once prepare() was called; the SCP calls this before
   * the failure status goes out). Its log record, unless a checkpoint has freed it already, is voided by a
   * tombstone, flushed before this returns: a replay after a crash must not write an instance the sender was told
   * failed into the store, nor score its study again. The file at its key is not touched here: the SCP removes it
   * when it must not stay (remove()), and otherwise it may be an acknowledged copy of the same instance. Never
   * throws: the error returned (a tombstone not written) leaves the record to be replayed as before.
   */
  async unacknowledged(spool: Spool): Promise<Error | undefined> {
    this.settleLogged(spool);
    const entry = spool.logEntry;
    spool.logEntry = undefined;
    // A record written after our log was removed went to a file no replay reads.
    if (!entry || !this.log || this.logLost) return undefined;
    return this.log.tombstone(entry).then(
      () => undefined,
      (err: Error) => err,
    );
  }

  /** Second half of commit(): rename into the store and fsync the directory that now names it. */
  async publish(spool: Spool, storageKey: string): Promise<void> {
    await this.place(spool, storageKey);
    await this.syncPlaced(spool, storageKey);
  }

  /**
   * Renames the fsynced temp file to DATA_DIR/<storageKey>. The name is not durable until syncPlaced() returns;
   * the caller may do other work meanwhile (store-scp records the arrival in Redis).
   */
  async place(spool: Spool, storageKey: string): Promise<void> {
    const finalPath = path.join(this.options.dataDir, storageKey);
    const dir = path.dirname(finalPath);
    try {
      try {
        // A metadata-only call on the same file system: synchronous, like the writes in writeTempFile().
        renameSync(spool.tmpPath, finalPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        await this.recoverRename(spool, dir);
        renameSync(spool.tmpPath, finalPath);
      }
      spool.release();
    } catch (err) {
      this.settleLogged(spool);
      await spool.removeTemp();
      throw diskError(err);
    }
  }

  /**
   * A rename failed with ENOENT: either the store directory went away under our cache (retention cleanup), or our
   * own temp file did (its dir was removed). Neither means the store is gone: recreate what is missing, write the
   * temp file again from memory, and let the caller retry once. An instance spilled to disk cannot be rewritten:
   * it alone answers A700 (the sender retries it) and the next one works.
   */
  private async recoverRename(spool: Spool, dir: string): Promise<void> {
    if (!existsSync(dir)) {
      this.knownDirs.delete(dir);
      this.closeDirFd(dir);
      await this.ensureDir(dir);
    }
    if (!existsSync(spool.tmpPath)) {
      this.tempDirLost();
      this.pool?.fill();
      if (!spool.canRewrite()) throw new TempFileLostError('temp file removed before its rename');
      await spool.rewriteTemp(path.join(this.tmpDir, this.nextTempName()));
    }
  }

  /**
   * fsyncs the directory that now names the instance. When that fails the rename may not survive a crash, so the
   * file is removed again: the instance is then simply not stored, and a resend stores it (the duplicate check
   * looks at the file first).
   */
  async syncPlaced(spool: Spool, storageKey: string): Promise<void> {
    const finalPath = path.join(this.options.dataDir, storageKey);
    const entry = spool.logEntry;
    try {
      // Logged: the record on disk is what makes the instance durable; its file and directory follow at the
      // next checkpoint (or are replayed from the record after a crash).
      await (entry ? entry.flushed : this.dirSyncs.sync(path.dirname(finalPath)));
      // Our temp dir was removed (and the log with it) before or while the record was written: it went to a file no
      // restart reads, and the instance's temp file was written unflushed. Flush its file and directory instead.
      if (entry && (this.logLost || !existsSync(path.join(this.tmpDir, LOG_FILE)))) {
        this.tempDirLost();
        await syncFile(finalPath);
        await this.dirSyncs.sync(path.dirname(finalPath));
      }
    } catch (err) {
      this.settleLogged(spool);
      await fsp.rm(finalPath, { force: true }).catch(() => undefined);
      throw diskError(err);
    }
    this.settleLogged(spool);
    const free = this.free;
    if (free) free.bytes -= spool.bytes + spool.meta.length;
    // Between this response and the next instance's data the disk is idle: create the next temp files now.
    this.pool?.fill();
    this.removeUnremoved();
  }

  /** Tries again to remove temp files that could not be removed when their instance failed. */
  private removeUnremoved(): void {
    for (const tmp of this.unremoved) {
      fsp.rm(tmp, { force: true }).then(() => this.unremoved.delete(tmp), () => undefined);
    }
  }

  /** Removes a placed instance that was not acknowledged after all. */
  async remove(storageKey: string): Promise<void> {
    await fsp.rm(path.join(this.options.dataDir, storageKey), { force: true });
  }

  private readonly dirFds = new Map<string, DirFd>();
  /** Group commit of directory fsyncs across concurrent associations (see GroupSync). */
  private readonly dirSyncs = new GroupSync((dir) => this.fsyncDirCached(dir));

  /** fsyncs a store directory through a cached descriptor (a study's series directories get many renames). */
  private async fsyncDirCached(dir: string): Promise<void> {
    let entry = this.dirFds.get(dir);
    if (entry) {
      // Most recently used last, so the oldest is the first to go.
      this.dirFds.delete(dir);
      this.dirFds.set(dir, entry);
    } else {
      entry = { fd: openSync(dir, 'r'), users: 0, evicted: false };
      this.dirFds.set(dir, entry);
      if (this.dirFds.size > DIR_FD_CACHE) {
        const [oldest] = this.dirFds.keys();
        this.closeDirFd(oldest);
      }
    }
    // Counted so an eviction never closes a descriptor another association is fsyncing through.
    entry.users += 1;
    try {
      await fsyncAsync(entry.fd);
    } finally {
      entry.users -= 1;
      if (entry.evicted && entry.users === 0) closeQuietly(entry.fd);
    }
  }

  private closeDirFd(dir: string): void {
    const entry = this.dirFds.get(dir);
    if (!entry) return;
    this.dirFds.delete(dir);
    entry.evicted = true;
    if (entry.users === 0) closeQuietly(entry.fd);
  }

  /** Closes cached directory descriptors and removes unused pooled temp files (at shutdown, after the last commit). */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    clearInterval(this.freeTimer);
    await this.sweeping;
    // The checkpoint flushes the last logged files through the cached directory descriptors; a log it emptied
    // holds nothing to replay and goes.
    if (this.log) {
      await this.log.close();
      if (this.log.pending() === 0) await fsp.rm(path.join(this.tmpDir, LOG_FILE), { force: true });
    }
    for (const dir of [...this.dirFds.keys()]) this.closeDirFd(dir);
    await this.pool?.close();
    // The lease goes last: an empty dir without a lease is swept by the next listener (and ours at restart).
    await fsp.rm(path.join(this.tmpDir, LEASE_FILE), { force: true });
  }

  /** mkdir -p below DATA_DIR/store, fsyncing each parent whose entries changed so the new path is durable. */
  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    const storeRoot = path.join(this.options.dataDir, 'store');
    const missing: string[] = [];
    for (let d = dir; d.startsWith(storeRoot) && d !== storeRoot; d = path.dirname(d)) {
      try {
        await fsp.access(d);
        break;
      } catch {
        missing.unshift(d);
      }
    }
    for (const d of missing) {
      await fsp.mkdir(d).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      await fsyncDir(path.dirname(d));
    }
    this.knownDirs.add(dir);
    if (this.knownDirs.size > 10_000) this.knownDirs.clear();
  }
}

/**
 * Group commit for fsyncs of one key (a directory): at most one runs at a time per key, and every caller that
 * arrives while it runs shares the next one, which starts when it ends. A caller's rename happened before it
 * called, so the fsync that starts after that call covers it; one already running might not have. With several
 * associations storing into one series directory this turns N directory fsyncs into about two, however large N.
 */
export class GroupSync {
  private readonly state = new Map<string, { running: Promise<void>; next?: Promise<void> }>();

  constructor(private readonly fsyncKey: (key: string) => Promise<void>) {}

  sync(key: string): Promise<void> {
    const current = this.state.get(key);
    if (!current) return this.start(key);
    current.next ??= current.running.then(
      () => this.start(key),
      () => this.start(key),
    );
    return current.next;
  }

  private start(key: string): Promise<void> {
    const running = this.fsyncKey(key).finally(() => {
      const s = this.state.get(key);
      if (s && s.running === running && !s.next) this.state.delete(key);
    });
    this.state.set(key, { running });
    return running;
  }
}

function diskError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOSPC' || code === 'EDQUOT' ? new OutOfDiskError('disk full while writing', { cause: err }) : err;
}

interface DirFd {
  fd: number;
  users: number;
  evicted: boolean;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/** How often a listener touches its lease (and sweeps other listeners' abandoned temp dirs). */
export const LEASE_REFRESH_MS = 30_000;
/** A lease untouched this long belongs to a listener that is gone (on any host). */
export const LEASE_STALE_MS = 10 * 60_000;
/** A temp dir without a lease (written by an older version) is abandoned after an hour untouched. */
const LEGACY_ABANDONED_AFTER_MS = 60 * 60_000;
export const LEASE_FILE = '.lease';
/** The write-ahead log in a listener's temp dir. */
export const LOG_FILE = 'instances.wal';

interface Lease {
  host: string;
  pid: number;
  /** The pid namespace, so a pid is only looked up where it means the same process. */
  pidns: string;
}

function ownPidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return '';
  }
}
const PIDNS = ownPidNamespace();

function writeLease(dir: string): void {
  const lease: Lease = { host: hostname(), pid: process.pid, pidns: PIDNS };
  const fd = openSync(path.join(dir, LEASE_FILE), 'w', 0o640);
  try {
    writevSync(fd, [Buffer.from(JSON.stringify(lease))]);
  } finally {
    closeSync(fd);
  }
}

/** Files in a dead process's temp dir that hold data (its pooled files are empty and not instances). */
async function countNonEmpty(dir: string): Promise<number> {
  let count = 0;
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
    if (name === LEASE_FILE || name === LOG_FILE) continue;
    const stat = await fsp.stat(path.join(dir, name)).catch(() => undefined);
    if (stat && stat.size > 0) count += 1;
  }
  return count;
}

/** Whether a process we can see (same host and pid namespace) is gone; undefined when we cannot tell. */
function processGone(host: string, pid: number, pidns: string | undefined): boolean | undefined {
  if (host !== hostname() || (pidns !== undefined && pidns !== PIDNS) || !Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * A temp dir is abandoned when its owner is a process of this host and pid namespace that no longer exists, or
 * when its lease has not been renewed for LEASE_STALE_MS (a listener on another host or container that is gone).
 * An idle live listener renews its lease every LEASE_REFRESH_MS, so its files are never swept.
 */
async function isAbandoned(dir: string, name: string): Promise<boolean> {
  const leasePath = path.join(dir, LEASE_FILE);
  const leaseStat = await fsp.stat(leasePath).catch(() => undefined);
  if (leaseStat) {
    let lease: Partial<Lease> = {};
    try {
      lease = JSON.parse(await fsp.readFile(leasePath, 'utf8')) as Partial<Lease>;
    } catch {
      // Half-written lease: judge by its age alone.
    }
    const gone = processGone(lease.host ?? '', Number(lease.pid), lease.pidns ?? '');
    if (gone !== undefined) return gone;
    return Date.now() - leaseStat.mtimeMs > LEASE_STALE_MS;
  }
  // No lease: a dir of an older version (named <host>-<pid>), or one whose owner stopped cleanly.
  const match = /^(.*)-(\d+)$/.exec(name);
  const gone = match ? processGone(match[1], Number(match[2]), undefined) : undefined;
  if (gone !== undefined) return gone;
  const stat = await fsp.stat(dir).catch(() => undefined);
  return stat !== undefined && Date.now() - stat.mtimeMs > LEGACY_ABANDONED_AFTER_MS;
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

/** fdatasync of a store file a checkpoint covers; one removed meanwhile (retention, a purge) needs nothing. */
async function syncFileIfPresent(file: string): Promise<void> {
  await syncFile(file).catch(ignoreMissing);
}

async function syncFile(file: string): Promise<void> {
  const fd = await openAsync(file, 'r');
  try {
    await fdatasyncAsync(fd);
  } finally {
    closeSync(fd);
  }
}
