// Calibration maths, one implementation for the training recipe (the bundle's labelled calibration cohort), the
// evaluation (model card) and the service (a site's new queries, calibrated from its own reports):
//   - Platt scaling of a query's raw image score into a probability;
//   - the probability threshold that keeps a target sensitivity, and the table of operating points around it;
//   - pseudo-labels from report-text similarities, for zero-label calibration (no hand labels anywhere).
// Pure functions over numbers; what produces the scores and labels lives with the callers.
import type { Calibration, OperatingPoint, TriageQuery } from '../model-manifest';
import { queryFingerprint } from '../model-manifest';

export const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

export function plattProbability(c: Pick<Calibration, 'a' | 'b'>, score: number): number {
  return sigmoid(c.a * score + c.b);
}

/**
 * Logistic regression p = sigmoid(a * s + b) by Newton's method, on standardised scores for conditioning, with a
 * small ridge so separable data (common for an easy finding) gives a steep but finite slope.
 */
export function fitPlatt(scores: readonly number[], labels: readonly boolean[], ridge = 1e-3): { a: number; b: number } {
  const n = scores.length;
  if (n === 0) throw new Error('fitPlatt: no scores');
  const mu = scores.reduce((s, x) => s + x, 0) / n;
  const sd = Math.sqrt(scores.reduce((s, x) => s + (x - mu) ** 2, 0) / n) || 1;
  const x = scores.map((s) => (s - mu) / sd);
  let w0 = 0; // slope on standardised score
  let w1 = 0; // intercept
  for (let iter = 0; iter < 200; iter++) {
    let g0 = ridge * w0;
    let g1 = ridge * w1;
    let h00 = ridge;
    let h01 = 0;
    let h11 = ridge;
    for (let i = 0; i < n; i++) {
      const p = sigmoid(w0 * x[i] + w1);
      const r = p - (labels[i] ? 1 : 0);
      const v = p * (1 - p);
      g0 += r * x[i];
      g1 += r;
      h00 += v * x[i] * x[i];
      h01 += v * x[i];
      h11 += v;
    }
    const det = h00 * h11 - h01 * h01;
    if (!(Math.abs(det) > 0)) break;
    const s0 = (h11 * g0 - h01 * g1) / det;
    const s1 = (h00 * g1 - h01 * g0) / det;
    w0 -= s0;
    w1 -= s1;
    if (Math.max(Math.abs(s0), Math.abs(s1)) < 1e-10) break;
  }
  const a = w0 / sd;
  return { a, b: w1 - a * mu };
}

/**
 * The threshold of the operating point that keeps at least `target` of the positives (values are probabilities or
 * any score where higher means more likely), placed with a margin rather than on a study's own value. The point's
 * last kept positive has value v; every positive down to the highest negative under v (n) is kept too, at no cost
 * in false positives, and the threshold lies halfway between n and the lowest positive above it (in log-odds for
 * probabilities). On the calibration cohort this flags the same negatives as a threshold at v, and at least the
 * target share of positives; a new study a little under the cohort's lowest kept positive is still flagged (with
 * perfectly separated classes a threshold on a positive, e.g. P 0.9998, missed a true case at 0.93 elsewhere).
 * With no positive, a threshold nothing reaches; with no negative under v, the lowest positive.
 */
export function thresholdForSensitivity(values: readonly number[], labels: readonly boolean[], target: number): number {
  const pos = values.filter((_, i) => labels[i]).sort((a, b) => a - b);
  if (pos.length === 0) return 1;
  const k = Math.floor((1 - target) * pos.length + 1e-9);
  const v = pos[Math.min(k, pos.length - 1)];
  let n = -Infinity;
  values.forEach((x, i) => {
    if (!labels[i] && x < v && x > n) n = x;
  });
  const lowest = pos.find((x) => x > n)!;
  if (n === -Infinity) return lowest;
  const logit = (p: number) => Math.log(p / (1 - p));
  const mid = n > 0 && lowest < 1 ? sigmoid((logit(n) + logit(lowest)) / 2) : (n + lowest) / 2;
  // Strictly above n and at most the lowest kept positive, whatever rounding does when they are a few ulps apart.
  return mid > n && mid <= lowest ? mid : lowest;
}

/** Sensitivity and false-positive rate when values >= threshold are flagged. */
export function operatingPoint(values: readonly number[], labels: readonly boolean[], threshold: number): OperatingPoint {
  let tp = 0;
  let p = 0;
  let fp = 0;
  let n = 0;
  values.forEach((v, i) => {
    if (labels[i]) {
      p++;
      if (v >= threshold) tp++;
    } else {
      n++;
      if (v >= threshold) fp++;
    }
  });
  return { threshold, sensitivity: p ? tp / p : 0, falsePositiveRate: n ? fp / n : 0 };
}

/** The sensitivities a site is offered, and the table rows written for them. */
export const SENSITIVITY_GRID = [0.8, 0.85, 0.9, 0.925, 0.95, 0.975, 0.99] as const;

/** Operating points at the thresholds that keep each sensitivity of the grid (deduplicated, highest threshold first). */
export function operatingPoints(values: readonly number[], labels: readonly boolean[], grid: readonly number[] = SENSITIVITY_GRID): OperatingPoint[] {
  const seen = new Set<number>();
  const out: OperatingPoint[] = [];
  for (const s of grid) {
    const t = thresholdForSensitivity(values, labels, s);
    if (seen.has(t)) continue;
    seen.add(t);
    out.push(operatingPoint(values, labels, t));
  }
  return out.sort((a, b) => b.threshold - a.threshold);
}

/** From a table, the highest threshold whose sensitivity reaches the target (else the table's most sensitive row). */
export function thresholdFromTable(table: readonly OperatingPoint[], targetSensitivity: number): OperatingPoint {
  if (table.length === 0) throw new Error('thresholdFromTable: empty table');
  const ok = table.filter((r) => r.sensitivity >= targetSensitivity - 1e-9).sort((a, b) => b.threshold - a.threshold);
  return ok[0] ?? [...table].sort((a, b) => b.sensitivity - a.sensitivity || b.threshold - a.threshold)[0];
}

export interface CalibrationContext {
  method: Calibration['method'];
  bundleVersion: string;
  targetSensitivity: number;
  /** ISO time; defaults to now. */
  calibratedAt?: string;
}

/**
 * A query's calibration from raw image scores and (pseudo-)labels: Platt fit, then the probability threshold that
 * keeps targetSensitivity of the positives, with the estimated sensitivity/specificity there and the table around it.
 * Throws when the labels have no positive or no negative (nothing to calibrate on).
 */
export function calibrate(query: Pick<TriageQuery, 'text' | 'negativeText' | 'sequences'>, scores: readonly number[], labels: readonly boolean[], ctx: CalibrationContext): Calibration {
  const positives = labels.filter(Boolean).length;
  if (positives === 0 || positives === labels.length) {
    throw new Error(`cannot calibrate on ${labels.length} studies with ${positives} positive: both kinds are needed`);
  }
  const { a, b } = fitPlatt(scores, labels);
  const probabilities = scores.map((s) => sigmoid(a * s + b));
  const threshold = thresholdForSensitivity(probabilities, labels, ctx.targetSensitivity);
  const at = operatingPoint(probabilities, labels, threshold);
  return {
    a,
    b,
    threshold,
    targetSensitivity: ctx.targetSensitivity,
    method: ctx.method,
    studies: labels.length,
    positives,
    calibratedAt: ctx.calibratedAt ?? new Date().toISOString(),
    fittedFor: queryFingerprint(query),
    bundleVersion: ctx.bundleVersion,
    estimated: { sensitivity: at.sensitivity, specificity: 1 - at.falsePositiveRate },
    operatingPoints: operatingPoints(probabilities, labels),
  };
}

export type CalibrationState = 'calibrated' | 'uncalibrated' | 'stale-text' | 'stale-bundle';

/** Whether a query's calibration may be applied: fitted for this text and this image model. */
export function calibrationState(query: TriageQuery, bundleVersion: string): CalibrationState {
  const c = query.calibration;
  if (!c) return 'uncalibrated';
  if (c.fittedFor !== queryFingerprint(query)) return 'stale-text';
  if (c.bundleVersion !== bundleVersion) return 'stale-bundle';
  return 'calibrated';
}

export interface PseudoLabels {
  labels: boolean[];
  /** Similarity at or above which a report counts as positive. */
  threshold: number;
  /** Between-class separation of the two groups in standard deviations of the whole set (0 = no structure). */
  separation: number;
  positives: number;
}

/**
 * Splits report-text similarities to a query into positives and negatives with no labels: Otsu's threshold (the
 * cut that maximises the between-group variance), never below `floor` (a report must at least mention the
 * finding). Reports that mention a finding form a separate, higher group; `separation` says how clearly.
 */
export function pseudoLabels(similarities: readonly number[], floor = -Infinity): PseudoLabels {
  const sorted = [...similarities].sort((a, b) => a - b);
  const n = sorted.length;
  const total = sorted.reduce((s, x) => s + x, 0);
  const mean = total / (n || 1);
  const sd = Math.sqrt(sorted.reduce((s, x) => s + (x - mean) ** 2, 0) / (n || 1)) || 1;
  let best = { t: Infinity, between: -1, m0: mean, m1: mean };
  let left = 0;
  for (let i = 1; i < n; i++) {
    left += sorted[i - 1];
    if (sorted[i] === sorted[i - 1]) continue;
    const w0 = i / n;
    const m0 = left / i;
    const m1 = (total - left) / (n - i);
    const between = w0 * (1 - w0) * (m1 - m0) ** 2;
    if (between > best.between) best = { t: (sorted[i - 1] + sorted[i]) / 2, between, m0, m1 };
  }
  const threshold = Math.max(best.t, floor);
  const labels = similarities.map((s) => s >= threshold);
  return { labels, threshold, separation: (best.m1 - best.m0) / sd, positives: labels.filter(Boolean).length };
}
