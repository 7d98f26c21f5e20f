// Read side of the study contracts for the API: the study hash (shared/studies.ts), the result JSON, the stored
// vectors and the worklist sorted set (shared/results.ts). Only reads; the worker and listener own the writes.
import type { Redis } from 'ioredis';
import type { Priority } from '../../shared/model-manifest';
import { flagStatement } from '../../shared/models/decision';
import { parseResult, UNREADABLE } from '../../shared/result-schema';
import { resultKeys, type StudyResult } from '../../shared/results';
import { isUid, keys, scanStudyUids, type StudyStatus } from '../../shared/studies';
import { decodeVector, studyVectors, type StudyVectors } from './vectors';

export interface StudyState {
  status: StudyStatus | null;
  /** Numeric fields of the study hash: firstReceivedAt, lastReceivedAt, instances, bytes and stage times (…At). */
  numbers: Record<string, number>;
  /** Why a study failed or is unsupported, when the writer recorded it. */
  reason: string | null;
}

export type StoredResult = StudyResult | null | typeof UNREADABLE;

/** Thrown by result() for one study whose stored result is unreadable; the message names the UID, never the text. */
export class UnreadableResultError extends Error {
  override name = 'UnreadableResultError';
  constructor(public readonly StudyInstanceUID: string) {
    super(`the stored result of study ${StudyInstanceUID} is unreadable`);
  }
}

export interface WorklistItem extends StudyResult {
  status: StudyStatus | null;
}

export interface UnscoredStudy {
  StudyInstanceUID: string;
  status: StudyStatus;
  AccessionNumber?: string;
  firstReceivedAt: number;
  lastReceivedAt: number;
  statusAt: number | null;
  instances: number;
  reason: string | null;
}

export interface WorklistFilter {
  priority?: Priority[];
  status?: StudyStatus[];
  /** Only studies where this query is flagged. */
  flagged?: string;
  /** receivedAt >= since (ms epoch). */
  since?: number;
}

export interface Cursor {
  score: number;
  uid: string;
}

export class BadCursorError extends Error {
  override name = 'BadCursorError';
}

export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.score, c.uid])).toString('base64url');
}

export function decodeCursor(s: string): Cursor {
  try {
    // Exactly what encodeCursor writes: [score, StudyInstanceUID]. [1, ""] or [1, "1.2", "x"] paged from wherever
    // they fell and answered 200, as if they were a cursor.
    const parsed: unknown = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
    if (Array.isArray(parsed) && parsed.length === 2) {
      const [score, uid] = parsed as unknown[];
      if (typeof score === 'number' && Number.isFinite(score) && typeof uid === 'string' && isUid(uid)) return { score, uid };
    }
  } catch {
    // fall through
  }
  throw new BadCursorError('cursor is not one this API returned (use nextCursor from the previous page)');
}

/** firstReceivedAt, lastReceivedAt, queuedAt, statusAt, ... and the counts the listener keeps. */
const PROGRESS_FIELD = /^([a-z][A-Za-z]*At|instances|bytes|series)$/;
const BATCH = 200;

export interface StoreOptions {
  /** How long a byStatus() answer is reused (ms): every open page asks for it on each refresh. */
  statusCacheMs?: number;
  clock?: () => number;
  /** Called for each stored result read that cannot be parsed (the API counts them for its metrics). */
  onUnreadable?: () => void;
}

export function createStudyStore(redis: Redis, options: StoreOptions = {}) {
  const statusCacheMs = options.statusCacheMs ?? 2000;
  const clock = options.clock ?? Date.now;
  const statusCache = new Map<string, { at: number; items: Promise<UnscoredStudy[]> }>();

  /** Stored results, each finding with its decision in words (flagStatement), as the API and page show it. */
  async function results(uids: string[]): Promise<StoredResult[]> {
    if (uids.length === 0) return [];
    const raw = await redis.mget(uids.map((u) => resultKeys.result(u)));
    return raw.map((r) => {
      if (!r) return null;
      const result = parseResult(r);
      if (result === UNREADABLE) {
        options.onUnreadable?.();
        return UNREADABLE;
      }
      return { ...result, findings: result.findings.map((f) => ({ ...f, statement: flagStatement(f) })) };
    });
  }

  async function statuses(uids: string[]): Promise<(StudyStatus | null)[]> {
    if (uids.length === 0) return [];
    const p = redis.pipeline();
    for (const u of uids) p.hget(keys.study(u), 'status');
    const res = (await p.exec()) ?? [];
    return res.map(([err, v]) => (err ? null : ((v as StudyStatus | null) ?? null)));
  }

  const UNSCORED_FIELDS = ['status', 'firstReceivedAt', 'lastReceivedAt', 'statusAt', 'failureReason', 'AccessionNumber', 'instances'] as const;

  /** The study hashes of these UIDs, as list items, keeping those whose status is asked for. */
  async function unscoredOf(uids: string[], statuses: StudyStatus[]): Promise<UnscoredStudy[]> {
    const p = redis.pipeline();
    for (const uid of uids) p.hmget(keys.study(uid), ...UNSCORED_FIELDS);
    const rows = (await p.exec()) ?? [];
    const out: UnscoredStudy[] = [];
    rows.forEach(([err, v], i) => {
      if (err) return;
      const [status, first, last, at, reason, accession, instances] = v as (string | null)[];
      if (!status || !statuses.includes(status as StudyStatus)) return;
      out.push({
        StudyInstanceUID: uids[i],
        status: status as StudyStatus,
        ...(accession ? { AccessionNumber: accession } : {}),
        firstReceivedAt: Number(first ?? 0),
        lastReceivedAt: Number(last ?? first ?? 0),
        statusAt: at ? Number(at) : null,
        instances: Number(instances ?? 0),
        reason: reason ?? null,
      });
    });
    return out;
  }

  const INDEXED: readonly StudyStatus[] = ['failed', 'unsupported'];

  /**
   * Failed and unsupported studies from the worker's untriaged index (newest lastReceivedAt first), read in chunks
   * until `limit` entries still have an asked-for status; null until the worker has built the index.
   */
  async function indexedByStatus(statuses: StudyStatus[], limit: number): Promise<UnscoredStudy[] | null> {
    if (!statuses.every((s) => INDEXED.includes(s)) || (await redis.exists(keys.untriagedIndexBuilt())) !== 1) return null;
    const found: UnscoredStudy[] = [];
    const chunk = Math.max(100, limit * 2);
    for (let start = 0; found.length < limit; start += chunk) {
      const uids = await redis.zrevrange(keys.untriagedStudies(), start, start + chunk - 1);
      found.push(...(await unscoredOf(uids, statuses)));
      if (uids.length < chunk) break;
    }
    return found;
  }

  /**
   * Studies not on the worklist by status (failed, unsupported, or still on their way), newest first. Failed and
   * unsupported ones come from the worker's index; other statuses (and all of them until the index is built) SCAN
   * the study hashes: O(keys in Redis), tens to hundreds of milliseconds per 10,000 studies (bench:api-search),
   * shared through a short cache.
   */
  async function listByStatus(statuses: StudyStatus[], limit: number): Promise<UnscoredStudy[]> {
    const found = (await indexedByStatus(statuses, limit)) ?? (await scanByStatus(statuses));
    found.sort((a, b) => b.lastReceivedAt - a.lastReceivedAt || a.StudyInstanceUID.localeCompare(b.StudyInstanceUID));
    return found.slice(0, limit);
  }

  async function scanByStatus(statuses: StudyStatus[]): Promise<UnscoredStudy[]> {
    const found: UnscoredStudy[] = [];
    for await (const uids of scanStudyUids(redis)) found.push(...(await unscoredOf(uids, statuses)));
    return found;
  }

  return {
    /** The study's result, null when there is none; UnreadableResultError when it cannot be read. */
    async result(uid: string): Promise<StudyResult | null> {
      const result = (await results([uid]))[0];
      if (result === UNREADABLE) throw new UnreadableResultError(uid);
      return result;
    },

    async state(uid: string): Promise<StudyState | null> {
      const hash = await redis.hgetall(keys.study(uid));
      if (Object.keys(hash).length === 0) return null;
      const numbers: Record<string, number> = {};
      for (const [k, v] of Object.entries(hash)) {
        // Only counts and times cross to the client: the hash is the listener's and worker's, and its other
        // fields (storage keys, job ids, accession numbers) are not progress.
        if (!PROGRESS_FIELD.test(k)) continue;
        const n = Number(v);
        if (v !== '' && Number.isFinite(n)) numbers[k] = n;
      }
      return { status: (hash.status as StudyStatus) ?? null, numbers, reason: hash.failureReason ?? hash.reason ?? null };
    },

    async vectors(uid: string): Promise<StudyVectors | null> {
      return studyVectors(await redis.hgetallBuffer(resultKeys.vectors(uid)));
    },

    /**
     * One page of the worklist in rank order (priority class, then probability, then arrival), filters applied as it walks the
     * sorted set. Paging is by cursor (score + UID of the last item), so studies arriving meanwhile neither
     * repeat nor shift a page. Members sharing a score are ordered by UID, which the cursor also uses.
     */
    async worklist(filter: WorklistFilter, limit: number, cursor?: Cursor): Promise<{ items: WorklistItem[]; nextCursor: string | null; unreadable: string[] }> {
      const page: { item: WorklistItem; at: Cursor }[] = [];
      // Studies whose result cannot be read, so not filtered, are named on the page they would sit in: up to its
      // last item, or all of them on the last page (the walk reads past a full page, and the next page reads them again).
      const unreadable: string[] = [];
      let unreadableInPage = 0;
      let min: number | '-inf' = cursor ? cursor.score : '-inf';
      let seenAtMin = 0;
      for (;;) {
        const flat = await redis.zrangebyscore(resultKeys.worklist(), min, '+inf', 'WITHSCORES', 'LIMIT', seenAtMin, BATCH);
        const batch: Cursor[] = [];
        for (let i = 0; i < flat.length; i += 2) batch.push({ uid: flat[i], score: Number(flat[i + 1]) });
        if (batch.length === 0) break;
        const last = batch[batch.length - 1];
        if (last.score === min) seenAtMin += batch.length;
        else {
          min = last.score;
          seenAtMin = batch.filter((b) => b.score === last.score).length;
        }
        const fresh = cursor ? batch.filter((b) => b.score > cursor.score || (b.score === cursor.score && b.uid > cursor.uid)) : batch;
        const [res, st] = await Promise.all([results(fresh.map((b) => b.uid)), statuses(fresh.map((b) => b.uid))]);
        for (let i = 0; i < fresh.length; i++) {
          const r = res[i];
          if (!r) continue; // result removed while the set still lists it
          if (r === UNREADABLE) {
            unreadable.push(fresh[i].uid);
            continue;
          }
          if (filter.priority && !filter.priority.includes(r.priority)) continue;
          if (filter.status && !filter.status.includes(st[i] as StudyStatus)) continue;
          if (filter.since !== undefined && r.receivedAt < filter.since) continue;
          if (filter.flagged && !r.findings.some((f) => f.queryId === filter.flagged && f.flagged)) continue;
          // One more than asked tells whether a next page exists without an empty last page.
          if (page.length === limit) {
            return { items: page.map((p) => p.item), nextCursor: encodeCursor(page[page.length - 1].at), unreadable: unreadable.slice(0, unreadableInPage) };
          }
          page.push({ item: { ...r, status: st[i] }, at: fresh[i] });
          unreadableInPage = unreadable.length;
        }
        if (batch.length < BATCH) break;
      }
      return { items: page.map((p) => p.item), nextCursor: null, unreadable };
    },

    /** See listByStatus; answers are shared for statusCacheMs so a room of open pages costs one read. */
    byStatus(statuses: StudyStatus[], limit: number): Promise<UnscoredStudy[]> {
      const key = `${[...statuses].sort().join(',')}:${limit}`;
      const hit = statusCache.get(key);
      if (hit && clock() - hit.at < statusCacheMs) return hit.items;
      const items = listByStatus(statuses, limit);
      statusCache.set(key, { at: clock(), items });
      items.catch(() => statusCache.delete(key));
      return items;
    },

    /** Every scored study UID, in worklist order, in chunks (search walks them all). */
    async *scoredUids(): AsyncGenerator<string[]> {
      const chunk = 1000;
      for (let start = 0; ; start += chunk) {
        const uids = await redis.zrange(resultKeys.worklist(), String(start), String(start + chunk - 1));
        if (uids.length > 0) yield uids;
        if (uids.length < chunk) return;
      }
    },

    /** What search ranks by: the combined vector alone when stored (one small read), else the whole hash. */
    async vectorsMany(uids: string[]): Promise<(StudyVectors | null)[]> {
      const p = redis.pipeline();
      for (const u of uids) p.hgetBuffer(resultKeys.vectors(u), 'combined');
      const res = (await p.exec()) ?? [];
      return Promise.all(
        res.map(async ([err, v], i) => {
          if (err) return null;
          if (v) return { combined: decodeVector(v as Buffer), bySequence: {} };
          return studyVectors(await redis.hgetallBuffer(resultKeys.vectors(uids[i])));
        }),
      );
    },

    results,
  };
}

export type StudyStore = ReturnType<typeof createStudyStore>;
