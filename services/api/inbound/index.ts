// The report feed as one service of the API process: journal, intake, rejected store, HL7 feed and, when
// REPORTS_MLLP_PORT is set, the MLLP listener; plus the scored-study subscription and the sweep timer that link
// held reports to studies. main.ts builds it from the settings; the API routes (routes/reports.ts) use it too.
// Matching runs on the worker's scored-study event (nt:events:scored): that is when a study has the image scores
// calibration needs, it costs one hash read per study, and it links a report seconds after its study is scored.
// Pub/sub is lost while no API runs, so a sweep (at start, then every REPORTS_MATCH_SWEEP_SECONDS while reports are
// held) reads every study hash's AccessionNumber as well.
import path from 'node:path';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { ConnectionGuard } from '../../../shared/connection-guard';
import type { Logger } from '../../../shared/logger';
import { reportKeys } from '../../../shared/reports';
import { subscribe } from '../../../shared/redis';
import { resultKeys } from '../../../shared/results';
import type { ReportsConfig } from './config';
import { createHl7Feed, type Hl7Feed } from './hl7-feed';
import { createJournal } from './journal';
import { createReportMetrics, type ReportMetrics } from './metrics';
import { MllpServer } from './mllp-server';
import { createRejectedStore, type RejectedStore } from './rejected-store';
import { createReportIntake, messageKey, type ReportIntake } from './report-intake';

/** How long the report feed waits before trying its start again while Redis is not reachable. */
const START_RETRY_MS = 5000;

export { loadReportsConfig, type ReportsConfig } from './config';
export { messageKey, type ReportIntake, type IntakeResult, type IntakeOutcome } from './report-intake';
export type { RejectedStore, RejectedEntry } from './rejected-store';
export { hl7MessageKey, type Hl7Feed, type ReplayResult, type FeedOutcome } from './hl7-feed';

export interface ReportInbound {
  intake: ReportIntake;
  rejected: RejectedStore;
  feed: Hl7Feed;
  metrics: ReportMetrics;
  /** Journal replay, a full sweep, the scored subscription, the sweep timer and the MLLP listener. */
  start(): Promise<void>;
  /** Where the MLLP listener listens (after start), or null without one. */
  mllpAddress(): { host: string; port: number } | null;
  close(): Promise<void>;
}

export interface ReportInboundDeps {
  /** The API's producer connection; the intake and the subscriber duplicate it. */
  redis: Redis;
  registry: Registry;
  logger: Logger;
  /** Absolute DATA_DIR: reports/journal and reports/rejected go under it. */
  dataDir: string;
  clock?: () => number;
  /** Journal file name part; default hostname-pid. */
  instance?: string;
  /** The site's IANA time zone, for report times without an offset (tests); by default this process's (TZ). */
  timeZone?: string;
}

export function createReportInbound(config: ReportsConfig, deps: ReportInboundDeps): ReportInbound {
  const logger = deps.logger.child({ component: 'reports' });
  const clock = deps.clock ?? Date.now;
  const root = path.join(deps.dataDir, 'reports');
  const journal = createJournal({ dir: path.join(root, 'journal'), days: config.journalDays, clock, instance: deps.instance });
  const rejected = createRejectedStore({ redis: deps.redis, dir: path.join(root, 'rejected'), max: config.rejectedMax, maxBytes: config.rejectedMaxBytes });
  const metrics = createReportMetrics(deps.registry, {
    held: () => deps.redis.zcard(reportKeys.holding()),
    kept: () => rejected.count(),
  });
  const intake = createReportIntake({
    redis: deps.redis, journal, metrics, logger, clock,
    dedupeSeconds: config.dedupeSeconds,
    holdMs: config.holdMs,
    onExpired: async (report) => {
      const entry = await rejected.keep({
        kind: 'report', payload: Buffer.from(JSON.stringify(report), 'utf8'), reason: 'no-study',
        detail: `no study with this accession number was received within REPORTS_HOLD_DAYS (${Math.round(config.holdMs / 86_400_000)} days)`,
        receivedAt: clock(),
      });
      if (!entry) throw new Error('the rejected store is full (REPORTS_REJECTED_MAX, REPORTS_REJECTED_MAX_MB)');
      logger.warn({ rejectedId: entry.id }, 'a held report expired without its study; kept for replay');
    },
  });
  const feed = createHl7Feed({
    rules: { accessionFields: config.accessionFields, allowedFacilities: config.allowedFacilities, timeZone: deps.timeZone }, intake, rejected, metrics, logger, clock,
    ackTimeoutMs: config.mllp?.ackTimeoutMs, maxBatchMessages: config.mllp?.maxBatchMessages,
  });

  const mllp = config.mllp
    ? new MllpServer({
        host: config.mllp.host, port: config.mllp.port,
        guard: new ConnectionGuard({
          maxConnections: config.mllp.maxConnections, maxConnectionsPerPeer: config.mllp.maxConnectionsPerHost,
          refused: metrics.refusedConnections, log: logger.child({ listener: 'mllp' }),
        }),
        idleTimeoutMs: config.mllp.idleTimeoutMs, maxMessageBytes: config.mllp.maxMessageBytes,
        replyTimeoutMs: (message) => feed.replyTimeoutMs(message),
        handler: (message, peer) => feed.handle(message, peer),
        onTimeout: (message) => feed.timeoutReply(message),
      })
    : null;
  if (mllp) {
    mllp.on('connection', (peer) => {
      metrics.connections.inc();
      logger.info({ connection: peer.connection, remote: peer.remote }, 'MLLP connection');
    });
    mllp.on('close', (peer, info) => {
      metrics.connections.dec();
      const level = info.partialFrame ? 'warn' : 'debug';
      logger[level]({ connection: peer.connection, partialFrame: info.partialFrame }, 'MLLP connection closed');
    });
    mllp.on('idle', (peer) => logger.info({ connection: peer.connection }, 'MLLP connection idle: closed'));
    mllp.on('garbage', (peer, info) => logger.warn({ connection: peer.connection, bytes: info.bytes }, 'bytes outside an MLLP frame ignored'));
    mllp.on('failure', (peer, info) => logger.warn({ connection: peer?.connection, reason: info.reason }, 'MLLP connection problem'));
  }

  let subscriber: Redis | undefined;
  let closed = false;
  let starting: Promise<void> = Promise.resolve();
  /** Ends the start's wait between replay attempts (close() calls it). */
  let wake: () => void = () => undefined;
  let timer: NodeJS.Timeout | undefined;
  let sweeping: Promise<unknown> = Promise.resolve();
  const sweep = (full: boolean) => {
    sweeping = intake
      .sweep({ full })
      .then((r) => {
        if (r.matched > 0 || r.expired > 0) logger.info(r, 'report sweep');
      })
      .catch((err: Error) => logger.warn({ err: err.message }, 'report sweep failed; next one retries'));
    return sweeping;
  };

  /** The feed's start: journal replay (retried while Redis does not answer), subscriber, sweeps, MLLP listener. */
  async function run(): Promise<void> {
    // The journal replay needs Redis: while it is not reachable (an outage as the API starts) the replay is tried
    // again every START_RETRY_MS, and the MLLP listener opens after it. close() ends the wait.
    for (let attempt = 1; !closed; attempt++) {
      try {
        const replay = await intake.replayJournal();
        if (replay.stored > 0 || replay.badLines > 0) logger.warn(replay, 'report journal replayed: reports Redis did not have were stored again');
        break;
      } catch (err) {
        if (attempt === 1 || attempt % 60 === 0) logger.warn({ err: (err as Error).message, attempt }, `report feed waits: the journal replay failed and is retried every ${START_RETRY_MS / 1000} s; the MLLP listener opens after it`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, START_RETRY_MS).unref();
        });
      }
    }
    if (closed) return;
    await journal.prune();
    if (closed) return;
    subscriber = subscribe(deps.redis, [resultKeys.scoredChannel()], (_channel, uid) => {
      intake.matchStudy(uid).catch((err: Error) => logger.warn({ err: err.message, StudyInstanceUID: uid }, 'report match on a scored study failed; the sweep retries'));
    }, (err) => logger.warn({ err: err.message }, 'report intake subscriber redis error'));
    // The first sweep indexes every study received before this process (or before the feed existed).
    void sweep(true);
    timer = setInterval(() => {
      void journal.prune().catch(() => undefined);
      void sweep(false);
    }, config.sweepMs);
    timer.unref();
    if (mllp) {
      const at = await mllp.listen();
      logger.info({ host: at.host, port: at.port }, 'report MLLP listener ready (HL7 ORU^R01)');
      // Like the DICOM allow-list, empty means nobody: each message is answered AR and kept, for replay once set.
      if (config.allowedFacilities?.size === 0) {
        logger.warn('REPORTS_MLLP_ALLOWED_FACILITIES is empty: every report message is rejected (AR) and kept for replay until the RIS\'s sending facility (MSH-4) is listed');
      }
    }
  }

  return {
    intake, rejected, feed, metrics,

    start() {
      starting = run();
      return starting;
    },

    mllpAddress: () => (mllp ? mllp.address() : null),

    async close() {
      closed = true;
      wake();
      // A start still running finishes first (each of its steps checks `closed`), so nothing it opens outlives this.
      await starting.catch(() => undefined);
      clearInterval(timer);
      await mllp?.close();
      await sweeping;
      await subscriber?.quit().catch(() => subscriber?.disconnect());
      await intake.close();
      await journal.close();
    },
  };
}

/** The API's message key for a report posted without a reportId: the same report posted twice is stored once. */
export function apiMessageKey(report: { AccessionNumber: string; status: string; text: string }, reportId?: string): string {
  return reportId ? messageKey('api', reportId) : messageKey('api-content', report.AccessionNumber, report.status, report.text);
}
