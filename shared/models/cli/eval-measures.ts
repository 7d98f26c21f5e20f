// The model card's measures, each through the service's own code on an embedded cohort (eval-cohort.ts):
//   - a query's ranking (AUC), calibration (ECE) and flags at its threshold (shared/models/scoring, calibration);
//   - the study-level decision the worker takes (shared/models/decision) and its operating points;
//   - zero-label calibration of a new sentence from reports (shared/models/pseudo-labels), as the API does it;
//   - search ranking (shared/models/search) and the language check (shared/language/check).
import type { Manifest, OperatingPoint, TriageQuery } from '../../model-manifest';
import { checkText, type LanguageKnowledge } from '../../language/check';
import { operatingPoint, plattProbability } from '../calibration';
import { classThresholds, decideStudy, findingProbability, queryThreshold } from '../decision';
import { expectedCalibrationError, roc, type RocPoint } from '../metrics';
import { calibrateFromReports, embedReport, type CalibrationStudy, type Embed } from '../pseudo-labels';
import { l2normalize, scoredSentences, scoreStudy, type QueryVectors } from '../scoring';
import { searchScore } from '../search';
import { classProbability, hasClass, isPositive } from './calibrate';
import type { CohortStudy } from './eval-cohort';

export interface RankResult {
  auc: number;
  points: RocPoint[];
  positives: number;
  negatives: number;
}

/** A query's raw score on each study, exactly as the worker scores it. */
export function queryScores(studies: readonly CohortStudy[], combination: Manifest['combination'], qv: QueryVectors): number[] {
  return studies.map((s) => scoreStudy(combination, s.images, [qv])[0].score);
}

export function rank(scores: readonly number[], positives: readonly boolean[]): RankResult {
  const { auc, points } = roc([...scores], [...positives]);
  return { auc, points, positives: positives.filter(Boolean).length, negatives: positives.filter((p) => !p).length };
}

/** Embeds a query's sentences: its text and its contrast (the normal-study sentence when it names none, as the API does). */
export async function queryVectors(embed: Embed, query: TriageQuery, normalText: string | null): Promise<QueryVectors> {
  const negative = query.negativeText ?? normalText ?? undefined;
  const withContrast = negative ? { ...query, negativeText: negative } : query;
  const { positive, contrast } = scoredSentences(withContrast);
  const [text, neg] = await embed(contrast ? [positive, contrast] : [positive]);
  return { query: withContrast, text, ...(neg ? { negative: neg } : {}) };
}

export interface QueryCardRow extends RankResult {
  query: TriageQuery;
  ece: number | null;
  /** At the threshold the worker applies (the class threshold for a bundle STAT/URGENT query). */
  threshold: number | null;
  sensitivity: number | null;
  specificity: number | null;
  /** The manifest's operating points (thresholds chosen on the calibration cohort) measured on this cohort. */
  table: OperatingPoint[];
}

/** One default query on a cohort: ranking, calibration, and its flags at the threshold the worker would use. */
export function queryCard(manifest: Manifest, studies: readonly CohortStudy[], qv: QueryVectors, positives: boolean[]): QueryCardRow {
  const scores = queryScores(studies, manifest.combination, qv);
  const q = qv.query;
  const r = rank(scores, positives);
  const c = q.calibration;
  if (!c) return { ...r, query: q, ece: null, threshold: null, sensitivity: null, specificity: null, table: [] };
  const p = scores.map((s) => plattProbability(c, s));
  const judged = queryThreshold(q, manifest.version, classThresholds(manifest.decision));
  const t = judged.threshold ?? c.threshold;
  const at = operatingPoint(p, positives, t);
  return {
    ...r, query: q, ece: expectedCalibrationError(p, positives), threshold: t, sensitivity: at.sensitivity, specificity: 1 - at.falsePositiveRate,
    table: c.operatingPoints.map((row) => operatingPoint(p, positives, row.threshold)),
  };
}

export interface DecisionCard {
  cls: 'STAT' | 'URGENT';
  threshold: number;
  positives: number;
  negatives: number;
  /** Studies with a finding of the class that the worker's decision gives the class (or a more urgent one). */
  sensitivity: number;
  /** Studies without a finding of the class given the class anyway (or a more urgent one). */
  falseRate: number;
  /** The bundle's table (thresholds chosen on the calibration cohort) measured on this cohort. */
  table: { threshold: number; calibration: OperatingPoint; measured: OperatingPoint }[];
}

/** The worker's study-level decision on every study of a cohort, and what it gives per priority class. */
export function decisionCards(manifest: Manifest, studies: readonly CohortStudy[], qvs: readonly QueryVectors[]): DecisionCard[] {
  const classes = classThresholds(manifest.decision);
  const perStudy = studies.map((s) => {
    const judged = qvs.map((qv) => {
      const score = scoreStudy(manifest.combination, s.images, [qv])[0].score;
      const t = queryThreshold(qv.query, manifest.version, classes);
      return { id: qv.query.id, priority: qv.query.priority, probability: findingProbability(qv.query, score, t), threshold: t.threshold };
    });
    return { decision: decideStudy(judged), probabilities: Object.fromEntries(judged.map((j) => [j.id, j.probability])) };
  });
  const out: DecisionCard[] = [];
  for (const cls of ['STAT', 'URGENT'] as const) {
    const d = manifest.decision?.[cls];
    if (!d) continue;
    const y = studies.map((s) => hasClass(manifest.queries, s.label, cls));
    const atLeast = (p: string) => (cls === 'STAT' ? p === 'STAT' : p === 'STAT' || p === 'URGENT');
    const given = perStudy.map((r) => atLeast(r.decision.priority));
    const pos = y.filter(Boolean).length;
    const neg = y.length - pos;
    const p = perStudy.map((r) => classProbability(manifest.queries, r.probabilities, cls));
    out.push({
      cls, threshold: classes[cls]!, positives: pos, negatives: neg,
      sensitivity: given.filter((g, i) => g && y[i]).length / (pos || 1),
      falseRate: given.filter((g, i) => g && !y[i]).length / (neg || 1),
      table: d.table.map((row) => ({ threshold: row.threshold, calibration: row, measured: operatingPoint(p, y, row.threshold) })),
    });
  }
  return out;
}

export interface PhrasingRow {
  finding: string;
  kind: string;
  text: string;
  auc: number;
}

/** How each phrasing ranks the studies with its finding above the others (contrast: the normal-study sentence). */
export async function phrasingRows(
  manifest: Manifest, studies: readonly CohortStudy[], embed: Embed, phrasings: Record<string, { kind: string; text: string }[]>, negated: Record<string, string>,
): Promise<{ rows: PhrasingRow[]; negatedRows: PhrasingRow[] }> {
  const normal = manifest.normalQuery?.text ?? null;
  const rows: PhrasingRow[] = [];
  for (const [finding, ps] of Object.entries(phrasings)) {
    const y = studies.map((s) => isPositive(s.label, finding));
    if (!y.some(Boolean)) continue;
    for (const p of ps) {
      const qv = await queryVectors(embed, { id: 'phrasing', text: p.text, priority: 'ROUTINE' }, normal);
      rows.push({ finding, kind: p.kind, text: p.text, auc: rank(queryScores(studies, manifest.combination, qv), y).auc });
    }
  }
  const negatedRows: PhrasingRow[] = [];
  for (const [text, finding] of Object.entries(negated)) {
    const y = studies.map((s) => isPositive(s.label, finding));
    const qv = await queryVectors(embed, { id: 'negated', text, priority: 'ROUTINE' }, normal);
    negatedRows.push({ finding, kind: 'negation', text, auc: rank(queryScores(studies, manifest.combination, qv), y).auc });
  }
  return { rows, negatedRows };
}

export interface ZeroLabelRow {
  text: string;
  finding: string;
  target: number;
  /** On the site's past studies: how many reports the pseudo-labels called positive, of how many. */
  pseudoPositives: number;
  siteStudies: number;
  /** Whether the pseudo-labels agree with the truth on the site's studies (evaluation side only). */
  pseudoAccuracy: number;
  auc: number;
  sensitivity: number;
  specificity: number;
  error?: string;
}

/** The site's past studies (image vectors + report sentence vectors), as the API's calibrator reads them. */
export async function siteStudies(site: readonly CohortStudy[], embed: Embed): Promise<CalibrationStudy[]> {
  const out: CalibrationStudy[] = [];
  for (const s of site) out.push({ images: s.images, report: await embedReport(s.report, embed) });
  return out;
}

/**
 * A sentence created through the API: contrast defaulted to the normal-study sentence, calibrated ONLY from the
 * site's reports (pseudo-labels, calibrateFromReports), then judged on the held-out cohort with true labels.
 */
export async function zeroLabelRow(
  manifest: Manifest, site: readonly CohortStudy[], siteVectors: readonly CalibrationStudy[], heldout: readonly CohortStudy[],
  embed: Embed, text: string, finding: string, target: number, mentionSimilarity: number | null,
): Promise<ZeroLabelRow> {
  const query: TriageQuery = { id: 'site-query', text, priority: 'ROUTINE', origin: 'site' };
  const qv = await queryVectors(embed, query, manifest.normalQuery?.text ?? null);
  const cal = calibrateFromReports(qv.query, qv, siteVectors, { combination: manifest.combination, bundleVersion: manifest.version, targetSensitivity: target, mentionSimilarity });
  const yHeld = heldout.map((s) => isPositive(s.label, finding));
  const scores = queryScores(heldout, manifest.combination, qv);
  const base = { text, finding, target, siteStudies: site.length, auc: rank(scores, yHeld).auc };
  if (!cal.ok) return { ...base, pseudoPositives: cal.positives, pseudoAccuracy: NaN, sensitivity: NaN, specificity: NaN, error: cal.reason };
  const ySite = site.map((s) => isPositive(s.label, finding));
  const pseudoAccuracy = cal.pseudo.labels.filter((l, i) => l === ySite[i]).length / site.length;
  const at = operatingPoint(scores.map((s) => plattProbability(cal.calibration, s)), yHeld, cal.calibration.threshold);
  return { ...base, pseudoPositives: cal.pseudo.positives, pseudoAccuracy, sensitivity: at.sensitivity, specificity: 1 - at.falsePositiveRate };
}

export interface SearchRow {
  finding: string;
  kind: string;
  text: string;
  precisionAt5: number;
}

/** Search as the API ranks it (combined image vector, normal-study contrast): the share of true findings in the top 5. */
export async function searchRows(manifest: Manifest, studies: readonly CohortStudy[], embed: Embed, phrasings: Record<string, { kind: string; text: string }[]>, kinds: readonly string[]): Promise<SearchRow[]> {
  const [normal] = manifest.normalQuery ? await embed([manifest.normalQuery.text]) : [null];
  const combined = studies.map((s) => {
    const vs = Object.values(s.images).filter((v): v is Float32Array => v !== undefined);
    const mean = new Float32Array(vs[0].length);
    for (const v of vs) for (let i = 0; i < v.length; i++) mean[i] += v[i] / vs.length;
    return l2normalize(mean);
  });
  const rows: SearchRow[] = [];
  for (const [finding, ps] of Object.entries(phrasings)) {
    for (const p of ps.filter((x) => kinds.includes(x.kind))) {
      const [t] = await embed([p.text]);
      const top = combined.map((v, i) => [searchScore(v, t, normal), i] as const).sort((a, b) => b[0] - a[0]).slice(0, 5);
      rows.push({ finding, kind: p.kind, text: p.text, precisionAt5: top.filter(([, i]) => isPositive(studies[i].label, finding)).length / top.length });
    }
  }
  return rows;
}

/** The language check on held-out radiology phrasings (kept) and off-topic text (refused). */
export async function languageRates(knowledge: LanguageKnowledge, embed: Embed, medical: string[], offTopic: string[]): Promise<{ medicalKept: number; offTopicRefused: number; wrong: string[] }> {
  const verdict = async (t: string) => checkText(t, knowledge, (await embed([t]))[0]).verdict;
  const wrong: string[] = [];
  let kept = 0;
  for (const t of medical) {
    if ((await verdict(t)) !== 'refused') kept++;
    else wrong.push(`refused: "${t}"`);
  }
  let refused = 0;
  for (const t of offTopic) {
    if ((await verdict(t)) === 'refused') refused++;
    else wrong.push(`accepted: "${t}"`);
  }
  return { medicalKept: kept / medical.length, offTopicRefused: refused / offTopic.length, wrong };
}
