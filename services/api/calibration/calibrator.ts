// Calibrates a site query on this site's past studies, with no hand labels (shared/models/pseudo-labels.ts, the
// code the evaluation measures): the newest reported studies whose stored result was scored by the running bundle
// give image vectors (rebuilt exactly as the worker scored them, from the unit vectors and their stored norms) and a
// report; the report's text similarity to the query is the pseudo-label.
import type { Redis } from 'ioredis';
import { SEQUENCES, queryFingerprint, type Manifest, type Sequence, type TriageQuery } from '../../../shared/model-manifest';
import { calibrateFromReports, pseudoPositiveWords, type CalibrationStudy, type Embed, type ReportCalibration } from '../../../shared/models/pseudo-labels';
import { scoredSentences } from '../../../shared/models/scoring';
import { DEFAULT_TARGET_SENSITIVITY, type CalibrationAttempt } from '../../../shared/queries';
import { reportedStudies } from '../../../shared/reports';
import { resultKeys } from '../../../shared/results';
import { parseResult, UNREADABLE } from '../../../shared/result-schema';
import { decodeVector } from '../vectors';
import type { ReportVectorCache } from './report-vectors';

export interface CalibratorOptions {
  redis: Redis;
  manifest: Pick<Manifest, 'bundleId' | 'version' | 'combination' | 'embeddingDim'>;
  embed: Embed;
  reports: ReportVectorCache;
  mentionSimilarity: number;
  minStudies: number;
  minPositives: number;
  maxStudies: number;
  /** Least AUC of the image scores against the pseudo-labels (default REPORT_CALIBRATION_DEFAULTS.minPseudoAuc). */
  minPseudoAuc?: number;
  /** Least specificity at the chosen threshold on the pseudo-labels (default REPORT_CALIBRATION_DEFAULTS.minSpecificity). */
  minSpecificity?: number;
  /**
   * Called once per read of past studies that met stored results or image vectors it could not parse (left out), with their UIDs: the
   * API counts each in neurotriage_api_results_unreadable_total, as the worklist and search count theirs.
   */
  onUnreadable?: (uids: string[]) => void;
}

export interface Calibrator {
  /** Past studies usable for calibration (newest first, at most maxStudies), with image and report vectors. */
  studies(): Promise<CalibrationStudy[]>;
  /**
   * Calibrates the query at its target sensitivity, with the attempt (the page shows why one failed) for the caller
   * to record: with its write of the query (changeQueryIf's attempt), or alone when it writes nothing
   * (recordCalibrationAttempt), each compared with the entry the caller read, so nothing of a calibration that an
   * edit or a delete overtook is kept, and the attempt is only ever recorded with the query version it was made for.
   */
  calibrate(query: TriageQuery): Promise<CalibrationRun>;
}

/** A calibration's outcome and the attempt it made, not recorded yet. */
export type CalibrationRun = ReportCalibration & { attempt: CalibrationAttempt };

const CHUNK = 250;

/**
 * The image vectors the worker scored with: each stored unit vector times its stored norm (unit when absent). Throws
 * when the hash cannot be read as the bundle's vectors (bytes cut off, a vector of another size, norms not JSON).
 */
export function scoredImages(hash: Record<string, Buffer>, dim: number): Partial<Record<Sequence, Float32Array>> | null {
  const norms = hash.norms ? (JSON.parse(hash.norms.toString('utf8')) as Partial<Record<Sequence, number>>) : {};
  const images: Partial<Record<Sequence, Float32Array>> = {};
  for (const s of SEQUENCES) {
    if (!hash[s]) continue;
    const v = decodeVector(hash[s]);
    if (v.length !== dim) throw new Error(`stored ${s} vector has ${v.length} values, the bundle's have ${dim}`);
    const n = norms[s];
    images[s] = n && Number.isFinite(n) ? v.map((x) => x * n) : v;
  }
  return Object.keys(images).length > 0 ? images : null;
}

export function targetSensitivityOf(query: Pick<TriageQuery, 'targetSensitivity' | 'calibration'>): number {
  return query.targetSensitivity ?? query.calibration?.targetSensitivity ?? DEFAULT_TARGET_SENSITIVITY;
}

export function createCalibrator(opts: CalibratorOptions): Calibrator {
  const { redis, manifest } = opts;

  async function studies(): Promise<CalibrationStudy[]> {
    const out: CalibrationStudy[] = [];
    const unreadable: string[] = [];
    // Reported studies, newest report first; reading stops once enough usable ones are found.
    const uids = await reportedStudies(redis, opts.maxStudies * 4);
    try {
      for (let i = 0; i < uids.length && out.length < opts.maxStudies; i += CHUNK) {
        const chunk = uids.slice(i, i + CHUNK);
        const raw = await redis.mget(chunk.map((u) => resultKeys.result(u)));
        // A result that cannot be read is left out, as by the worklist (it failed every calibration with a 500), and
        // reported (counted, its UID logged) as the worklist reports it.
        const ours = chunk.filter((uid, j) => {
          const r = raw[j] ? parseResult(raw[j] as string) : null;
          if (r === UNREADABLE) unreadable.push(uid);
          return r !== null && r !== UNREADABLE && r.model.bundleId === manifest.bundleId && r.model.version === manifest.version;
        });
        if (ours.length === 0) continue;
        const read = redis.pipeline();
        for (const u of ours) read.hgetallBuffer(resultKeys.vectors(u));
        // Unreadable image vectors are left out and reported like an unreadable result: one such study made every
        // calibration, so every create or edit of a site query, a 500.
        const hashes = ((await read.exec()) ?? []).map(([err, v], j) => {
          if (err) return null;
          try {
            return scoredImages(v as Record<string, Buffer>, manifest.embeddingDim);
          } catch {
            unreadable.push(ours[j]);
            return null;
          }
        });
        const reports = await opts.reports.many(ours);
        ours.forEach((_, j) => {
          const images = hashes[j];
          const report = reports[j];
          if (images && report && out.length < opts.maxStudies) out.push({ images, report });
        });
      }
    } finally {
      // Also those met before a later read failed: each was read.
      if (unreadable.length > 0) opts.onUnreadable?.(unreadable);
    }
    return out;
  }

  return {
    studies,
    async calibrate(query) {
      const past = await studies();
      const { positive, contrast } = scoredSentences(query);
      const [text, negative] = await opts.embed([positive, ...(contrast ? [contrast] : [])]);
      const outcome = calibrateFromReports(query, { text, ...(negative ? { negative } : {}) }, past, {
        combination: manifest.combination,
        bundleVersion: manifest.version,
        targetSensitivity: targetSensitivityOf(query),
        mentionSimilarity: opts.mentionSimilarity,
        minStudies: opts.minStudies,
        minPositives: opts.minPositives,
        minNegatives: opts.minPositives,
        ...(opts.minPseudoAuc !== undefined ? { minPseudoAuc: opts.minPseudoAuc } : {}),
        ...(opts.minSpecificity !== undefined ? { minSpecificity: opts.minSpecificity } : {}),
      });
      const attempt: CalibrationAttempt = {
        at: new Date().toISOString(),
        ok: outcome.ok,
        detail: outcome.ok
          ? `calibrated on ${outcome.calibration.studies} past studies (${outcome.calibration.positives} ${pseudoPositiveWords(query).one})`
          : outcome.reason,
        studies: outcome.ok ? outcome.calibration.studies : outcome.studies,
        positives: outcome.ok ? outcome.calibration.positives : outcome.positives,
        fittedFor: queryFingerprint(query),
        bundleVersion: manifest.version,
      };
      return { ...outcome, attempt };
    },
  };
}
