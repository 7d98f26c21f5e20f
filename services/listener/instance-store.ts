// Where received instances go and how they become durable: each C-STORE's bytes are spooled (in memory up to a
// limit, then into a temp file under DATA_DIR/tmp), then written as a Part 10 file, fsynced, renamed into
// DATA_DIR/store/<Study>/<Series>/<SOP>.dcm and the directory fsynced. Free disk below the watermark refuses the
// instance before anything reaches the store; a failed or aborted instance leaves no temp file behind.
import { Writable } from 'node:stream';
import { promises as fsp, existsSync, openSync, writevSync, closeSync, renameSync, fdatasync, fsync } from 'node:fs';
import { promisify } from 'node:util';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { OutOfDiskError } from './errors';

export interface InstanceStoreOptions {
  /** Absolute DATA_DIR. */
  dataDir: string;
  /** DISK_MIN_FREE_MB in bytes. */
  minFreeBytes: number;
  /** Data sets up to this size stay in memory until commit (one write call); larger ones stream to the temp file. */
  memoryLimitBytes: number;
}

/** How much of a data set's start is kept in memory for peekHeader() even when the rest streams to disk. */
export const PEEK_LIMIT_BYTES = 4 * 1024 * 1024;
const FREE_CACHE_MS = 250;
const fdatasyncAsync = promisify(fdatasync);
const fsyncAsync = promisify(fsync);
/** Open directory descriptors kept for fsync after rename (a study's series directories are reused per instance). */
const DIR_FD_CACHE = 64;
const TMP_DIR = 'tmp';

/**
 * A Writable that dcmjs-dimse feeds with the data set's P-DATA fragments as they arrive. It never parses them.
 * Writes complete synchronously while in memory, so the network layer is never held back by it.
 */
export class Spool extends Writable {
  /** Data set bytes received so far. */
  bytes = 0;
  private chunks: Buffer[] = [];
  private prefixChunks: Buffer[] = [];
  private prefixBytes = 0;
  private file: FileHandle | undefined;
  private aborted = false;
  readonly done: Promise<void>;

  constructor(
    /** Preamble + File Meta Information, written before the data set. */
    readonly meta: Buffer,
    readonly tmpPath: string,
    private readonly memoryLimitBytes: number,
    /** Count bytes but keep none (a storage class we accept and ignore, or an instance already refused). */
    readonly discard: boolean,
  ) {
    super({ highWaterMark: 1024 * 1024 });
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

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.bytes += chunk.length;
    if (this.discard) return callback();
    if (this.prefixBytes < PEEK_LIMIT_BYTES) {
      this.prefixChunks.push(chunk);
      this.prefixBytes += chunk.length;
    }
    if (this.file) {
      this.file.write(chunk).then(() => callback(), callback);
      return;
    }
    this.chunks.push(chunk);
    if (this.bytes <= this.memoryLimitBytes) return callback();
    // Too big to hold: move what we have to the temp file and stream the rest there.
    this.spill().then(() => callback(), callback);
  }

  private async spill(): Promise<void> {
    const file = await fsp.open(this.tmpPath, 'wx', 0o640);
    this.file = file;
    await writeAll(file, [this.meta, ...this.chunks]);
    this.chunks = [];
  }

  /** The first bytes of the data set (up to PEEK_LIMIT_BYTES). */
  prefix(): Buffer {
    return Buffer.concat(this.prefixChunks, this.prefixBytes);
  }

  /** True when prefix() holds the whole data set. */
  prefixIsComplete(): boolean {
    return this.prefixBytes === this.bytes;
  }

  /** Makes the temp file hold the full Part 10 file, fsynced and closed. */
  async writeTempFile(): Promise<void> {
    const file = this.file;
    if (file) {
      // Spilled: the file already holds everything; only the fsync is left.
      await file.datasync();
      await file.close();
      this.file = undefined;
      return;
    }
    // In memory (the usual case): open, write and close go to the page cache in microseconds, so they run
    // synchronously instead of paying a thread-pool round trip each; only the fsync waits on the disk.
    const fd = openSync(this.tmpPath, 'wx', 0o640);
    try {
      writeAllSync(fd, [this.meta, ...this.chunks]);
      this.chunks = [];
      await fdatasyncAsync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Stops the spool and removes its temp file, whatever state it is in. Safe to call more than once. */
  async abort(): Promise<void> {
    this.aborted = true;
    this.chunks = [];
    this.prefixChunks = [];
    if (!this.destroyed) this.destroy();
    await this.removeTemp();
  }

  async removeTemp(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    if (file) await file.close().catch(() => undefined);
    await fsp.rm(this.tmpPath, { force: true });
  }
}

function writeAllSync(fd: number, buffers: Buffer[]): void {
  let pending = buffers.length > 256 ? [Buffer.concat(buffers)] : buffers;
  while (pending.length > 0) {
    let left = writevSync(fd, pending);
    while (pending.length > 0 && left >= pending[0].length) {
      left -= pending[0].length;
      pending = pending.slice(1);
    }
    if (left > 0) pending = [pending[0].subarray(left), ...pending.slice(1)];
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

  constructor(private readonly options: InstanceStoreOptions) {
    this.tmpDir = path.join(options.dataDir, TMP_DIR, `${hostname()}-${process.pid}`);
  }

  /** Creates DATA_DIR/tmp and DATA_DIR/store and removes temp files a killed process left behind. */
  async init(): Promise<{ removedTempFiles: number }> {
    await fsp.mkdir(path.join(this.options.dataDir, 'store'), { recursive: true });
    const root = path.dirname(this.tmpDir);
    await fsp.mkdir(root, { recursive: true });
    let removedTempFiles = 0;
    // Several listeners may share DATA_DIR, each with its own tmp/<host>-<pid>/. Sweep the ones whose process is
    // gone (same host) or that nothing has touched for an hour (another host's crash).
    for (const entry of await fsp.readdir(root)) {
      const dir = path.join(root, entry);
      if (dir === this.tmpDir || !(await isAbandoned(dir, entry))) continue;
      removedTempFiles += (await fsp.readdir(dir).catch(() => [] as string[])).length;
      await fsp.rm(dir, { recursive: true, force: true });
    }
    await fsp.rm(this.tmpDir, { recursive: true, force: true });
    await fsp.mkdir(this.tmpDir, { recursive: true });
    await this.refreshFree();
    return { removedTempFiles };
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

  /** Cheap synchronous check from the cached figure, used before the first fragment is kept. */
  belowWatermark(): boolean {
    return this.free !== undefined && this.free.bytes < this.options.minFreeBytes;
  }

  openSpool(meta: Buffer, discard: boolean): Spool {
    const name = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}.part`;
    return new Spool(meta, path.join(this.tmpDir, name), this.options.memoryLimitBytes, discard);
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
      await this.ensureDir(path.dirname(path.join(this.options.dataDir, storageKey)));
      await spool.writeTempFile();
    } catch (err) {
      await spool.removeTemp();
      throw diskError(err);
    }
  }

  /** Second half of commit(): rename into the store and fsync the directory that now names it. */
  async publish(spool: Spool, storageKey: string): Promise<void> {
    const finalPath = path.join(this.options.dataDir, storageKey);
    const dir = path.dirname(finalPath);
    try {
      try {
        // A metadata-only call on the same file system: synchronous, like the writes in writeTempFile().
        renameSync(spool.tmpPath, finalPath);
      } catch (err) {
        // The directory went away under our cache (retention cleanup): recreate it once.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        this.knownDirs.delete(dir);
        this.closeDirFd(dir);
        await this.ensureDir(dir);
        renameSync(spool.tmpPath, finalPath);
      }
      await this.fsyncDirCached(dir);
    } catch (err) {
      await spool.removeTemp();
      throw diskError(err);
    }
    const free = this.free;
    if (free) free.bytes -= spool.bytes + spool.meta.length;
  }

  private readonly dirFds = new Map<string, DirFd>();

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

  /** Closes cached directory descriptors (at shutdown, after the last commit). */
  close(): void {
    for (const dir of [...this.dirFds.keys()]) this.closeDirFd(dir);
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

const ABANDONED_AFTER_MS = 60 * 60 * 1000;

async function isAbandoned(dir: string, name: string): Promise<boolean> {
  const match = /^(.*)-(\d+)$/.exec(name);
  if (match && match[1] === hostname()) {
    try {
      process.kill(Number(match[2]), 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }
  const stat = await fsp.stat(dir).catch(() => undefined);
  return stat !== undefined && Date.now() - stat.mtimeMs > ABANDONED_AFTER_MS;
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
