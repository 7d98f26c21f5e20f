// The triage decision, stated once and used everywhere (worker, API, HL7, SR, page, model card):
//   - a finding is flagged when its calibrated probability P >= its threshold (a probability);
//   - the bundle's queries of a priority class share the class's study-level threshold, chosen on the calibration
//     cohort for the class's target sensitivity (a site moves it with TRIAGE_STAT_SENSITIVITY / _URGENT_);
//     a site's own queries keep their own calibrated threshold;
//   - the study's priority is the most urgent class with a flagged finding (ROUTINE when none), and within a
//     priority studies are ordered by the highest probability among the findings that gave it that priority;
//   - "triggered" findings are the flagged ones of the study's priority class when it is STAT or URGENT: the reason
//     the study is where it is (ROUTINE is where a study is when no finding set it higher, so none triggers it);
//   - a "held" finding (a provisional result's finding scored without the sequences its query reads on) is flagged
//     as usual but sets no priority until the result is final.
// Pure functions: no Redis, no models.
import { createHash } from 'node:crypto';
import { PRIORITIES, queryFingerprint, type Decision, type Priority, type TriageQuery } from '../model-manifest';
import { calibrationState, plattProbability, thresholdFromTable, type CalibrationState } from './calibration';

export type ClassThresholds = Partial<Record<'STAT' | 'URGENT', number>>;

/** Site choices of study-level sensitivity per class; absent: the bundle's targetSensitivity. */
export type SensitivitySettings = Partial<Record<'STAT' | 'URGENT', number>>;

/** The probability threshold of each class at the site's chosen sensitivity, read off the bundle's table. */
export function classThresholds(decision: Decision | undefined, settings: SensitivitySettings = {}): ClassThresholds {
  const out: ClassThresholds = {};
  if (!decision) return out;
  for (const cls of ['STAT', 'URGENT'] as const) {
    const d = decision[cls];
    if (!d) continue;
    const wanted = settings[cls];
    out[cls] = wanted === undefined ? d.threshold : thresholdFromTable(d.table, wanted).threshold;
  }
  return out;
}

/**
 * What a site's chosen sensitivities do with this bundle, in words for the start-up log: no effect without a
 * study-level decision, or the closest row when the table cannot reach the sensitivity asked for.
 */
export function operatingPointNotes(decision: Decision | undefined, settings: SensitivitySettings): string[] {
  const notes: string[] = [];
  for (const cls of ['STAT', 'URGENT'] as const) {
    const wanted = settings[cls];
    if (wanted === undefined) continue;
    const d = decision?.[cls];
    if (!d) {
      notes.push(`TRIAGE_${cls}_SENSITIVITY=${wanted} has no effect: the bundle has no study-level ${cls} decision table (each query keeps its own threshold)`);
      continue;
    }
    const row = thresholdFromTable(d.table, wanted);
    if (row.sensitivity < wanted - 1e-9) {
      notes.push(`TRIAGE_${cls}_SENSITIVITY=${wanted}: the bundle's table reaches at most ${row.sensitivity}; using that row (threshold ${row.threshold})`);
    }
  }
  return notes;
}

export interface QueryThreshold {
  /** Probability threshold applied, or null when the query may not flag (no calibration, or a stale one). */
  threshold: number | null;
  state: CalibrationState;
}

/**
 * The threshold a query is judged with. A bundle query (origin absent or 'bundle') of a class with a study-level
 * decision uses the class threshold; any other calibrated query its own. A query whose calibration was fitted for
 * other text or another image model is never applied (state says why).
 */
export function queryThreshold(query: TriageQuery, bundleVersion: string, classes: ClassThresholds): QueryThreshold {
  const state = calibrationState(query, bundleVersion);
  if (state !== 'calibrated') return { threshold: null, state };
  const cls = query.priority === 'ROUTINE' ? undefined : classes[query.priority];
  const bundleQuery = (query.origin ?? 'bundle') === 'bundle';
  return { threshold: bundleQuery && cls !== undefined ? cls : query.calibration!.threshold, state };
}

export interface JudgedFinding {
  priority: Priority;
  probability: number | null;
  threshold: number | null;
  /**
   * Held back from the priority decision: a finding of a provisional result scored on other sequences than those
   * its query reads on, because the study lacks them so far (docs/worker.md "Partial studies"). It is still
   * flagged when P >= threshold; it cannot set the study's priority until the result is final.
   */
  held?: boolean;
}

export interface StudyDecision {
  priority: Priority;
  /** Highest probability among the findings that set the priority (the order within the priority); for a ROUTINE
   *  study the highest probability of any finding, or null when none is calibrated. */
  priorityProbability: number | null;
  flagged: boolean[];
  triggered: boolean[];
}

export function isFlagged(f: Pick<JudgedFinding, 'probability' | 'threshold'>): boolean {
  return f.probability !== null && f.threshold !== null && f.probability >= f.threshold;
}

export function decideStudy(findings: readonly JudgedFinding[]): StudyDecision {
  const flagged = findings.map(isFlagged);
  const counts = findings.map((f, i) => flagged[i] && !f.held);
  let rank = PRIORITIES.indexOf('ROUTINE');
  findings.forEach((f, i) => {
    if (counts[i]) rank = Math.min(rank, PRIORITIES.indexOf(f.priority));
  });
  const priority = PRIORITIES[rank];
  const triggered = findings.map((f, i) => counts[i] && priority !== 'ROUTINE' && f.priority === priority);
  const pool = findings.filter((f, i) => (priority === 'ROUTINE' ? f.probability !== null : triggered[i]));
  const priorityProbability = pool.length ? Math.max(...pool.map((f) => f.probability as number)) : null;
  return { priority, priorityProbability, flagged, triggered };
}

/** A finding's probability from its raw score, when the query has a calibration that may be applied. */
export function findingProbability(query: TriageQuery, score: number, judged: QueryThreshold): number | null {
  return judged.state === 'calibrated' ? plattProbability(query.calibration!, score) : null;
}

/**
 * Names the exact rules a result was judged with: the bundle version, each query's fingerprint, priority,
 * calibration and threshold, in a stable order. Two results with the same querySetVersion were judged alike.
 */
export function querySetVersion(bundleVersion: string, queries: readonly TriageQuery[], thresholds: ReadonlyMap<string, number | null>): string {
  const parts = [...queries]
    .sort((a, b) => a.id.localeCompare(b.id))
    .map((q) => [q.id, queryFingerprint(q), q.priority, q.calibration?.a ?? null, q.calibration?.b ?? null, thresholds.get(q.id) ?? null]);
  return createHash('sha256').update(JSON.stringify([bundleVersion, parts])).digest('hex').slice(0, 12);
}

/** Reads as certainty at this precision although it is not: 0 < p < 1 written as 0 or 1. */
const looksCertain = (p: number, text: string): boolean => (p < 1 && Number(text) >= 1) || (p > 0 && Number(text) <= 0);

/** A probability with `decimals` places, never rounded to certainty: ">0.999" and "<0.001" near 1 and 0. */
export function probabilityText(p: number, decimals: number): string {
  const text = p.toFixed(decimals);
  if (!looksCertain(p, text)) return text;
  return p >= 0.5 ? `>${(1 - 10 ** -decimals).toFixed(decimals)}` : `<${(10 ** -decimals).toFixed(decimals)}`;
}

/**
 * A probability as a plain decimal for numeric fields (HL7 NM, DICOM DS: no sign words, no exponent): four places,
 * more (up to twelve) while it would read 0 or 1 without being either; trailing zeros dropped.
 */
export function probabilityDecimal(p: number): string {
  for (let d = 4; d <= 12; d++) {
    const text = p.toFixed(d);
    if (!looksCertain(p, text)) return text.includes('.') ? text.replace(/0+$/, '').replace(/\.$/, '') : text;
  }
  return p >= 0.5 ? (1 - 1e-12).toFixed(12) : (1e-12).toFixed(12);
}

/** "0." and 14 digits: the 16 characters a DICOM DS or an HL7 NM value holds. */
const MAX_PLACES = 14;

const dropTrailingZeros = (text: string): string => (text.includes('.') ? text.replace(/0+$/, '').replace(/\.$/, '') : text);

/** `x` with at least `places` decimals, more (up to 14) while it would read 0 or 1 without being either. */
function decimalAtLeast(x: number, places: number): string {
  let d = places;
  while (d < MAX_PLACES && looksCertain(x, x.toFixed(d))) d++;
  return dropTrailingZeros(x.toFixed(d));
}

/**
 * A probability P and the threshold it was judged against, for numeric fields (HL7 NM, DICOM DS): four places, more
 * (up to 14) until the two numbers read in the order of the real ones, so whoever applies "flagged when P >=
 * threshold" to the numbers sent gets the flag that was sent; neither reads 0 or 1 unless it is. Only a P less
 * than 1e-14 below its threshold is beyond 14 places: P is then written one unit of the last place below it.
 */
export function probabilityPairDecimal(p: number, threshold: number): [string, string] {
  if (!Number.isFinite(p) || !Number.isFinite(threshold)) return [String(p), String(threshold)]; // nothing to order
  for (let d = 4; d <= MAX_PLACES; d++) {
    const pair: [string, string] = [decimalAtLeast(p, d), decimalAtLeast(threshold, d)];
    if (Math.sign(Number(pair[0]) - Number(pair[1])) === Math.sign(p - threshold)) return pair;
  }
  const t = threshold.toFixed(MAX_PLACES);
  if (p >= threshold) return [dropTrailingZeros(t), dropTrailingZeros(t)];
  const below = (BigInt(t.replace('.', '')) - 1n).toString().padStart(t.length - 1, '0');
  return [dropTrailingZeros(`${below.slice(0, -MAX_PLACES)}.${below.slice(-MAX_PLACES)}`), dropTrailingZeros(t)];
}

/** Two probabilities with enough decimals (3 to 6) that their order is visible; neither reads as certainty. */
function pair(p: number, t: number): [string, string] {
  for (let d = 3; d < 6; d++) {
    const [a, b] = [probabilityText(p, d), probabilityText(t, d)];
    if (a !== b || p === t) return [a, b];
  }
  return [probabilityText(p, 6), probabilityText(t, 6)];
}

/**
 * The decision on one finding in words, the same everywhere it is shown (page, API, HL7 NTE, webhook):
 * "flagged: P 0.912 >= threshold 0.310", "not flagged: P 0.120 < threshold 0.310", or why it could not be flagged.
 */
export function flagStatement(f: JudgedFinding & { triggered?: boolean; calibration?: CalibrationState; waitingFor?: readonly string[] }): string {
  // Results stored before thresholds were recorded have none (undefined): they read as "cannot be flagged".
  if (f.probability === null || f.threshold === null || f.probability === undefined || f.threshold === undefined) {
    const why = f.calibration && f.calibration !== 'calibrated' ? `query ${f.calibration}` : 'no calibration applies';
    return `not flagged: cannot be flagged (${why})`;
  }
  const [p, t] = pair(f.probability, f.threshold);
  const flagged = f.probability >= f.threshold;
  let s = flagged ? `flagged: P ${p} >= threshold ${t}` : `not flagged: P ${p} < threshold ${t}`;
  if (flagged && f.triggered) s += `; sets the ${f.priority} priority`;
  if (flagged && f.held) s += `; held: scored without ${f.waitingFor?.join(', ') ?? 'its sequences'}, it sets no priority until the result is final`;
  return s;
}
