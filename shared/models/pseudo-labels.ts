// Zero-label calibration of a triage query from a site's own reports, one code path for the service (a new or
// edited query, services/api/calibration) and the evaluation (which measures how close to its target sensitivity
// a query calibrated this way lands on studies with true labels):
//   1. each report is split into sentences (shared/language/sentences.ts); sentences stating absence are dropped,
//      the others are embedded without their assertion cue words (embedReport);
//   2. a report's similarity to the query = the best cosine between the query's text vector and one of those
//      sentences (reportSimilarity): "No haemorrhage." never makes a report positive for haemorrhage;
//   3. the similarities are split into pseudo-positives and negatives with no labels (calibration.ts pseudoLabels:
//      Otsu's cut, never below the bundle's mentionSimilarity);
//   4. the query's image scores on the same studies (scoring.ts, exactly as the worker scores) are Platt-fitted
//      against those labels and the threshold set at the query's target sensitivity (calibration.ts calibrate).
import { float32FromLE, float32ToLE } from '../float32';
import type { Calibration, Manifest, Sequence, TriageQuery } from '../model-manifest';
import { deniesOnly, reportSentences, SENTENCE_RULES_VERSION } from '../language/sentences';
import { calibrate, pseudoLabels, type PseudoLabels } from './calibration';
import { roc } from './metrics';
import { cosine, scoreStudy, type QueryVectors } from './scoring';

export type Embed = (texts: string[]) => Promise<Float32Array[]>;

/** A report's present and uncertain sentences, cue-stripped, with their text vectors (what pseudo-labels read). */
export interface ReportVectors {
  sentences: string[];
  vectors: Float32Array[];
}

/** Embeds the sentences of a report that do not state absence, without their cue words. */
export async function embedReport(text: string, embed: Embed): Promise<ReportVectors> {
  const about = [...new Set(reportSentences(text).filter((s) => s.assertion !== 'absent').map((s) => s.about))];
  return { sentences: about, vectors: about.length > 0 ? await embed(about) : [] };
}

/** Best cosine between the query's text vector and a sentence of the report; -1 when no sentence asserts anything. */
export function reportSimilarity(query: Float32Array, report: ReportVectors): number {
  let best = -1;
  for (const v of report.vectors) best = Math.max(best, cosine(query, v));
  return best;
}

/**
 * Which reading made a report's sentence vectors: the text encoder's id, the start of its file's sha256 and the
 * version of the report reader's rules (SENTENCE_RULES_VERSION), so a bundle with a retrained text encoder, or a
 * release that reads reports differently, never uses sentence vectors cached by another (reportKeys.sentenceVectors).
 */
export function textModelVersion(manifest: Pick<Manifest, 'textEncoder' | 'files'>): string {
  return `${manifest.textEncoder.id}:${(manifest.files[manifest.textEncoder.file] ?? '').slice(0, 12)}:${SENTENCE_RULES_VERSION}`;
}

/** JSON for reportKeys.sentenceVectors: { sentences, dim, vectors: base64 float32 little-endian [n, dim] }. */
export function encodeReportVectors(r: ReportVectors): string {
  const dim = r.vectors[0]?.length ?? 0;
  const all = new Float32Array(r.vectors.length * dim);
  r.vectors.forEach((v, i) => all.set(v, i * dim));
  return JSON.stringify({ sentences: r.sentences, dim, vectors: float32ToLE(all).toString('base64') });
}

export function decodeReportVectors(json: string): ReportVectors {
  const o = JSON.parse(json) as { sentences: string[]; dim?: number; vectors: string };
  const all = float32FromLE(Buffer.from(o.vectors, 'base64'), 'report sentence vectors');
  const n = o.sentences.length;
  const dim = o.dim ?? (n > 0 ? all.length / n : 0);
  return { sentences: o.sentences, vectors: Array.from({ length: n }, (_, i) => all.slice(i * dim, (i + 1) * dim)) };
}

/** One past study: its image vectors by sequence (as the worker scored it) and its report's sentence vectors. */
export interface CalibrationStudy {
  images: Partial<Record<Sequence, Float32Array>>;
  report: ReportVectors;
}

export interface ReportCalibrationOptions {
  combination: Manifest['combination'];
  /** The bundle whose image vectors these are: the calibration is valid for it only. */
  bundleVersion: string;
  targetSensitivity: number;
  /** Floor of the pseudo-label cut (manifest.language.mentionSimilarity, or the site's setting). */
  mentionSimilarity?: number | null;
  /** Fewer studies, pseudo-positives or pseudo-negatives than these: no calibration (the reason says which). */
  minStudies?: number;
  minPositives?: number;
  minNegatives?: number;
  /**
   * The query's image scores must rank the studies whose reports mention it above the others at least this well
   * (AUC against the pseudo-labels); below it the images do not show what the sentence says, and a threshold
   * would flag at random: no calibration.
   */
  minPseudoAuc?: number;
  /**
   * The threshold chosen at the target sensitivity must leave at least this share of the pseudo-negatives
   * unflagged: below it the threshold flags (nearly) every study, which is no triage rule (with noisy pseudo-labels
   * the least-scored pseudo-positive often sits at the bottom of the score range): no calibration.
   */
  minSpecificity?: number;
  calibratedAt?: string;
}

export const REPORT_CALIBRATION_DEFAULTS = { minStudies: 30, minPositives: 5, minNegatives: 5, minPseudoAuc: 0.6, minSpecificity: 0.5 } as const;

/**
 * A calibration from reports whose threshold flags (nearly) every study: one stored before calibrateFromReports
 * refused them (minSpecificity). It must not judge studies; the service calibrates such a query again, and drops
 * the calibration when that fails.
 */
export function flagsNearlyEverything(c: Calibration, minSpecificity: number = REPORT_CALIBRATION_DEFAULTS.minSpecificity): boolean {
  return c.method === 'report-pseudo-labels' && !(c.estimated.specificity >= minSpecificity);
}

export type ReportCalibration =
  | { ok: true; calibration: Calibration; pseudo: PseudoLabels; similarities: number[]; scores: number[] }
  | { ok: false; reason: string; studies: number; positives: number };

/**
 * What a query's pseudo-positives are, in words: the reports that mention its finding, or for a statement of absence
 * ("No haemorrhage.", scored the other way round) the reports that do NOT mention the finding it denies.
 */
export function pseudoPositiveWords(query: Pick<TriageQuery, 'text' | 'negativeText'>): { one: string; many: string } {
  return positivesWords(Boolean(query.negativeText) && deniesOnly(query.text));
}

function positivesWords(denies: boolean): { one: string; many: string } {
  return denies
    ? { one: 'whose report does not mention it', many: 'whose reports do not mention this finding' }
    : { one: 'whose report mentions it', many: 'whose reports mention this finding' };
}

/** Calibrates a query on past studies with reports: the whole method of this module's header, no hand labels. */
export function calibrateFromReports(
  query: Pick<TriageQuery, 'text' | 'negativeText' | 'sequences'>,
  vectors: Pick<QueryVectors, 'text' | 'negative'>,
  studies: readonly CalibrationStudy[],
  opts: ReportCalibrationOptions,
): ReportCalibration {
  const min = {
    minStudies: opts.minStudies ?? REPORT_CALIBRATION_DEFAULTS.minStudies,
    minPositives: opts.minPositives ?? REPORT_CALIBRATION_DEFAULTS.minPositives,
    minNegatives: opts.minNegatives ?? REPORT_CALIBRATION_DEFAULTS.minNegatives,
  };
  if (studies.length < min.minStudies) {
    return { ok: false, reason: `${studies.length} past studies have both a report and image vectors of bundle ${opts.bundleVersion}; calibration needs at least ${min.minStudies}`, studies: studies.length, positives: 0 };
  }
  // A query that only states absence ("No haemorrhage.") is scored with the finding it denies as its contrast
  // (scoring.ts scoredSentences): its pseudo-positives are the reports that do NOT mention that finding.
  const denies = deniesOnly(query.text) && vectors.negative !== undefined;
  const similarities = studies.map((s) => reportSimilarity(denies ? vectors.negative! : vectors.text, s.report));
  const mentions = pseudoLabels(similarities, opts.mentionSimilarity ?? -Infinity);
  const pseudo = denies ? { ...mentions, labels: mentions.labels.map((l) => !l), positives: studies.length - mentions.positives } : mentions;
  const negatives = studies.length - pseudo.positives;
  if (pseudo.positives < min.minPositives || negatives < min.minNegatives) {
    return {
      ok: false,
      reason: denies
        ? `the reports of ${studies.length} past studies give ${pseudo.positives} not mentioning this finding (the studies a statement of absence looks for) and ${negatives} mentioning it; calibration needs at least ${min.minPositives} and ${min.minNegatives}`
        : `the reports of ${studies.length} past studies give ${pseudo.positives} mentioning this finding and ${negatives} not; calibration needs at least ${min.minPositives} and ${min.minNegatives}`,
      studies: studies.length,
      positives: pseudo.positives,
    };
  }
  const qv: QueryVectors = { query: { id: 'calibrating', text: query.text, priority: 'ROUTINE', ...(query.sequences ? { sequences: query.sequences } : {}) }, ...vectors };
  const scores = studies.map((s) => scoreStudy(opts.combination, s.images, [qv])[0].score);
  const separation = roc(scores, pseudo.labels).auc;
  const minAuc = opts.minPseudoAuc ?? REPORT_CALIBRATION_DEFAULTS.minPseudoAuc;
  if (!(separation >= minAuc)) {
    return {
      ok: false,
      reason: `the images do not tell apart the ${pseudo.positives} past studies ${positivesWords(denies).many} from the other ${negatives} (AUC ${(Math.floor(separation * 100) / 100).toFixed(2)} against the reports, below ${minAuc}): a threshold would flag at random`,
      studies: studies.length,
      positives: pseudo.positives,
    };
  }
  const calibration = calibrate(query, scores, pseudo.labels, {
    method: 'report-pseudo-labels',
    bundleVersion: opts.bundleVersion,
    targetSensitivity: opts.targetSensitivity,
    ...(opts.calibratedAt ? { calibratedAt: opts.calibratedAt } : {}),
  });
  const minSpecificity = opts.minSpecificity ?? REPORT_CALIBRATION_DEFAULTS.minSpecificity;
  const specificity = calibration.estimated.specificity;
  if (!(specificity >= minSpecificity)) {
    const flagged = Math.round((1 - specificity) * negatives);
    return {
      ok: false,
      reason: `at sensitivity ${calibration.estimated.sensitivity.toFixed(2)} on the reports its threshold would also flag ${flagged} of the ${negatives} past studies ${positivesWords(!denies).many} (specificity ${(Math.floor(specificity * 100) / 100).toFixed(2)}, below ${minSpecificity}): it would flag nearly every study`,
      studies: studies.length,
      positives: pseudo.positives,
    };
  }
  return { ok: true, calibration, pseudo, similarities, scores };
}
