// `npm run bench:calibrate`: how long the service takes to calibrate a NEW triage query from a site's own reports
// (zero-label calibration, services/api/calibration on shared/models/pseudo-labels.ts), and how long the text
// encoder takes for one query sentence on CPU. A private Redis holds BENCH_STUDIES (default 1,000) past studies
// written as the worker writes them (result JSON, unit image vectors and their norms, services/worker/store.ts)
// with a synthetic final report each (tools/synth's report writer) stored as the report interfaces store them.
// Image vectors are synthetic (random, with a share of the studies pulled towards the finding's text vector):
// the figure measured is time, not accuracy. Reports' sentence vectors are computed when a report arrives (the
// reported-channel hook), so the "new query" figure is with that cache warm; the cold figure (every report
// embedded inside the calibration) is printed beside it.
// Environment: BENCH_STUDIES, BENCH_RUNS (default 5), MODELS_DIR (default ./onnx-models).
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { l2normalize } from '../shared/models/scoring';
import { textModelVersion } from '../shared/models/pseudo-labels';
import { startPrivateRedis } from '../shared/private-redis';
import { connectRedis } from '../shared/redis';
import { storeMatchedReport } from '../shared/reports';
import type { StudyResult } from '../shared/results';
import type { Sequence, TriageQuery } from '../shared/model-manifest';
import { createCalibrator } from '../services/api/calibration/calibrator';
import { createReportVectorCache } from '../services/api/calibration/report-vectors';
import { mentionSimilarity } from '../services/api/language';
import { loadTextEmbedder } from '../services/api/text-embedder';
import { writeResult } from '../services/worker/store';
import { Rng } from '../tools/synth/prng';
import { writeReport } from '../tools/synth/report';
import type { FindingLabel, FindingType, StudyLabels } from '../tools/synth/types';

const STUDIES = Number(process.env.BENCH_STUDIES ?? 1000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const MODELS_DIR = path.resolve(process.env.MODELS_DIR ?? 'onnx-models');
const SEQUENCES: Sequence[] = ['T2', 'FLAIR', 'DWI', 'ADC'];
const TYPES: FindingType[] = ['acute_infarct', 'haemorrhage', 'mass', 'hydrocephalus', 'white_matter_disease', 'atrophy'];

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
const ms = (x: number) => `${x.toFixed(1)} ms`;

/** The labels a synthetic report is written from: a finding or none (a normal study). */
function labelsFor(i: number, rng: Rng): StudyLabels {
  const type = rng.chance(0.5) ? null : rng.pick(TYPES);
  const side = rng.pick(['left', 'right'] as const);
  const finding: FindingLabel = {
    type: type ?? 'atrophy', side, size_mm: rng.int(8, 40), location: `${side} thalamus`, region: 'thalamus', territory: 'MCA', stage: 'acute', grade: 2,
    midline_shift_mm: rng.int(0, 6),
  } as FindingLabel;
  return {
    AccessionNumber: `BENCH${i}`, StudyInstanceUID: uid(i), normal: type === null, findings: type ? [finding] : [], age: rng.int(30, 90), sex: rng.pick(['F', 'M'] as const),
    manufacturer: 'Synthetic', model: 'Bench', fieldStrength: 3, series: [],
  };
}

const uid = (i: number) => `1.2.826.0.1.3680043.10.543.${i}`;

function randomUnit(rng: Rng, dim: number, towards: Float32Array | null, weight: number): Float32Array {
  const v = new Float32Array(dim);
  for (let d = 0; d < dim; d++) v[d] = rng.uniform(-1, 1) + (towards ? weight * towards[d] * Math.sqrt(dim) : 0);
  return l2normalize(v);
}

async function main(): Promise<void> {
  const text = await loadTextEmbedder(MODELS_DIR, 1);
  const { manifest } = text;
  console.log(`bench:calibrate: bundle ${manifest.bundleId} ${manifest.version} (${manifest.textEncoder.id}), ${STUDIES} past studies, ${RUNS} runs; ${cpus().length} cores (${cpus()[0]?.model.trim()}), load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);

  // 1. Text encoding of one query sentence (CPU, one ONNX Runtime thread, as the API loads it).
  const sentences = [
    'Acute haemorrhage in the left thalamus.', 'Subdural haematoma over the right convexity.', 'Restricted diffusion in keeping with an acute infarct.',
    'Enlarged ventricles out of proportion to the sulci.', 'Intra-axial mass with surrounding vasogenic oedema.', 'Multiple sclerosis plaques in the periventricular white matter.',
    'Extra-axial dural-based mass in keeping with a meningioma.', 'Generalised cerebral volume loss.',
  ];
  for (let i = 0; i < 10; i++) await text.embedTexts([sentences[i % sentences.length]]);
  const encode: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    await text.embedTexts([sentences[i % sentences.length]]);
    encode.push(performance.now() - t0);
  }

  // 2. Past studies and their reports in a private Redis, written through the worker's and the reports' own code.
  const redisServer = await startPrivateRedis({ appendonly: false, stdio: 'ignore' });
  const redis = connectRedis(redisServer.url, 'worker');
  try {
    const query: TriageQuery = { id: 'bench_new_query', text: 'Acute haematoma in the thalamus.', negativeText: manifest.normalQuery?.text ?? 'Normal MRI brain.', priority: 'STAT', targetSensitivity: 0.95 };
    const [towards] = await text.embedTexts([query.text]);
    const tWrite = performance.now();
    for (let i = 0; i < STUDIES; i++) {
      const rng = new Rng('bench-calibrate', i, 'study', 'train');
      const labels = labelsFor(i, rng);
      const positive = labels.findings.some((f) => f.type === 'haemorrhage');
      const vectors: Record<string, Float32Array> = {};
      const norms: Partial<Record<Sequence, number>> = {};
      for (const s of SEQUENCES) {
        vectors[s] = randomUnit(rng, manifest.embeddingDim, positive ? towards : null, 0.15);
        norms[s] = rng.uniform(5, 15);
      }
      // The worker's combined vector: the unit mean of the raw (unit x norm) sequence vectors.
      vectors.combined = l2normalize(Float32Array.from({ length: manifest.embeddingDim }, (_, d) => SEQUENCES.reduce((sum, s) => sum + vectors[s][d] * norms[s]!, 0)));
      const result: StudyResult = {
        StudyInstanceUID: uid(i), AccessionNumber: `BENCH${i}`, priority: 'ROUTINE', priorityProbability: null, findings: [], abnormalProbability: null,
        sequencesUsed: SEQUENCES, sequencesMissing: [], series: [], confidence: 1, model: { bundleId: manifest.bundleId, version: manifest.version },
        judgedWith: { querySetVersion: 'bench', classThresholds: {} }, provider: 'cpu', timingsMs: { decode: 0, preprocess: 0, inference: 0, scoring: 0, total: 0 },
        receivedAt: Date.now() - 86_400_000 + i, scoredAt: Date.now() - 86_000_000 + i,
      };
      await writeResult(redis, result, vectors, norms);
      const report = writeReport(labels, rng, 'train', { sequences: SEQUENCES, fieldT: 3 });
      await storeMatchedReport(redis, { AccessionNumber: `BENCH${i}`, StudyInstanceUID: uid(i), text: report, status: 'F', receivedAt: Date.now() - 80_000_000 + i, source: 'api' });
    }
    const writeMs = performance.now() - tWrite;

    const embed = (t: string[]) => text.embedTexts(t);
    const reports = createReportVectorCache(redis, textModelVersion(manifest), embed);
    const calibrator = createCalibrator({
      redis, manifest, embed, reports, mentionSimilarity: mentionSimilarity(undefined, text.language),
      minStudies: 30, minPositives: 5, maxStudies: 2000,
      // The synthetic image vectors barely follow the reports: the separation check would refuse them early, and
      // the figure is the time of a whole calibration (fit, threshold, operating points), so it is off here, and so
      // is the least specificity at the threshold.
      minPseudoAuc: 0,
      minSpecificity: 0,
    });

    // Cold: no report's sentences embedded yet, so the calibration embeds all of them.
    const tCold = performance.now();
    // The query is not stored: nothing is recorded (the caller records the attempt with its write).
    const cold = await calibrator.calibrate(query);
    const coldMs = performance.now() - tCold;

    // Warm (the steady state: each report's sentences were embedded when it arrived).
    const warm: number[] = [];
    let last = cold;
    for (let r = 0; r < RUNS; r++) {
      const t0 = performance.now();
      last = await calibrator.calibrate({ ...query, text: r % 2 ? query.text : 'Acute intraparenchymal haemorrhage.' });
      warm.push(performance.now() - t0);
    }

    console.log('');
    console.log('| figure | p50 | p95 | max |');
    console.log('|---|---|---|---|');
    console.log(`| text encoding of one query sentence (${encode.length} runs) | ${ms(pct(encode, 0.5))} | ${ms(pct(encode, 0.95))} | ${ms(Math.max(...encode))} |`);
    console.log(`| calibrating a new query on ${STUDIES} past studies, report vectors cached at arrival (${RUNS} runs) | ${ms(pct(warm, 0.5))} | ${ms(pct(warm, 0.95))} | ${ms(Math.max(...warm))} |`);
    console.log(`| the same, cold: every report's sentences embedded inside the calibration (1 run) | ${ms(coldMs)} | | |`);
    console.log('');
    console.log(`writing ${STUDIES} results and reports: ${(writeMs / 1000).toFixed(1)} s`);
    console.log(last.ok
      ? `calibration: ${last.calibration.studies} studies, ${last.calibration.positives} pseudo-positive, threshold ${last.calibration.threshold.toFixed(3)}, estimated sensitivity ${last.calibration.estimated.sensitivity.toFixed(3)} (synthetic vectors: time, not accuracy)`
      : `calibration refused: ${last.reason}`);
  } finally {
    await redis.quit();
    await redisServer.stop();
    await text.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
