// The API's calibration service: the calibrator for the loaded bundle (calibrator.ts), the report-vector cache
// filled as reports arrive (reportKeys.reportedChannel), and a background pass that re-tries site queries that
// cannot flag (uncalibrated, or calibrated for other text or another bundle) while reports and results keep
// arriving, at most every CALIBRATION_INTERVAL_SECONDS. A pass holds a short Redis lock so replicas do not repeat
// it; a query edited while it was being calibrated keeps the edit (the result is written only if it is unchanged).
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../../../shared/logger';
import { calibrationState } from '../../../shared/models/calibration';
import { flagsNearlyEverything, textModelVersion } from '../../../shared/models/pseudo-labels';
import { changeQueryIf, dropCalibration, readSiteLayer, recordCalibrationAttempt } from '../../../shared/queries';
import { reportedStudies, reportKeys } from '../../../shared/reports';
import { resultKeys } from '../../../shared/results';
import { subscribe } from '../../../shared/redis';
import { KEY_PREFIX } from '../../../shared/studies';
import type { ModelStatus } from '../app';
import { mentionSimilarity } from '../language';
import type { EmbedText } from '../report-check';
import { createCalibrator, type Calibrator } from './calibrator';
import { createReportVectorCache, type ReportVectorCache } from './report-vectors';

export interface CalibrationSettings {
  minStudies: number;
  minPositives: number;
  maxStudies: number;
  /** 0: no background passes (edits still calibrate at once). */
  intervalMs: number;
  /** API_REPORT_MENTION_SIMILARITY when set. */
  mentionSimilarity?: number;
}

export interface CalibrationServiceDeps {
  redis: Redis;
  modelStatus: () => ModelStatus;
  embed: EmbedText;
  settings: CalibrationSettings;
  log: Logger;
  /** Called for each stored result a calibration meets that cannot be parsed (the API counts them for its metrics). */
  onUnreadable?: () => void;
}

/** A calibration's log line names this many unreadable results' UIDs at most (and says how many in all). */
const UNREADABLE_LOGGED = 50;

export interface PassOutcome {
  tried: string[];
  calibrated: string[];
  /** Queries whose stored calibration flagged nearly every study and could not be redone: now uncalibrated. */
  dropped?: string[];
  /** Another process held the lock, or the bundle is not loaded. */
  skipped?: string;
}

const LOCK = `${KEY_PREFIX}:queries:calibrating`;
const LOCK_MS = 120_000;
/**
 * The pass's lock, held under a token of this pass (replicas all run as pid 1): renewed (1) before each query and
 * released (0) at the end only while it is still this pass's. A pass longer than LOCK_MS deleted the lock another
 * replica had taken since, letting a third start too. KEYS: lock. ARGV: token, 1 renew / 0 release, ms.
 */
const LOCK_IF_OURS = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then return redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return redis.call('DEL', KEYS[1])
`;

export function createCalibrationService(deps: CalibrationServiceDeps) {
  const { redis, log } = deps;
  let current: { key: string; calibrator: Calibrator; reports: ReportVectorCache } | null = null;
  let sub: Redis | null = null;
  let timer: NodeJS.Timeout | null = null;
  let dirty = true;
  let running: Promise<PassOutcome> | null = null;

  /** The calibrator of the loaded bundle (made again when another bundle is loaded); null while none is. */
  function parts(): { calibrator: Calibrator; reports: ReportVectorCache } | null {
    const m = deps.modelStatus();
    if (!m.loaded || !m.manifest || !m.language) return null;
    const key = `${m.manifest.bundleId}@${m.manifest.version}`;
    if (current?.key !== key) {
      const reports = createReportVectorCache(redis, textModelVersion(m.manifest), deps.embed);
      const calibrator = createCalibrator({
        redis, manifest: m.manifest, embed: deps.embed, reports,
        mentionSimilarity: mentionSimilarity(deps.settings.mentionSimilarity, m.language),
        minStudies: deps.settings.minStudies, minPositives: deps.settings.minPositives, maxStudies: deps.settings.maxStudies,
        // Counted per read and logged by UID (never the stored text), as the worklist does: runbook NeurotriageResultsUnreadable.
        onUnreadable: (uids) => {
          for (let i = 0; i < uids.length; i++) deps.onUnreadable?.();
          log.warn({ studies: uids.slice(0, UNREADABLE_LOGGED), count: uids.length }, 'stored result unreadable: left out of calibration');
        },
      });
      current = { key, calibrator, reports };
    }
    return current;
  }

  async function passOnce(): Promise<PassOutcome> {
    const p = parts();
    const m = deps.modelStatus();
    if (!p || !m.manifest) return { tried: [], calibrated: [], skipped: 'the model bundle is not loaded' };
    const token = randomUUID();
    if ((await redis.set(LOCK, token, 'PX', LOCK_MS, 'NX')) !== 'OK') return { tried: [], calibrated: [], skipped: 'another process is calibrating' };
    const out: PassOutcome = { tried: [], calibrated: [] };
    try {
      const site = await readSiteLayer(redis);
      for (const q of site.queries) {
        // A calibration that flags nearly every study (stored before such thresholds were refused) is tried again too.
        const degenerate = q.calibration !== undefined && flagsNearlyEverything(q.calibration);
        if (calibrationState(q, m.manifest.version) === 'calibrated' && !degenerate) continue;
        // Another replica holds the lock now (this pass outlived it): it does the rest.
        if (Number(await redis.eval(LOCK_IF_OURS, 1, LOCK, token, '1', String(LOCK_MS))) === 0) break;
        out.tried.push(q.id);
        // Written (the attempt with the calibration, or alone when the query stays as it is) only if nobody edited,
        // calibrated or deleted the query meanwhile (compared and written in one step).
        const expected = site.stored[q.id];
        const outcome = await p.calibrator.calibrate(q);
        if (!outcome.ok && !degenerate) {
          await recordCalibrationAttempt(redis, q.id, expected, outcome.attempt);
          continue;
        }
        if (!outcome.ok) {
          if ((await dropCalibration(redis, q, expected, outcome.attempt)) !== null) out.dropped = [...(out.dropped ?? []), q.id];
          continue;
        }
        if ((await changeQueryIf(redis, q.id, expected, { put: { ...q, calibration: outcome.calibration } }, outcome.attempt)) !== null) out.calibrated.push(q.id);
      }
    } finally {
      await redis.eval(LOCK_IF_OURS, 1, LOCK, token, '0', '0');
    }
    if (out.calibrated.length > 0) log.info({ calibrated: out.calibrated, tried: out.tried }, 'site queries calibrated from reports');
    if (out.dropped) log.warn({ dropped: out.dropped }, 'site query calibrations that flagged nearly every study dropped: not calibrated until reports allow it');
    return out;
  }

  /** One background pass (shared by concurrent callers). */
  function pass(): Promise<PassOutcome> {
    running ??= passOnce().finally(() => (running = null));
    return running;
  }

  /**
   * Once the bundle is loaded: the sentence vectors of the reports a calibration would read, for reports that
   * arrived before this process (or this text model) existed, in the background, a chunk at a time, so the first
   * calibration after an upgrade does not embed them all inside a request.
   */
  let warming: Promise<void> | null = null;
  let stopped = false;
  async function warmReports(): Promise<void> {
    while (!stopped && !parts()) await new Promise((r) => setTimeout(r, 1000).unref());
    const p = parts();
    if (!p || stopped) return;
    const uids = await reportedStudies(redis, deps.settings.maxStudies * 4);
    for (let i = 0; i < uids.length && !stopped; i += 250) await p.reports.many(uids.slice(i, i + 250));
    if (uids.length > 0) log.info({ reports: uids.length }, 'report sentence vectors ready for calibration');
  }

  return {
    calibrator: () => parts()?.calibrator ?? null,
    reports: () => parts()?.reports ?? null,
    pass,
    async start(): Promise<void> {
      sub = subscribe(redis, [reportKeys.reportedChannel(), resultKeys.scoredChannel()], (channel, uid) => {
        dirty = true;
        if (channel !== reportKeys.reportedChannel()) return;
        // A new report: its sentence vectors now, so a calibration later reads them from the cache.
        parts()?.reports.warm(uid).catch((err: Error) => log.warn({ err: err.message }, 'embedding a report for calibration failed; it is retried when a calibration needs it'));
      }, (err) => log.warn({ err: err.message }, 'calibration subscriber: Redis error (ioredis reconnects)'));
      if (deps.settings.intervalMs > 0) warming = warmReports().catch((err: Error) => log.warn({ err: err.message }, 'embedding stored reports failed; calibrations embed what they need'));
      if (deps.settings.intervalMs > 0) {
        timer = setInterval(() => {
          if (!dirty) return;
          dirty = false;
          pass().catch((err: Error) => log.warn({ err: err.message }, 'calibration pass failed; retried at the next interval'));
        }, deps.settings.intervalMs);
        timer.unref();
      }
    },
    async close(): Promise<void> {
      stopped = true;
      if (timer) clearInterval(timer);
      await warming;
      await running?.catch(() => undefined);
      sub?.disconnect();
    },
  };
}

export type CalibrationService = ReturnType<typeof createCalibrationService>;
