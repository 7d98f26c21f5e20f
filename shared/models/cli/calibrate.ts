// The training recipe's step 8 (evaluation side: no weight changes): scores a labelled calibration cohort with the
// bundle through the service's own model layer and writes into its manifest, with the service's own calibration
// code (shared/models/calibration.ts):
//   - each query's calibration: Platt (a, b), the probability threshold for --target-sensitivity, the operating
//     points, fitted for the query's text on this bundle version;
//   - the study-level decision per priority class (STAT, URGENT): the probability that a study has a finding of the
//     class is the highest probability among the bundle's queries of that class; the threshold that catches
//     --stat-sensitivity (--urgent-sensitivity) of the studies with such a finding, and the table of sensitivity
//     against false-positive rate a site chooses from;
//   - language.mentionSimilarity (with --reports): the report-to-query similarity (shared/models/pseudo-labels.ts)
//     that 95 % of the reports truly describing a default query's finding reach: the floor under which a report
//     never counts as mentioning a query (pseudo-labels, report check).
// Usage: node dist/shared/models/cli/calibrate.js --bundle DIR --volumes VOLDIR --labels labels.jsonl [--reports reports.jsonl]
//          [--target-sensitivity 0.9] [--stat-sensitivity 0.95] [--urgent-sensitivity 0.9] [--threads 2]
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ClassDecision, Decision, Manifest, TriageQuery } from '../../model-manifest';
import { calibrate, operatingPoints, plattProbability, thresholdFromTable } from '../calibration';
import { embedReport, reportSimilarity, type ReportVectors } from '../pseudo-labels';
import { loadModels, type Models } from '../index';
import { roc } from '../metrics';
import { parseOptions, runCli } from '../../cli-args';
import { allQueries, scoreVolumes } from './score';

export interface Label {
  StudyInstanceUID: string;
  normal: boolean;
  findings: { type: string }[];
}

export function readLabels(file: string): Map<string, Label> {
  return new Map(
    readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Label).map((l) => [l.StudyInstanceUID, l]),
  );
}

/** Ground truth for a query: its finding type is in the study (for normalQuery: the study is normal). */
export function isPositive(label: Label, queryId: string): boolean {
  return queryId === 'normal' ? label.normal : label.findings.some((f) => f.type === queryId);
}

/** The probability that a study has a finding of a class: the highest probability among that class's queries. */
export function classProbability(queries: readonly TriageQuery[], probabilities: Record<string, number | null>, cls: 'STAT' | 'URGENT'): number {
  let p = 0;
  for (const q of queries) if (q.priority === cls && (q.origin ?? 'bundle') === 'bundle') p = Math.max(p, probabilities[q.id] ?? 0);
  return p;
}

/** Whether a study has a finding of a class: a finding whose bundle query has that priority. */
export function hasClass(queries: readonly TriageQuery[], label: Label, cls: 'STAT' | 'URGENT'): boolean {
  return queries.some((q) => q.priority === cls && isPositive(label, q.id));
}

export function classDecision(probabilities: number[], positives: boolean[], targetSensitivity: number): ClassDecision {
  const table = operatingPoints(probabilities, positives);
  const chosen = thresholdFromTable(table, targetSensitivity);
  return {
    targetSensitivity,
    threshold: chosen.threshold,
    positives: positives.filter(Boolean).length,
    negatives: positives.filter((x) => !x).length,
    table,
  };
}

/**
 * The similarity that 95 % of reports truly describing a default query's finding reach, pooled over the default
 * queries: a report below it is never taken to mention a query.
 */
async function mentionSimilarity(models: Models, reportsFile: string, labels: Map<string, Label>): Promise<number | null> {
  const reports = readFileSync(reportsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { StudyInstanceUID: string; text: string })
    .filter((r) => labels.has(r.StudyInstanceUID));
  const embed = (t: string[]) => models.embedTexts(t);
  const vectors: ReportVectors[] = [];
  for (const r of reports) vectors.push(await embedReport(r.text, embed));
  const positives: number[] = [];
  for (const q of models.manifest.queries) {
    const [qv] = await embed([q.text]);
    reports.forEach((r, i) => {
      if (isPositive(labels.get(r.StudyInstanceUID)!, q.id)) positives.push(reportSimilarity(qv, vectors[i]));
    });
  }
  if (positives.length === 0) return null;
  positives.sort((a, b) => a - b);
  const floor = positives[Math.floor(0.05 * positives.length)];
  console.log(`   mention similarity: ${floor.toFixed(3)} (5th percentile of ${positives.length} true mentions)`);
  return floor;
}

async function main(): Promise<void> {
  const args = parseOptions({
    bundle: { type: 'string', required: true },
    volumes: { type: 'string', required: true },
    labels: { type: 'string', required: true },
    reports: { type: 'string', default: '' },
    threads: { type: 'string', default: '2' },
    'target-sensitivity': { type: 'string', default: '0.9' },
    'stat-sensitivity': { type: 'string', default: '0.95' },
    'urgent-sensitivity': { type: 'string', default: '0.9' },
  });
  const target = Number(args['target-sensitivity']);
  const manifestPath = path.join(args.bundle, 'manifest.json');
  // Score with the queries' raw scores: calibration is what this step writes, so any earlier one is dropped first.
  const raw = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
  for (const q of [...raw.queries, ...(raw.normalQuery ? [raw.normalQuery] : [])]) delete q.calibration;
  delete raw.decision;
  writeFileSync(manifestPath, JSON.stringify(raw, null, 2));

  const models = await loadModels(args.bundle, { executionProviders: ['cpu'], threads: Number(args.threads) });
  const rows = await scoreVolumes(models, args.volumes, (_, i, n) => {
    if ((i + 1) % 100 === 0 || i + 1 === n) console.log(`scored ${i + 1}/${n} calibration studies`);
  });
  const labels = readLabels(args.labels);
  const mention = args.reports ? await mentionSimilarity(models, args.reports, labels) : null;
  await models.close();
  const scored = rows.filter((r) => labels.has(r.StudyInstanceUID));
  const manifest = models.manifest;
  const probabilities: Record<string, number | null>[] = scored.map(() => ({}));
  for (const q of allQueries(models)) {
    const scores = scored.map((r) => r.scores[q.id]);
    const isNormal = q === manifest.normalQuery;
    const y = scored.map((r) => isPositive(labels.get(r.StudyInstanceUID)!, q.id));
    try {
      q.calibration = calibrate(q, scores, y, { method: 'labelled-cohort', bundleVersion: manifest.version, targetSensitivity: isNormal ? 1 - (1 - target) / 2 : target });
    } catch (err) {
      console.log(`   ${q.id}: ${(err as Error).message}: left uncalibrated`);
      continue;
    }
    const c = q.calibration;
    scored.forEach((_, i) => (probabilities[i][q.id] = plattProbability(c, scores[i])));
    console.log(`   ${q.id}: ${c.positives}/${c.studies} positive, AUC ${roc(scores, y).auc.toFixed(3)}, a ${c.a.toFixed(2)} b ${c.b.toFixed(2)}, ` +
      `P >= ${c.threshold.toFixed(3)} gives sensitivity ${c.estimated.sensitivity.toFixed(3)} specificity ${c.estimated.specificity.toFixed(3)}`);
  }
  const decision: Partial<Decision> = {};
  for (const [cls, t] of [['STAT', Number(args['stat-sensitivity'])], ['URGENT', Number(args['urgent-sensitivity'])]] as const) {
    if (!manifest.queries.some((q) => q.priority === cls && q.calibration)) continue;
    const p = scored.map((_, i) => classProbability(manifest.queries, probabilities[i], cls));
    const y = scored.map((r) => hasClass(manifest.queries, labels.get(r.StudyInstanceUID)!, cls));
    if (!y.some(Boolean) || y.every(Boolean)) continue;
    decision[cls] = classDecision(p, y, t);
    const at = decision[cls]!.table.find((r) => r.threshold === decision[cls]!.threshold)!;
    console.log(`   decision ${cls}: P >= ${at.threshold.toFixed(3)} catches ${at.sensitivity.toFixed(3)} of ${decision[cls]!.positives} studies with a ${cls} finding, ` +
      `${cls} for ${at.falsePositiveRate.toFixed(3)} of ${decision[cls]!.negatives} without`);
  }
  if (decision.STAT) manifest.decision = decision as Decision;
  if (mention !== null && manifest.language) manifest.language.mentionSimilarity = Math.round(mention * 1e4) / 1e4;
  writeFileSync(manifestPath, JSON.stringify(manifest, null, 2));
  console.log(`calibrated ${scored.length} studies into ${manifestPath}`);
}

if (require.main === module) runCli(main);
