// A preallocated write-ahead log for received instances: one flush per instance before Success, and that flush
// commits no file system metadata. An instance's Part 10 bytes are appended to a file whose blocks were all written
// (zeros) and flushed when the log was created, so fdatasync only writes the new blocks and flushes the disk cache:
// no journal commit, which is what a new file's fdatasync and a directory fsync each cost. The instance's own file
// is written and renamed into the store without a flush; a checkpoint a moment later flushes those files and their
// directories together (one journal commit covers many) and then frees their log space. After a crash, init()
// replays every record past the last checkpoint into the store, flushed the usual way.
//
// Layout: block 0 holds the header (generation, checkpointed sequence); records follow at block boundaries, each a
// 32-byte head (magic, generation, sequence, key and data lengths, CRC-32 of head, key and data), the storage key
// and the data, padded to the next block. The log is a ring: a record goes at the head if it fits before the end,
// else at block 1 if the oldest record not yet checkpointed starts after it; otherwise append() says no and the
// caller stores the instance the usual way.
// A tombstone (tombstone()) is a record of the same layout under its own magic ("NTWT") whose 4 data bytes are the
// sequence number of the record it voids: an instance logged and then not acknowledged. A log without tombstones
// (written before they existed) reads as it always did; a reader that predates them skips one as a torn record.
import { closeSync, fdatasync, openSync, writeSync, promises as fsp } from 'node:fs';
import { promisify } from 'node:util';
import { randomInt } from 'node:crypto';
import { crc32 } from 'node:zlib';
import path from 'node:path';
import { fsyncDir, writeAllSync } from './sync-io';

const fdatasyncAsync = promisify(fdatasync);

export const BLOCK = 4096;
const MAGIC = 0x4c57544e; // "NTWL"
const HEADER_MAGIC = 0x4857544e; // "NTWH"
const TOMBSTONE_MAGIC = 0x5457544e; // "NTWT"
const HEAD = 32;
/** What a storage key may look like in a record; anything else is not replayed. */
const KEY = /^store\/[0-9.]+\/[0-9.]+\/[0-9.]+\.dcm$/;

/** One appended record, from append() until a checkpoint has flushed its file. */
export interface LogEntry {
  readonly seq: number;
  /** The storage key the record was written under. */
  readonly key: string;
  readonly start: number;
  readonly end: number;
  /** Absolute path of the instance's file in the store. */
  readonly finalPath: string;
  /** Resolves once the record is on disk. */
  readonly flushed: Promise<void>;
  /** Set by settle(): the file was renamed into place, or the instance failed (nothing to flush). */
  settled: boolean;
}

/** What a checkpoint needs from the store: flush one file, flush one directory. */
export interface CheckpointSync {
  syncFile(file: string): Promise<void>;
  syncDir(dir: string): Promise<void>;
  /** Told when a checkpoint fails (its records stay in the log, and the next checkpoint tries again). */
  onError?(err: Error): void;
}

function align(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

function headerBlock(generation: number, checkpointed: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.writeUInt32LE(HEADER_MAGIC, 0);
  b.writeUInt32LE(generation, 4);
  b.writeUInt32LE(checkpointed, 8);
  b.writeUInt32LE(crc32(b.subarray(0, 12)), 12);
  return b;
}

function readHeader(block: Buffer): { generation: number; checkpointed: number } | undefined {
  if (block.length < 16 || block.readUInt32LE(0) !== HEADER_MAGIC) return undefined;
  if (crc32(block.subarray(0, 12)) !== block.readUInt32LE(12)) return undefined;
  return { generation: block.readUInt32LE(4), checkpointed: block.readUInt32LE(8) };
}

/** A record found in a log file by readLog(). */
export interface LoggedInstance {
  seq: number;
  key: string;
  /** The instance's Part 10 bytes (empty in a tombstone). */
  data: Buffer;
  /** A tombstone: the sequence number of the record of `key` it voids. */
  voids?: number;
}

/**
 * The records of a log file that its last checkpoint did not cover, oldest first, tombstones among them. A record
 * whose CRC fails (a write torn by the crash) or of an older generation is skipped: it was never acknowledged.
 */
export async function readLog(file: string): Promise<LoggedInstance[]> {
  const bytes = await fsp.readFile(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!bytes) return [];
  const header = readHeader(bytes.subarray(0, BLOCK));
  if (!header) return [];
  const found: LoggedInstance[] = [];
  for (let at = BLOCK; at + HEAD <= bytes.length; ) {
    const record = recordAt(bytes, at, header.generation);
    if (!record) {
      at += BLOCK;
      continue;
    }
    if (record.seq > header.checkpointed) found.push(record);
    at += align(HEAD + Buffer.byteLength(record.key) + record.data.length);
  }
  return found.sort((a, b) => a.seq - b.seq);
}

/**
 * What a replay writes into the store, by storage key: records a tombstone voids are dropped (their instances were
 * not acknowledged), then of several records of one key the last is what its C-STOREs left. A key whose records
 * are all voided is absent: nothing is written for it, and whatever file it has is left as it is (an acknowledged
 * copy of the same instance, stored before or beside the voided one, may be that file).
 */
export function toReplay(logged: LoggedInstance[]): Map<string, Buffer> {
  const voided = new Set(logged.filter((r) => r.voids !== undefined).map((r) => `${r.voids} ${r.key}`));
  const last = new Map<string, Buffer>();
  for (const record of [...logged].sort((a, b) => a.seq - b.seq)) {
    if (record.voids === undefined && !voided.has(`${record.seq} ${record.key}`)) last.set(record.key, record.data);
  }
  return last;
}

function recordAt(bytes: Buffer, at: number, generation: number): LoggedInstance | undefined {
  const magic = bytes.readUInt32LE(at);
  if ((magic !== MAGIC && magic !== TOMBSTONE_MAGIC) || bytes.readUInt32LE(at + 4) !== generation) return undefined;
  const seq = bytes.readUInt32LE(at + 8);
  const keyLength = bytes.readUInt16LE(at + 12);
  const dataLength = bytes.readUInt32LE(at + 16);
  const end = at + HEAD + keyLength + dataLength;
  if (end > bytes.length) return undefined;
  let crc = crc32(bytes.subarray(at, at + 20));
  crc = crc32(bytes.subarray(at + HEAD, end), crc);
  if (crc !== bytes.readUInt32LE(at + 20)) return undefined;
  const key = bytes.toString('latin1', at + HEAD, at + HEAD + keyLength);
  if (!KEY.test(key)) return undefined;
  if (magic === TOMBSTONE_MAGIC) {
    if (dataLength !== 4) return undefined;
    return { seq, key, data: Buffer.alloc(0), voids: bytes.readUInt32LE(at + HEAD + keyLength) };
  }
  return { seq, key, data: Buffer.from(bytes.subarray(at + HEAD + keyLength, end)) };
}

export class WriteAheadLog {
  private seq = 0;
  private head = BLOCK;
  /** Records not yet checkpointed, oldest first. */
  private readonly entries: LogEntry[] = [];
  private flushing: Promise<void> | undefined;
  private nextFlush: Promise<void> | undefined;
  private checkpointing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The last checkpoint's failure; the next checkpoint tries again. */
  private lastCheckpointError: Error | undefined;

  private constructor(
    private readonly fd: number,
    private readonly size: number,
    private readonly generation: number,
    private readonly sync: CheckpointSync,
    private readonly checkpointDelayMs: number,
  ) {}

  /**
   * Creates the log file (replacing any), writes every block once and flushes it with its directory entry, so no
   * later append changes the file's metadata.
   */
  static async create(file: string, sizeBytes: number, sync: CheckpointSync, checkpointDelayMs = 200): Promise<WriteAheadLog> {
    const size = Math.max(4 * BLOCK, align(sizeBytes));
    const generation = randomInt(1, 2 ** 32 - 1);
    const fd = openSync(file, 'w', 0o640);
    try {
      const zeros = Buffer.alloc(Math.min(size, 1 << 20));
      for (let at = 0; at < size; at += zeros.length) writeSync(fd, zeros, 0, Math.min(zeros.length, size - at), at);
      writeSync(fd, headerBlock(generation, 0), 0, BLOCK, 0);
      await fdatasyncAsync(fd);
      // The file's name too: a log lost with its name to a power cut would take its records with it. (The
      // directories above, when new, are the caller's to flush.)
      await fsyncDir(path.dirname(file));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return new WriteAheadLog(fd, size, generation, sync, checkpointDelayMs);
  }

  /**
   * Writes one record (to the page cache, synchronously: the caller may drop `buffers` once this returns) and
   * starts its flush. Undefined when the ring has no room for it now: the caller stores the instance without the
   * log, and a checkpoint is started to make room.
   */
  append(key: string, finalPath: string, buffers: Buffer[]): LogEntry | undefined {
    if (this.closed) return undefined;
    const start = this.write(MAGIC, key, buffers);
    if (start === undefined) {
      this.checkpointSoon(0);
      return undefined;
    }
    const entry: LogEntry = { seq: this.seq, key, start, end: this.head, finalPath, flushed: this.flush(), settled: false };
    this.entries.push(entry);
    if (this.usedBytes() > this.size / 4) this.checkpointSoon(0);
    return entry;
  }

  /**
   * Voids a record whose instance was not acknowledged after all: a tombstone naming it is written and flushed, so
   * a replay after a crash never writes the record's bytes into the store. Nothing is written for a record a
   * checkpoint has already freed (no replay reads it). The tombstone is not an entry: it needs no checkpoint, and
   * once the record it names is checkpointed its blocks may be reused. With no room for it in the ring, a
   * checkpoint is run first (it frees the record when every record before it is settled). Rejects when the
   * tombstone could not be written or flushed: the record may then still be replayed.
   * The file at the record's path is flushed first, as a checkpoint would: once the record is voided no replay writes
   * that file again, and it may be the failed copy, placed unflushed over an acknowledged copy of the same instance,
   * whose bytes a crash would otherwise lose for good (a resend of an acknowledged instance is a duplicate).
   */
  async tombstone(entry: LogEntry): Promise<void> {
    if (!this.entries.includes(entry)) return;
    await this.sync.syncFile(entry.finalPath);
    for (let attempt = 0; this.entries.includes(entry); attempt++) {
      if (this.closed) throw new Error('write-ahead log closed before a tombstone could be written');
      const seq = Buffer.alloc(4);
      seq.writeUInt32LE(entry.seq);
      if (this.write(TOMBSTONE_MAGIC, entry.key, [seq]) !== undefined) {
        await this.flush();
        return;
      }
      if (attempt === 2) throw new Error('no room in the write-ahead log for a tombstone');
      await this.checkpoint();
    }
  }

  /** Writes one record at its place in the ring (page cache, synchronously) and moves the head past it. */
  private write(magic: number, key: string, buffers: Buffer[]): number | undefined {
    const keyBytes = Buffer.from(key, 'latin1');
    const dataLength = buffers.reduce((n, b) => n + b.length, 0);
    const length = align(HEAD + keyBytes.length + dataLength);
    const start = this.placeFor(length);
    if (start === undefined) return undefined;
    this.seq += 1;
    const head = Buffer.alloc(HEAD);
    head.writeUInt32LE(magic, 0);
    head.writeUInt32LE(this.generation, 4);
    head.writeUInt32LE(this.seq, 8);
    head.writeUInt16LE(keyBytes.length, 12);
    head.writeUInt32LE(dataLength, 16);
    let crc = crc32(head.subarray(0, 20));
    crc = crc32(keyBytes, crc);
    for (const b of buffers) crc = crc32(b, crc);
    head.writeUInt32LE(crc, 20);
    writeAllSync(this.fd, [head, keyBytes, ...buffers], start);
    this.head = start + length;
    return start;
  }

  /** The entry's file is in place (or its instance failed): a checkpoint may now flush it and free its record. */
  settle(entry: LogEntry): void {
    entry.settled = true;
    this.checkpointSoon(this.checkpointDelayMs);
  }

  /** Records written and not yet checkpointed. */
  pending(): number {
    return this.entries.length;
  }

  private usedBytes(): number {
    const tail = this.entries[0]?.start;
    if (tail === undefined) return 0;
    return this.head >= tail ? this.head - tail : this.size - tail + (this.head - BLOCK);
  }

  /** Where a record of `length` bytes goes, or undefined when the ring is too full. */
  private placeFor(length: number): number | undefined {
    if (length > (this.size - BLOCK) / 2) return undefined;
    const tail = this.entries[0]?.start;
    if (tail === undefined) {
      return this.head + length <= this.size ? this.head : BLOCK;
    }
    if (this.head >= tail) {
      if (this.head + length <= this.size) return this.head;
      return BLOCK + length < tail ? BLOCK : undefined;
    }
    return this.head + length < tail ? this.head : undefined;
  }

  /**
   * Group flush: one fdatasync in flight; every record written while it runs shares the next one. A record was
   * written before its append() returned, so a flush that starts after that covers it.
   */
  private flush(): Promise<void> {
    if (!this.flushing) {
      this.flushing = fdatasyncAsync(this.fd).finally(() => {
        this.flushing = undefined;
      });
      return this.flushing;
    }
    this.nextFlush ??= this.flushing.then(
      () => undefined,
      () => undefined,
    ).then(() => {
      this.nextFlush = undefined;
      return this.flush();
    });
    return this.nextFlush;
  }

  private checkpointSoon(delayMs: number): void {
    if (this.closed || this.checkpointing) return;
    if (delayMs === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
      void this.checkpoint();
      return;
    }
    // Unref'd: a process that exits without close() leaves the records to be replayed.
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.checkpoint();
    }, delayMs).unref();
  }

  /**
   * Flushes the files of the oldest settled records and their directories, then records the checkpoint in the
   * header and frees those records. A failure leaves every record in the log (replayed after a crash) and is tried
   * again at the next settle().
   */
  checkpoint(): Promise<void> {
    if (this.checkpointing) return this.checkpointing;
    let count = 0;
    while (count < this.entries.length && this.entries[count].settled) count += 1;
    if (count === 0) return Promise.resolve();
    const batch = this.entries.slice(0, count);
    this.checkpointing = (async () => {
      try {
        // A record whose flush failed belongs to an instance that failed (its file was removed): nothing to wait for.
        await Promise.allSettled(batch.map((e) => e.flushed));
        await Promise.all(batch.map((e) => this.sync.syncFile(e.finalPath)));
        const dirs = new Set(batch.map((e) => e.finalPath.slice(0, e.finalPath.lastIndexOf('/'))));
        await Promise.all([...dirs].map((d) => this.sync.syncDir(d)));
        // With no record left behind the batch, the tombstones written since (each voids a record of the batch, or
        // one freed before) are covered too, so an emptied log reads back empty.
        const covered = this.entries.length === count ? this.seq : batch[batch.length - 1].seq;
        writeSync(this.fd, headerBlock(this.generation, covered), 0, BLOCK, 0);
        await fdatasyncAsync(this.fd);
        this.entries.splice(0, count);
        this.lastCheckpointError = undefined;
      } catch (err) {
        this.lastCheckpointError = err as Error;
        this.sync.onError?.(err as Error);
      } finally {
        this.checkpointing = undefined;
      }
      if (this.entries.length > 0 && this.entries[0].settled && !this.lastCheckpointError) this.checkpointSoon(this.checkpointDelayMs);
    })();
    return this.checkpointing;
  }

  /** Checkpoints what is settled and closes the file (at shutdown, after the last commit). */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.checkpointing) await this.checkpointing;
    await this.checkpoint();
    this.closed = true;
    clearTimeout(this.timer);
    closeSync(this.fd);
  }
}
