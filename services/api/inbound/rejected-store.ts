// Where the report feed keeps what it could not store, so nothing is silently dropped: messages answered AE or AR
// for their content or sender, and held reports whose study never came. Each is a file under
// DATA_DIR/reports/rejected (written to a temp name, fsynced, renamed, folder fsynced; mode 0600: it holds the
// whole message, patient segment and report text included) plus an index entry in Redis (reportKeys.rejected and
// rejectedEntry) with the reason and sizes, never the content. An admin lists, reads, replays or deletes them
// through the API. Bounded by REPORTS_REJECTED_MAX messages and REPORTS_REJECTED_MAX_MB bytes (a count alone let a
// sender of large messages put 10 GiB beside the studies): when full, keep() refuses and the caller answers "try
// again".
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { reportKeys } from '../../../shared/reports';

/** hl7: the message as received (bytes); report: a held report's JSON (StoredReport) whose study never came. */
export type RejectedKind = 'hl7' | 'report';

export interface RejectedEntry {
  id: string;
  kind: RejectedKind;
  /** A reason code (RejectReason in oru.ts, or no-study). */
  reason: string;
  /** What is wrong, in words; our own text, never a quote of the message. */
  detail: string;
  /** The ACK code the sender got (AE/AR); absent for held reports that expired. */
  ack?: string;
  receivedAt: number;
  bytes: number;
  /** The message was larger than the limit and only its head was kept: replay needs a corrected text. */
  truncated: boolean;
  /** Failed replays so far. */
  replays: number;
}

export interface KeepInput {
  kind: RejectedKind;
  payload: Buffer;
  reason: string;
  detail: string;
  ack?: string;
  receivedAt: number;
  truncated?: boolean;
}

export interface RejectedStore {
  /** Null when the store is full (nothing written). */
  keep(input: KeepInput): Promise<RejectedEntry | null>;
  list(limit: number, offset?: number): Promise<{ total: number; items: RejectedEntry[] }>;
  get(id: string): Promise<{ entry: RejectedEntry; payload: Buffer } | null>;
  /** After a failed replay: the new reason, and one more replay counted. */
  update(id: string, change: { reason: string; detail: string; ack?: string }): Promise<void>;
  remove(id: string): Promise<boolean>;
  count(): Promise<number>;
}

export const REJECTED_ID = /^[0-9a-z]{1,12}-[0-9a-f]{12}$/;

function fileOf(dir: string, id: string, kind: RejectedKind): string {
  return path.join(dir, `${id}.${kind === 'hl7' ? 'hl7' : 'json'}`);
}

function parseEntry(id: string, h: Record<string, string>): RejectedEntry | null {
  if (!h.kind) return null;
  return {
    id,
    kind: h.kind as RejectedKind,
    reason: h.reason ?? 'unknown',
    detail: h.detail ?? '',
    ...(h.ack ? { ack: h.ack } : {}),
    receivedAt: Number(h.receivedAt) || 0,
    bytes: Number(h.bytes) || 0,
    truncated: h.truncated === '1',
    replays: Number(h.replays) || 0,
  };
}

export function createRejectedStore(opts: { redis: Redis; dir: string; max: number; maxBytes: number }): RejectedStore {
  const { redis, dir } = opts;
  let ready: Promise<unknown> | null = null;

  /** The bytes kept now: the running total, or (kept before there was one) the entries' sizes added up once. */
  async function keptBytes(): Promise<number> {
    const total = await redis.get(reportKeys.rejectedBytes());
    if (total !== null) return Number(total) || 0;
    const ids = await redis.zrevrange(reportKeys.rejected(), 0, -1);
    const pipeline = redis.pipeline();
    for (const id of ids) pipeline.hget(reportKeys.rejectedEntry(id), 'bytes');
    const sum = ((await pipeline.exec()) ?? []).reduce((n, [, bytes]) => n + (Number(bytes) || 0), 0);
    await redis.set(reportKeys.rejectedBytes(), String(sum), 'NX');
    return Number(await redis.get(reportKeys.rejectedBytes())) || 0;
  }

  async function writeDurably(file: string, data: Buffer): Promise<void> {
    // A failed mkdir (a read-only or full volume) is not kept: the next message tries again, or it would fail forever.
    await (ready ??= mkdir(dir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
      ready = null;
      throw err;
    }));
    const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
    const handle = await open(tmp, 'wx', 0o600);
    try {
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, file);
    } catch (err) {
      // A full disk cuts the write short: the partial temp file would stay, counted by nothing, removed by nothing.
      await rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
    const folder = await open(dir, 'r');
    try {
      await folder.sync();
    } finally {
      await folder.close();
    }
  }

  return {
    async keep(input) {
      if ((await redis.zcard(reportKeys.rejected())) >= opts.max) return null;
      if ((await keptBytes()) + input.payload.length > opts.maxBytes) return null;
      const id = `${input.receivedAt.toString(36)}-${randomBytes(6).toString('hex')}`;
      await writeDurably(fileOf(dir, id, input.kind), input.payload);
      const entry: RejectedEntry = {
        id, kind: input.kind, reason: input.reason, detail: input.detail, ...(input.ack ? { ack: input.ack } : {}),
        receivedAt: input.receivedAt, bytes: input.payload.length, truncated: input.truncated ?? false, replays: 0,
      };
      await redis
        .multi()
        .hset(reportKeys.rejectedEntry(id), {
          kind: entry.kind, reason: entry.reason, detail: entry.detail, ack: entry.ack ?? '', receivedAt: entry.receivedAt,
          bytes: entry.bytes, truncated: entry.truncated ? '1' : '0', replays: 0,
        })
        .zadd(reportKeys.rejected(), entry.receivedAt, id)
        .incrby(reportKeys.rejectedBytes(), entry.bytes)
        .exec();
      return entry;
    },

    async list(limit, offset = 0) {
      const [total, ids] = await Promise.all([
        redis.zcard(reportKeys.rejected()),
        redis.zrevrange(reportKeys.rejected(), offset, offset + limit - 1),
      ]);
      const pipeline = redis.pipeline();
      for (const id of ids) pipeline.hgetall(reportKeys.rejectedEntry(id));
      const rows = (await pipeline.exec()) ?? [];
      const items = ids
        .map((id, i) => parseEntry(id, (rows[i]?.[1] ?? {}) as Record<string, string>))
        .filter((e): e is RejectedEntry => e !== null);
      return { total, items };
    },

    async get(id) {
      if (!REJECTED_ID.test(id)) return null;
      const entry = parseEntry(id, await redis.hgetall(reportKeys.rejectedEntry(id)));
      if (!entry) return null;
      try {
        return { entry, payload: await readFile(fileOf(dir, id, entry.kind)) };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
    },

    async update(id, change) {
      await redis
        .multi()
        .hset(reportKeys.rejectedEntry(id), { reason: change.reason, detail: change.detail, ack: change.ack ?? '' })
        .hincrby(reportKeys.rejectedEntry(id), 'replays', 1)
        .exec();
    },

    async remove(id) {
      if (!REJECTED_ID.test(id)) return false;
      const [kind, bytes] = (await redis.hmget(reportKeys.rejectedEntry(id), 'kind', 'bytes')) as [RejectedKind | null, string | null];
      if (!kind) return false;
      // Index first: an interrupted removal leaves an orphan file (harmless), never an entry without its file.
      const [[, removed]] = ((await redis.multi().zrem(reportKeys.rejected(), id).del(reportKeys.rejectedEntry(id)).exec()) ?? [[null, 0]]) as [[unknown, number]];
      // Only the removal that took the entry out gives its bytes back (two at once: one of them).
      if (removed === 1 && (await redis.exists(reportKeys.rejectedBytes())) === 1) await redis.decrby(reportKeys.rejectedBytes(), Number(bytes) || 0);
      await rm(fileOf(dir, id, kind), { force: true });
      return true;
    },

    count: () => redis.zcard(reportKeys.rejected()),
  };
}
