// `npm run bench:localise`: how well the worker's occlusion localisation (services/worker/localise.ts) finds focal
// lesions. A held-out synthetic cohort (report phrasings and scanner settings not used in training: tools/synth
// --phrasing-set heldout --scanner-set heldout) is generated once under var/bench-localise/, each study goes through
// the worker's own pipeline (loader processes, real ONNX Runtime sessions, the bundle's queries), and for every
// true-positive flag of a focal finding (acute_infarct, haemorrhage, mass) the key point is compared with the
// lesion centre the generator wrote to labels.jsonl (center_mm, patient LPS). The labels are read here only.
//
//   npm run bench:localise -- [--n 200] [--seed 7001] [--matrix 128] [--models DIR] [--ort-threads 1] [--limit K] [--json FILE]
//                             [--levels '<LocaliseOptions.levels as JSON>'] [--max-runs N]
//                             [--atlas-options '<LocaliseOptions.atlas fields as JSON>'] [--no-atlas]
// With a bundle atlas the candidates are the study's departures from normal (services/worker/anomaly.ts);
// --no-atlas measures the block search alone on the same bundle.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createProcessLoader } from '../services/worker/load-pool';
import { DEFAULT_LOCALISE_OPTIONS, type LocaliseOptions } from '../services/worker/localise';
import { loadWorkerModels } from '../services/worker/models';
import { scoreStudyFolder } from '../services/worker/pipeline';
import { manifestQuerySet } from '../services/worker/query-vectors';
import type { Sequence } from '../shared/model-manifest';
import { percentile } from './stats';
import { failCli, parseOptions } from '../shared/cli-args';

const ROOT = path.resolve(__dirname, '..', '..');
const FOCAL = ['acute_infarct', 'haemorrhage', 'mass'] as const;
const HIT_MM = 15;

interface Label {
  StudyInstanceUID: string;
  findings: { type: string; center_mm?: [number, number, number]; size_mm?: number; location?: string }[];
}

function cohort(n: number, seed: number, matrix: number): string {
  const dir = path.join(ROOT, 'var', 'bench-localise', `heldout-n${n}-s${seed}-m${matrix}`);
  if (!existsSync(path.join(dir, 'labels.jsonl')) || !existsSync(path.join(dir, 'cohort.json'))) {
    console.error(`generating the held-out cohort in ${path.relative(ROOT, dir)} (once)`);
    execFileSync(process.execPath, [
      path.join(ROOT, 'dist', 'tools', 'synth', 'cli.js'), '--n', String(n), '--seed', String(seed), '--out', dir,
      '--phrasing-set', 'heldout', '--scanner-set', 'heldout', '--matrix', String(matrix),
    ], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  return dir;
}

async function main(): Promise<void> {
  const values = parseOptions({
    n: { type: 'string', default: '200' },
    seed: { type: 'string', default: '7001' },
    matrix: { type: 'string', default: '128' },
    models: { type: 'string' },
    'ort-threads': { type: 'string', default: '1' },
    loaders: { type: 'string', default: '2' },
    json: { type: 'string' },
    /** Only the first K studies of the cohort (a quick look; figures for the docs use the whole cohort). */
    limit: { type: 'string' },
    /** Search variants: LocaliseOptions.levels as JSON, e.g. '[{"sizeMm":48,"strideMm":24,"marginMm":0}]', and maxRuns. */
    levels: { type: 'string' },
    'max-runs': { type: 'string' },
    /** Candidate search with the atlas: fields of LocaliseOptions.atlas as JSON, e.g. '{"select":"strength"}'. */
    'atlas-options': { type: 'string' },
    /** Block occlusion only, even when the bundle has an atlas. */
    'no-atlas': { type: 'boolean', default: false },
  });
  const dir = cohort(Number(values.n), Number(values.seed), Number(values.matrix));
  const labels = readFileSync(path.join(dir, 'labels.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Label)
    .slice(0, values.limit ? Number(values.limit) : undefined);
  const modelsDir = values.models ?? process.env.MODELS_DIR ?? path.join(ROOT, 'onnx-models');
  const models = await loadWorkerModels(modelsDir, { providers: ['cpu'], ...(Number(values['ort-threads']) > 0 ? { threads: Number(values['ort-threads']) } : {}) });
  const loader = createProcessLoader({
    processes: Number(values.loaders), maxRssMb: 1024, timeoutMs: 600_000, preprocessing: models.manifest.preprocessing, sequences: models.sequences,
  });
  const querySet = await manifestQuerySet(models.manifest, models.text);
  // Scoring embeds through models.image; localisation through deps.models.image: a counting copy, so the cost of the
  // search is counted in encoder runs (load-independent) beside its time.
  let runs = 0;
  const counting = { ...models, ...(values['no-atlas'] ? { atlas: null } : {}), image: { embed: (s: Sequence, v: Float32Array[]) => ((runs += v.length), models.image.embed(s, v)) } };
  const localise: LocaliseOptions = {
    ...DEFAULT_LOCALISE_OPTIONS,
    ...(values.levels ? { levels: JSON.parse(values.levels) as LocaliseOptions['levels'] } : {}),
    ...(values['max-runs'] ? { maxRuns: Number(values['max-runs']) } : {}),
    atlas: { ...DEFAULT_LOCALISE_OPTIONS.atlas, ...(values['atlas-options'] ? (JSON.parse(values['atlas-options']) as Partial<LocaliseOptions['atlas']>) : {}) },
  };
  const deps = { loader, models: counting, image: models.image, localise };

  const rows: { type: string; distanceMm: number; probability: number | null; sizeMm?: number; where?: string }[] = [];
  const localiseMs: number[] = [];
  const localiseRuns: number[] = [];
  let flaggedStudies = 0;
  let missing = 0;
  for (const [i, label] of labels.entries()) {
    const before = runs;
    const { result } = await scoreStudyFolder(deps, path.join(dir, 'dicom', label.StudyInstanceUID), querySet);
    if (result.timingsMs.localise !== undefined) {
      flaggedStudies++;
      localiseMs.push(result.timingsMs.localise);
      localiseRuns.push(runs - before);
    }
    for (const type of FOCAL) {
      const truth = label.findings.filter((f) => f.type === type && f.center_mm);
      const finding = result.findings.find((f) => f.queryId === type);
      if (truth.length === 0 || !finding?.flagged) continue;
      if (!finding.location) {
        missing++;
        continue;
      }
      const p = finding.location.patientMm;
      const ds = truth.map((t) => Math.hypot(p[0] - t.center_mm![0], p[1] - t.center_mm![1], p[2] - t.center_mm![2]));
      const nearest = truth[ds.indexOf(Math.min(...ds))];
      rows.push({ type, distanceMm: Math.min(...ds), probability: finding.probability, sizeMm: nearest.size_mm, where: nearest.location });
    }
    if ((i + 1) % 20 === 0) console.error(`${i + 1}/${labels.length} studies`);
  }
  await loader.close();
  await models.close();

  const byType = Object.fromEntries(
    [...FOCAL, 'all'].map((type) => {
      const r = rows.filter((x) => type === 'all' || x.type === type);
      const hits = r.filter((x) => x.distanceMm <= HIT_MM).length;
      // A looser reading beside the goal's: the key point inside the lesion (within half its size of the centre).
      const inside = r.filter((x) => x.sizeMm !== undefined && x.distanceMm <= x.sizeMm / 2).length;
      return [type, { truePositives: r.length, within15mm: hits, rate: r.length ? hits / r.length : NaN, insideLesion: inside, medianMm: percentile(r.map((x) => x.distanceMm), 50), p90Mm: percentile(r.map((x) => x.distanceMm), 90) }];
    }),
  );
  const summary = {
    bundle: `${models.manifest.bundleId}@${models.manifest.version}`,
    search: counting.atlas ? { atlas: localise.atlas, fallback: { levels: localise.levels, maxRuns: localise.maxRuns } } : { levels: localise.levels, maxRuns: localise.maxRuns },
    cohort: path.relative(ROOT, dir),
    studies: labels.length,
    flaggedStudies,
    truePositivesWithoutLocation: missing,
    /** The flags whose key point is further than 15 mm from the lesion: what the misses have in common. */
    misses: rows.filter((r) => r.distanceMm > HIT_MM).map((r) => ({ ...r, distanceMm: Math.round(r.distanceMm * 10) / 10 })),
    byType,
    localiseMs: { p50: percentile(localiseMs, 50), p95: percentile(localiseMs, 95), max: Math.max(...localiseMs) },
    encoderRuns: { p50: percentile(localiseRuns, 50), p95: percentile(localiseRuns, 95), max: Math.max(...localiseRuns) },
    /** One volume through one image encoder, timed in this run (the load-independent cost is encoderRuns). */
    msPerRun: localiseMs.reduce((a, b) => a + b, 0) / Math.max(1, localiseRuns.reduce((a, b) => a + b, 0)),
    machine: { cpus: os.cpus().length, loadAvg: os.loadavg().map((x) => Number(x.toFixed(2))), node: process.version },
  };
  console.log(`\nlocalisation benchmark: ${labels.length} held-out studies (${summary.cohort}), ${summary.bundle}`);
  console.log(`true-positive focal flags: key point within ${HIT_MM} mm of the lesion centre`);
  for (const [type, s] of Object.entries(byType)) {
    console.log(`  ${type.padEnd(14)} ${String(s.within15mm).padStart(4)} / ${String(s.truePositives).padEnd(4)} ${(100 * s.rate).toFixed(1).padStart(5)} %   inside the lesion ${String(s.insideLesion).padStart(3)}   median ${s.medianMm.toFixed(1)} mm, p90 ${s.p90Mm.toFixed(1)} mm`);
  }
  if (missing) console.log(`  ${missing} true-positive flags had no location`);
  console.log(`localisation per flagged study (${flaggedStudies} studies): p50 ${summary.localiseMs.p50.toFixed(0)} ms, p95 ${summary.localiseMs.p95.toFixed(0)} ms; ` +
    `encoder runs p50 ${summary.encoderRuns.p50}, p95 ${summary.encoderRuns.p95}, max ${summary.encoderRuns.max} (${summary.msPerRun.toFixed(1)} ms per run here); load average ${summary.machine.loadAvg.join(' ')}`);
  if (values.json) writeFileSync(values.json, JSON.stringify(summary, null, 2));
}

main().catch((err: unknown) => failCli(err, { stack: true }));
