// npm run models:eval: the model card. Generates (or reuses) two synthetic cohorts the recipe never saw, both with
// report wording and scanners outside training (--phrasing-set heldout --scanner-set heldout):
//   - the held-out cohort (--seed, --n): ground truth for every figure;
//   - a "site" cohort (--site-seed, --site-n): past studies with their final reports, for the queries the card
//     calibrates the way the API does for a new sentence, from reports only (no labels).
// Every figure comes from the service's own code (eval-measures.ts). Writes docs/model-card.md with ROC and
// training-curve PNGs in docs/model-card/. Labels are read here and in calibration only: training never sees them.
//
// Usage: npm run models:eval -- [--bundle onnx-models] [--n 400] [--seed 7001] [--site-n 300] [--site-seed 7002]
//          [--work var/models-eval] [--card docs/model-card.md] [--threads 2] [--synth-args "--matrix 128"]
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Manifest } from '../../model-manifest';
import { loadBundleLanguage } from '../../language/knowledge';
import { loadBundle } from '../bundle';
import { loadModels } from '../index';
import { curvePng } from './curve-png';
import { parseOptions, runCli } from '../../cli-args';
import { isPositive } from './calibrate';
import { embedCohort, makeCohort } from './eval-cohort';
import { decisionCards, languageRates, phrasingRows, queryCard, queryVectors, searchRows, siteStudies, zeroLabelRow, type QueryCardRow } from './eval-measures';
import { rocPng } from './roc-png';

const LEXICON = path.join(__dirname, '..', '..', '..', '..', 'tools', 'synth', 'neuroradiology-lexicon.json');

interface Lexicon {
  evaluationPhrasings: { findings: Record<string, { kind: string; text: string }[]>; negated: { kind: string; text: string }[] };
  offTopic: { heldout: string[] };
}

/** The seed's five zero-shot tasks, as a radiologist would type them into the queries page. */
const ZERO_SHOT: { task: string; text: string; finding: string }[] = [
  { task: 'acute stroke', text: 'acute stroke', finding: 'acute_infarct' },
  { task: 'multiple sclerosis', text: 'multiple sclerosis', finding: 'multiple_sclerosis' },
  { task: 'intracranial haemorrhage', text: 'intracranial haemorrhage', finding: 'haemorrhage' },
  { task: 'meningioma', text: 'meningioma', finding: 'meningioma' },
  { task: 'hydrocephalus', text: 'hydrocephalus', finding: 'hydrocephalus' },
];

const f3 = (x: number | null | undefined) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(3));
const f2 = (x: number | null | undefined) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(2));
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / (xs.length || 1);
const yes = (ok: boolean) => (ok ? 'met' : '**not met**');

function queryBar(r: QueryCardRow, normal: boolean): string {
  const short = [r.auc < (normal ? 0.97 : 0.95) ? 'AUC' : '', r.ece === null || r.ece > 0.05 ? 'ECE' : ''].filter(Boolean);
  return short.length === 0 ? 'met' : `**not met** (${short.join(', ')})`;
}

async function main(): Promise<void> {
  const args = parseOptions({
    bundle: { type: 'string', default: 'onnx-models' },
    n: { type: 'string', default: '400' },
    seed: { type: 'string', default: '7001' },
    'site-n': { type: 'string', default: '300' },
    'site-seed': { type: 'string', default: '7002' },
    work: { type: 'string', default: 'var/models-eval' },
    card: { type: 'string', default: 'docs/model-card.md' },
    threads: { type: 'string', default: '2' },
    'synth-args': { type: 'string', default: '--matrix 128' },
  });
  const synthArgs = args['synth-args'].split(' ').filter(Boolean);
  const spec = path.join(args.bundle, 'manifest.json');
  const heldoutDir = path.join(args.work, `heldout-n${args.n}-s${args.seed}`);
  const siteDir = path.join(args.work, `site-n${args['site-n']}-s${args['site-seed']}`);
  makeCohort({ dir: heldoutDir, n: Number(args.n), seed: Number(args.seed), phrasing: 'heldout', scanners: 'heldout', synthArgs, spec });
  makeCohort({ dir: siteDir, n: Number(args['site-n']), seed: Number(args['site-seed']), phrasing: 'heldout', scanners: 'heldout', synthArgs, spec });

  const models = await loadModels(args.bundle, { executionProviders: ['cpu'], threads: Number(args.threads) });
  const bundle = await loadBundle(args.bundle);
  const language = await loadBundleLanguage(models.manifest, bundle.file);
  const m: Manifest = models.manifest;
  const embed = (texts: string[]) => models.embedTexts(texts);
  const lex = JSON.parse(readFileSync(LEXICON, 'utf8')) as Lexicon;
  const heldout = await embedCohort(models, heldoutDir, 'held-out studies');
  const site = await embedCohort(models, siteDir, 'site studies');
  const pngDir = path.join(path.dirname(args.card), 'model-card');
  mkdirSync(pngDir, { recursive: true });

  // 1. Default queries and the study-level decision.
  const qvs = [];
  for (const q of m.queries) qvs.push(await queryVectors(embed, q, null));
  const cards: QueryCardRow[] = qvs.map((qv) => queryCard(m, heldout, qv, heldout.map((s) => isPositive(s.label, qv.query.id))));
  let normalCard: QueryCardRow | null = null;
  if (m.normalQuery) {
    const nv = await queryVectors(embed, m.normalQuery, null);
    normalCard = queryCard(m, heldout, nv, heldout.map((s) => s.label.normal));
  }
  const decisions = decisionCards(m, heldout, qvs);

  // 2. Wording robustness: held-out phrasings of the default findings and negations.
  const defaults = new Set(m.queries.map((q) => q.id));
  const phrasings = Object.fromEntries(Object.entries(lex.evaluationPhrasings.findings).filter(([k]) => defaults.has(k)));
  const negatedFinding = (t: string) => (/haemorrhage|hemorrhage|bleed/i.test(t) ? 'haemorrhage' : /infarct/i.test(t) ? 'acute_infarct' : /hydroceph/i.test(t) ? 'hydrocephalus' : 'mass');
  const negated = Object.fromEntries(lex.evaluationPhrasings.negated.map((p) => [p.text, negatedFinding(p.text)]));
  const wording = await phrasingRows(m, heldout, embed, phrasings, negated);

  // 3. Sentences created through the API, calibrated only from the site's reports.
  const siteVectors = await siteStudies(site, embed);
  const mention = m.language?.mentionSimilarity ?? null;
  const zeroShot = [];
  for (const z of ZERO_SHOT) zeroShot.push({ task: z.task, ...(await zeroLabelRow(m, site, siteVectors, heldout, embed, z.text, z.finding, 0.9, mention)) });
  const newSentences = [];
  for (const [finding, ps] of Object.entries(phrasings)) {
    const p = ps.find((x) => x.kind === 'full sentence') ?? ps[0];
    newSentences.push(await zeroLabelRow(m, site, siteVectors, heldout, embed, p.text, finding, 0.9, mention));
  }

  // 4. Search and the language check.
  const search = await searchRows(m, heldout, embed, lex.evaluationPhrasings.findings, ['single word', 'shorthand']);
  const medical = [...Object.values(lex.evaluationPhrasings.findings).flat(), ...lex.evaluationPhrasings.negated].map((p) => p.text);
  const offTopic = [...lex.offTopic.heldout, '🙂🙂🙂', '12345', 'I would like a pizza', 'the cat sat on the mat'];
  const rates = await languageRates(language, embed, medical, offTopic);
  await models.close();

  // ---------- the card ----------
  const ms = heldout.map((s) => s.ms).sort((a, b) => a - b);
  type CurvePoint = { step: number; train: Record<string, number>; validation?: Record<string, number> };
  // The text encoder's training curve (train.py writes training-log.json; a bundle from before it has none).
  const curve: CurvePoint[] = existsSync(bundle.file('training-log.json'))
    ? (JSON.parse(readFileSync(bundle.file('training-log.json'), 'utf8')) as { textEncoder: { curve: CurvePoint[] } }).textEncoder.curve
    : [];
  if (curve.length > 1) {
    writeFileSync(path.join(pngDir, 'text-encoder-training.png'), curvePng([
      { points: curve.map((c) => ({ x: c.step, y: (c.train.findings_impression ?? 0) + (c.train.sentence_report ?? 0) })), rgb: [20, 70, 200] },
      ...(curve[0].validation ? [{ points: curve.map((c) => ({ x: c.step, y: (c.validation!.findings_impression ?? 0) + (c.validation!.sentence_report ?? 0) })), rgb: [220, 90, 20] as [number, number, number] }] : []),
      { points: curve.map((c) => ({ x: c.step, y: c.train.mlm ?? 0 })), rgb: [120, 120, 120] },
    ]));
  }
  const cmd = `npm run models:eval -- --n ${args.n} --seed ${args.seed} --site-n ${args['site-n']} --site-seed ${args['site-seed']} --synth-args "${synthArgs.join(' ')}"`;
  const stat = decisions.find((d) => d.cls === 'STAT');
  const lines: string[] = [
    '# Model card: neurotriage reference bundle (synthetic phantoms, not for clinical use)',
    '',
    `Written by \`${cmd}\` on ${new Date().toISOString().slice(0, 10)}; do not edit by hand.`,
    `Bundle \`${m.bundleId}\` version \`${m.version}\`: text encoder \`${m.textEncoder.id}\` (${m.embeddingDim}-d); image encoders ${Object.keys(m.imageEncoders).join(', ')}; combination \`${m.combination}\`.`,
    `Trained on (seed ${m.trainedOn.seed ?? 'n/a'}): ${m.trainedOn.description}`,
    '',
    `Held-out cohort: ${heldout.length} synthetic studies (seed ${args.seed}); site cohort (past studies with reports, for calibration from reports): ` +
      `${site.length} studies (seed ${args['site-seed']}). Both \`--phrasing-set heldout --scanner-set heldout ${synthArgs.join(' ')}\`: report wording and scanners, ` +
      'protocols and contrast settings outside training and calibration (docs/synthetic-cohort.md lists the ranges). Every figure comes from the ' +
      "service's own code (shared/models, shared/language; onnxruntime-node, CPU).",
    '',
    '## The triage decision',
    '',
    'A finding is flagged when its calibrated probability P is at least its threshold; a study takes the most urgent class with a flagged finding; ' +
      "the bundle's queries of a class share the class's threshold, chosen on the calibration cohort (training scanners) for the class's target " +
      'sensitivity (shared/models/decision.ts). A site picks another row with `TRIAGE_STAT_SENSITIVITY` / `TRIAGE_URGENT_SENSITIVITY`.',
    '',
    ...(stat ? [
      `**Shipped default, held-out cohort: STAT for ${f3(stat.sensitivity)} of the ${stat.positives} studies with a STAT finding (acute infarct, haemorrhage, ` +
        `hydrocephalus), and for ${f3(stat.falseRate)} of the ${stat.negatives} without one** (goal: sensitivity >= 0.95 with false STAT <= 0.10: ` +
        `${yes(stat.sensitivity >= 0.95 && stat.falseRate <= 0.1)}).`,
      '',
    ] : []),
    ...decisions.flatMap((d) => [
      `${d.cls} operating points (P of the class = the highest probability among its queries):`,
      '',
      `| P >= | calibration cohort: sensitivity / false ${d.cls} | held-out: sensitivity / false ${d.cls} | |`,
      '|---|---|---|---|',
      ...d.table.map((r) => `| ${f3(r.threshold)} | ${f3(r.calibration.sensitivity)} / ${f3(r.calibration.falsePositiveRate)} | ${f3(r.measured.sensitivity)} / ${f3(r.measured.falsePositiveRate)} | ${r.threshold === d.threshold ? '**shipped**' : ''} |`),
      '',
    ]),
    '## Each default query on the held-out cohort',
    '',
    '| query | priority | read on | positives / negatives | AUC | ECE | threshold (P) | sensitivity | specificity | bar | ROC |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...[...cards, ...(normalCard ? [normalCard] : [])].map((r) => {
      const isNormal = r === normalCard;
      const file = `roc-${r.query.id}.png`;
      writeFileSync(path.join(pngDir, file), rocPng(r.points));
      return `| ${isNormal ? 'normal study (abnormal vs normal)' : r.query.id} ("${r.query.text}") | ${isNormal ? '-' : r.query.priority} | ${r.query.sequences?.join(', ') ?? 'all'} | ${r.positives} / ${r.negatives} | ` +
        `${f3(r.auc)} | ${f3(r.ece)} | ${f3(r.threshold)} | ${f3(r.sensitivity)} | ${f3(r.specificity)} | ${queryBar(r, isNormal)} | ![ROC](model-card/${file}) |`;
    }),
    '',
    'Bar: AUC >= 0.95 (0.97 for the normal-study query) and ECE <= 0.05 (10 equal-width bins). Threshold: the one the worker applies (the class threshold for ' +
      "a STAT/URGENT default). Each query's own operating points (thresholds from the calibration cohort, sensitivity / false-positive rate here):",
    '',
    ...cards.filter((r) => r.table.length > 0).map((r) => `- ${r.query.id}: ${r.table.map((t) => `P >= ${f2(t.threshold)}: ${f2(t.sensitivity)} / ${f2(t.falsePositiveRate)}`).join('; ')}`),
    '',
    '## Wording robustness: phrasings training never used',
    '',
    'Each phrasing scored as a new query would be (contrast: the normal-study sentence), AUC on the held-out cohort for its finding. None of these strings ' +
      'is ever a sentence of a training report (tools/synth/lexicon.test.ts); "unseen word" phrasings contain a word no training text has. ' +
      'Goal: every phrasing >= 0.90, mean >= 0.95.',
    '',
    '| finding | phrasing | kind | AUC |',
    '|---|---|---|---|',
    ...wording.rows.map((r) => `| ${r.finding} | ${r.text} | ${r.kind} | ${f3(r.auc)}${r.auc < 0.9 ? ' (below 0.90)' : ''} |`),
    '',
    ...Object.keys(phrasings).map((k) => {
      const a = wording.rows.filter((r) => r.finding === k).map((r) => r.auc);
      return `- ${k}: mean ${f3(mean(a))}, lowest ${f3(Math.min(...a))}`;
    }),
    `- all phrasings: mean ${f3(mean(wording.rows.map((r) => r.auc)))}, lowest ${f3(Math.min(...wording.rows.map((r) => r.auc)))}; ` +
      `goal (every >= 0.90, mean >= 0.95): ${yes(wording.rows.every((r) => r.auc >= 0.9) && mean(wording.rows.map((r) => r.auc)) >= 0.95)}`,
    '',
    'Statements of absence used as a query must rank the studies WITH the finding below those without it (goal AUC <= 0.2):',
    '',
    '| sentence | finding | AUC | |',
    '|---|---|---|---|',
    ...wording.negatedRows.map((r) => `| ${r.text} | ${r.finding} | ${f3(r.auc)} | ${yes(r.auc <= 0.2)} |`),
    '',
    "## The seed's five zero-shot tasks, from sentences calibrated only by the site's reports",
    '',
    'Each task is a sentence typed as a new query (contrast defaulted to the normal-study sentence), calibrated by the API\'s own path with no label: ' +
      `each of the ${site.length} site studies' report gives a pseudo-label by its sentences' similarity to the query (shared/models/pseudo-labels.ts), ` +
      'the image-score threshold is set for a target sensitivity of 0.90; then judged on the held-out cohort with true labels. Goal: AUC >= 0.90 each.',
    '',
    '| task | sentence | site: pseudo-positives / studies (agreement with truth) | held-out AUC | sensitivity | specificity | |',
    '|---|---|---|---|---|---|---|',
    ...zeroShot.map((z) => `| ${z.task} | "${z.text}" | ${z.pseudoPositives} / ${z.siteStudies} (${f2(z.pseudoAccuracy)}) | ${f3(z.auc)} | ${f3(z.sensitivity)} | ${f3(z.specificity)} | ${z.error ? `not calibrated: ${z.error}` : yes(z.auc >= 0.9)} |`),
    '',
    '## New sentences for the default findings, calibrated only from reports',
    '',
    'A held-out full sentence per default finding, calibrated like a site\'s new query (target sensitivity 0.90, pseudo-labels only), judged with true ' +
      'labels. Goal: sensitivity within 0.05 of the target.',
    '',
    '| finding | sentence | held-out AUC | target | sensitivity | specificity | within 0.05 |',
    '|---|---|---|---|---|---|---|',
    ...newSentences.map((z) => `| ${z.finding} | "${z.text}" | ${f3(z.auc)} | ${z.target} | ${f3(z.sensitivity)} | ${f3(z.specificity)} | ${z.error ? `not calibrated: ${z.error}` : yes(Math.abs(z.sensitivity - z.target) <= 0.05)} |`),
    '',
    '## Search',
    '',
    'Single-word and shorthand searches ranked as `GET /api/v1/search` ranks them (shared/models/search.ts): the share of the top 5 held-out studies that have the finding. Goal >= 0.8.',
    '',
    '| finding | search | kind | precision of the top 5 |',
    '|---|---|---|---|',
    ...search.map((s) => `| ${s.finding} | ${s.text} | ${s.kind} | ${f2(s.precisionAt5)} |`),
    '',
    `Mean precision of the top 5: ${f3(mean(search.map((s) => s.precisionAt5)))} (goal >= 0.8: ${yes(mean(search.map((s) => s.precisionAt5)) >= 0.8)}).`,
    '',
    '## How well the model knows a text',
    '',
    `The language check the API runs on a new query or search (shared/language/check.ts; off-topic below a closeness of ${f3(m.language?.offTopicBelow)}): ` +
      `${f3(rates.medicalKept)} of ${medical.length} radiology phrasings above accepted, ${f3(rates.offTopicRefused)} of ${offTopic.length} off-topic texts ` +
      `(held-out English, emoji, digits) refused.${rates.wrong.length ? ` Misjudged: ${rates.wrong.join('; ')}.` : ''}`,
    '',
    '## Text encoder',
    '',
    `\`${m.textEncoder.id}\`: WordPiece vocabulary of the training corpus, transformer trained by masked language modelling, Findings <-> Impression ` +
      'matching and sentence <-> section matching with off-topic negatives, trained for its step budget or until the validation matching loss stopped improving, whichever came first ' +
      `(onnx-models/README.md). Training curve (${curve.length} evaluations up to step ${curve[curve.length - 1]?.step ?? 0}; blue: training matching loss, ` +
      'orange: validation matching loss, grey: masked-language-model loss; y from 0):',
    '',
    ...(curve.length > 1 ? ['![text encoder training](model-card/text-encoder-training.png)', ''] : []),
    '## Inference time',
    '',
    `Image encoders per study (all ${Object.keys(m.imageEncoders).length} sequences present, one ONNX Runtime CPU session per sequence, ${args.threads} threads, ` +
      `${os.cpus().length}-core ${os.cpus()[0]?.model ?? 'CPU'}): median ${ms[Math.floor(ms.length / 2)]?.toFixed(0)} ms, p95 ${ms[Math.floor(ms.length * 0.95)]?.toFixed(0)} ms.`,
    '',
  ];
  writeFileSync(args.card, lines.join('\n'));
  console.log(lines.join('\n'));
}

if (require.main === module) runCli(main, { stack: true });
