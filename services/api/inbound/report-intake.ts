// Report intake: the one place reports are stored, whichever way they came (HL7 feed, API). It owns the rules:
//   durable:  journal append + fdatasync, then Redis; the caller acknowledges only after ingest() resolves;
//   dedupe:   a message key seen within REPORTS_DEDUPE_DAYS is a duplicate (stored once, acknowledged each time);
//   link:     AccessionNumber -> StudyInstanceUIDs through an index built from the study hashes the listener writes
//             (keys.study: AccessionNumber field), kept current by each scored-study event and a periodic sweep;
//   hold:     a report whose study has not been received waits under reportKeys.held until it is, and moves to
//             the rejected store (kept for replay, never dropped) after REPORTS_HOLD_DAYS;
//   precedence: shared/reports.ts supersedes() (P < F < C = X; of one rank the newer by the reports' own times,
//             OBR-22 else MSH-7, and without them the later received).
// Redis writes are transactions guarded by WATCH on a connection of the intake's own, one at a time per process,
// so replicas racing on one accession retry instead of overwriting each other. No report text in logs or errors.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../../../shared/logger';
import { queueMatchedReport, reportKeys, supersedes, type StoredReport } from '../../../shared/reports';
import { keys, scanStudyUids } from '../../../shared/studies';
import type { Journal, JournalEntry } from './journal';
import type { ReportMetrics } from './metrics';

export type IntakeOutcome = 'matched' | 'held' | 'duplicate' | 'superseded';

export interface IntakeResult {
  outcome: IntakeOutcome;
  /** The studies the report is now (or already was) filed under; empty while held. */
  StudyInstanceUIDs: string[];
}

export interface IngestOptions {
  /** Journal first (default). False when replaying the journal itself. */
  journal?: boolean;
  /** Store even if the key was seen: a replay of a report an admin chose to resubmit. */
  force?: boolean;
}

export interface HeldReport {
  AccessionNumber: string;
  heldAt: number;
  status: StoredReport['status'];
  source: StoredReport['source'];
}

export interface ReportIntake {
  ingest(report: StoredReport, messageKey: string, options?: IngestOptions): Promise<IntakeResult>;
  /** Indexes a received study's accession number and files any report waiting for it; returns reports filed. */
  matchStudy(StudyInstanceUID: string): Promise<number>;
  /** Expires old held reports, then indexes every study hash and files what waits; at start and on a timer. */
  sweep(options?: { full?: boolean }): Promise<{ indexed: number; matched: number; expired: number }>;
  /** Re-ingests the journal (after a Redis that lost its last writes); returns how many were stored again. */
  replayJournal(): Promise<{ stored: number; duplicates: number; badLines: number }>;
  held(limit: number): Promise<{ total: number; items: HeldReport[] }>;
  close(): Promise<void>;
}

export interface ReportIntakeDeps {
  /** Duplicated for the intake's transactions; the caller keeps and closes its own. */
  redis: Redis;
  journal: Journal;
  metrics: ReportMetrics;
  logger: Logger;
  dedupeSeconds: number;
  holdMs: number;
  /** A held report that expired: keep it for replay (rejected store). Throws to leave it held for the next sweep. */
  onExpired: (report: StoredReport) => Promise<void>;
  clock?: () => number;
}

/** A message id from its parts, hashed: fixed length, no delimiters in Redis keys, nothing readable in them. */
export function messageKey(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\u0000'), 'utf8').digest('hex').slice(0, 40);
}

const MAX_ATTEMPTS = 20;
const RETRY = Symbol('retry');

export function createReportIntake(deps: ReportIntakeDeps): ReportIntake {
  const clock = deps.clock ?? Date.now;
  const { metrics, logger } = deps;
  // Its own connection: WATCH belongs to a connection, and the API's is shared by every request. Commands wait
  // for it to connect (offline queue) but still fail fast after that, like the producer connection it copies.
  const redis = deps.redis.duplicate({ enableOfflineQueue: true });
  redis.on('error', (err) => logger.warn({ err: err.message }, 'report intake redis error'));
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(step: () => Promise<T>): Promise<T> => {
    const next = chain.then(step);
    chain = next.then(() => undefined, () => undefined);
    return next;
  };

  const parse = (raw: string | null): StoredReport | null => (raw ? (JSON.parse(raw) as StoredReport) : null);

  /** Received studies with this accession number; index entries whose study hash is gone are dropped. */
  async function studiesOf(accession: string): Promise<string[]> {
    const uids = await redis.smembers(reportKeys.accession(accession));
    if (uids.length === 0) return [];
    const pipeline = redis.pipeline();
    for (const uid of uids) pipeline.exists(keys.study(uid));
    const exists = (await pipeline.exec()) ?? [];
    const live = uids.filter((_, i) => exists[i]?.[1] === 1);
    const stale = uids.filter((_, i) => exists[i]?.[1] === 0);
    if (stale.length > 0) await redis.srem(reportKeys.accession(accession), ...stale);
    return live.sort();
  }

  /** Runs `attempt` until its WATCHed transaction commits (null from EXEC means another writer came first). */
  async function guarded<T>(attempt: () => Promise<T | typeof RETRY>): Promise<T> {
    for (let i = 0; i < MAX_ATTEMPTS; i++) {
      const r = await attempt();
      if (r !== RETRY) return r;
    }
    throw new Error('report intake: too many concurrent writers on one accession number');
  }

  async function store(report: StoredReport, key: string, force: boolean): Promise<IntakeResult> {
    const acc = report.AccessionNumber;
    return guarded(async () => {
      await redis.watch(reportKeys.seen(key), reportKeys.held(acc), reportKeys.accession(acc));
      if (!force && (await redis.exists(reportKeys.seen(key))) === 1) {
        await redis.unwatch();
        return { outcome: 'duplicate' as const, StudyInstanceUIDs: await studiesOf(acc) };
      }
      const uids = await studiesOf(acc);
      const held = parse(await redis.get(reportKeys.held(acc)));
      const multi = () => redis.multi().set(reportKeys.seen(key), '1', 'EX', deps.dedupeSeconds);
      if (uids.length === 0) {
        if (held && !supersedes(report, held)) {
          const done = await multi().exec();
          return done ? { outcome: 'superseded' as const, StudyInstanceUIDs: [] } : RETRY;
        }
        const done = await multi()
          .set(reportKeys.held(acc), JSON.stringify({ ...report, StudyInstanceUID: undefined }))
          .zadd(reportKeys.holding(), 'NX', clock(), acc)
          .exec();
        return done ? { outcome: 'held' as const, StudyInstanceUIDs: [] } : RETRY;
      }
      await redis.watch(...uids.map((u) => reportKeys.report(u)));
      const current = await Promise.all(uids.map(async (u) => parse(await redis.get(reportKeys.report(u)))));
      // A report held before the index knew the study: whichever of the two wins is filed, the other is done with.
      const candidate = held && !supersedes(report, held) ? held : report;
      const tx = multi();
      let filed = 0;
      uids.forEach((uid, i) => {
        if (supersedes(candidate, current[i])) {
          queueMatchedReport(tx, { ...candidate, StudyInstanceUID: uid });
          filed++;
        }
      });
      if (held) tx.del(reportKeys.held(acc)).zrem(reportKeys.holding(), acc);
      const done = await tx.exec();
      if (!done) return RETRY;
      return { outcome: filed > 0 && candidate === report ? ('matched' as const) : ('superseded' as const), StudyInstanceUIDs: uids };
    });
  }

  async function fileFor(uid: string, accession: string): Promise<number> {
    return guarded(async () => {
      await redis.watch(reportKeys.held(accession), reportKeys.report(uid), reportKeys.accession(accession));
      const held = parse(await redis.get(reportKeys.held(accession)));
      const siblings = (await studiesOf(accession)).filter((u) => u !== uid);
      if (siblings.length > 0) await redis.watch(...siblings.map((u) => reportKeys.report(u)));
      const siblingReports = await Promise.all(siblings.map(async (u) => parse(await redis.get(reportKeys.report(u)))));
      // A study that shares its accession number with one already reported gets the same report.
      let best: StoredReport | null = held;
      for (const r of siblingReports) if (r && supersedes(r, best)) best = r;
      if (!best) {
        await redis.unwatch();
        return 0;
      }
      const current = parse(await redis.get(reportKeys.report(uid)));
      const tx = redis.multi().sadd(reportKeys.accession(accession), uid);
      let filed = 0;
      const same = current !== null && current.receivedAt === best.receivedAt && current.text === best.text && current.status === best.status;
      if (!same && supersedes(best, current)) {
        queueMatchedReport(tx, { ...best, StudyInstanceUID: uid });
        filed++;
      }
      if (held) {
        // The held report goes to every received study with this accession number, then stops waiting.
        siblings.forEach((s, i) => {
          if (supersedes(held, siblingReports[i])) queueMatchedReport(tx, { ...held, StudyInstanceUID: s });
        });
        tx.del(reportKeys.held(accession)).zrem(reportKeys.holding(), accession);
      }
      const done = await tx.exec();
      return done ? filed : RETRY;
    });
  }

  async function matchStudy(uid: string): Promise<number> {
    const accession = (await redis.hget(keys.study(uid), 'AccessionNumber'))?.trim();
    if (!accession) return 0;
    await redis.sadd(reportKeys.accession(accession), uid);
    const filed = await fileFor(uid, accession);
    if (filed > 0) metrics.matched.inc({ when: 'study' }, filed);
    return filed;
  }

  async function expire(): Promise<number> {
    const cutoff = clock() - deps.holdMs;
    const old = await redis.zrangebyscore(reportKeys.holding(), '-inf', cutoff);
    let expired = 0;
    for (const acc of old) {
      const report = parse(await redis.get(reportKeys.held(acc)));
      if (report) {
        try {
          await deps.onExpired(report);
        } catch (err) {
          logger.warn({ err: (err as Error).message }, 'a held report past REPORTS_HOLD_DAYS could not be moved to the rejected store; it stays held');
          continue;
        }
        metrics.rejected.inc({ source: report.source, reason: 'no-study' });
        expired++;
      }
      await redis.multi().del(reportKeys.held(acc)).zrem(reportKeys.holding(), acc).exec();
    }
    return expired;
  }

  return {
    ingest(report, key, options = {}) {
      return serial(async () => {
        if (options.journal !== false) await deps.journal.append({ key, report });
        const result = await store(report, key, options.force ?? false);
        const source = report.source;
        if (result.outcome === 'duplicate') metrics.duplicates.inc({ source });
        else {
          metrics.stored.inc({ source });
          if (result.outcome === 'held') metrics.held.inc({ source });
          if (result.outcome === 'matched') metrics.matched.inc({ when: 'arrival' }, result.StudyInstanceUIDs.length);
        }
        return result;
      });
    },

    matchStudy: (uid) => serial(() => matchStudy(uid)),

    sweep(options = {}) {
      return serial(async () => {
        const expired = await expire();
        let indexed = 0;
        let matched = 0;
        const waiting = new Set(await redis.zrange(reportKeys.holding(), '0', '-1'));
        if (!options.full && waiting.size === 0) return { indexed, matched, expired };
        for await (const batch of scanStudyUids(redis)) {
          const pipeline = redis.pipeline();
          for (const uid of batch) pipeline.hget(keys.study(uid), 'AccessionNumber');
          const rows = (await pipeline.exec()) ?? [];
          const add = redis.pipeline();
          const found: Array<[string, string]> = [];
          batch.forEach((uid, i) => {
            const acc = (rows[i]?.[1] as string | null)?.trim();
            if (!acc) return;
            add.sadd(reportKeys.accession(acc), uid);
            indexed++;
            if (waiting.has(acc)) found.push([uid, acc]);
          });
          await add.exec();
          for (const [uid, acc] of found) {
            const filed = await fileFor(uid, acc);
            if (filed > 0) metrics.matched.inc({ when: 'study' }, filed);
            matched += filed;
          }
        }
        return { indexed, matched, expired };
      });
    },

    replayJournal() {
      return serial(async () => {
        let stored = 0;
        let duplicates = 0;
        let badLines = 0;
        // Most entries are in Redis already: ask for their message ids a batch at a time, store only the others.
        const flush = async (batch: JournalEntry[]) => {
          const pipeline = redis.pipeline();
          for (const e of batch) pipeline.exists(reportKeys.seen(e.key));
          const seen = (await pipeline.exec()) ?? [];
          for (const [i, e] of batch.entries()) {
            if (seen[i]?.[1] === 1) duplicates++;
            else if ((await store(e.report, e.key, false)).outcome === 'duplicate') duplicates++;
            else stored++;
          }
        };
        let batch: JournalEntry[] = [];
        for await (const entry of deps.journal.entries(() => badLines++)) {
          batch.push(entry);
          if (batch.length >= 500) {
            await flush(batch);
            batch = [];
          }
        }
        await flush(batch);
        return { stored, duplicates, badLines };
      });
    },

    async held(limit) {
      const [total, rows] = await Promise.all([
        redis.zcard(reportKeys.holding()),
        redis.zrange(reportKeys.holding(), '0', String(limit - 1), 'WITHSCORES'),
      ]);
      const items: HeldReport[] = [];
      for (let i = 0; i < rows.length; i += 2) {
        const r = parse(await redis.get(reportKeys.held(rows[i])));
        if (r) items.push({ AccessionNumber: rows[i], heldAt: Number(rows[i + 1]), status: r.status, source: r.source });
      }
      return { total, items };
    },

    async close() {
      await chain;
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

