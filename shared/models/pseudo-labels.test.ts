// Zero-label calibration from reports with a deterministic embedder (words on fixed axes) and synthetic image
// vectors: the pseudo-labels follow the reports' statements (negated sentences never count), the calibration keeps
// the target sensitivity on the pseudo-labels, and too few studies or mentions give no calibration with the reason.
import { queryFingerprint, type TriageQuery } from '../model-manifest';
import { calibrateFromReports, decodeReportVectors, embedReport, encodeReportVectors, reportSimilarity, type CalibrationStudy } from './pseudo-labels';
import { operatingPoint } from './calibration';
import { scoredSentences, scoreStudy } from './scoring';

// Axes: 0 haemorrhage, 1 infarct, 2 anything else.
const axis = (t: string) => (/ha?emorrhage|haematoma|bleed/i.test(t) ? [1, 0, 0.2] : /infarct/i.test(t) ? [0, 1, 0.2] : [0, 0, 1]);
const unit = (v: number[]) => {
  const n = Math.hypot(...v);
  return Float32Array.from(v.map((x) => x / n));
};
const embed = async (texts: string[]) => texts.map((t) => unit(axis(t)));

describe('report vectors', () => {
  test('only sentences that do not state absence are embedded, without their cue words', async () => {
    const r = await embedReport('FINDINGS: No intracranial haemorrhage. Possible small infarct in the pons.\nIMPRESSION: Normal ventricles.', embed);
    expect(r.sentences).toEqual(['small infarct in the pons']);
    const q = unit([1, 0, 0.2]);
    expect(reportSimilarity(q, r)).toBeCloseTo(0.2 * 0.2 / (1.04), 4);
    expect(reportSimilarity(q, await embedReport('No acute abnormality.', embed))).toBe(-1);
    expect(reportSimilarity(q, await embedReport('Acute left thalamic haematoma.', embed))).toBeCloseTo(1, 6);
  });

  test('round-trip through the Redis encoding', async () => {
    const r = await embedReport('Acute infarct. Small haematoma.', embed);
    const back = decodeReportVectors(encodeReportVectors(r));
    expect(back.sentences).toEqual(r.sentences);
    back.vectors.forEach((v, i) => v.forEach((x, d) => expect(x).toBeCloseTo(r.vectors[i][d], 6)));
    expect(decodeReportVectors(encodeReportVectors({ sentences: [], vectors: [] }))).toEqual({ sentences: [], vectors: [] });
  });
});

describe('calibrateFromReports', () => {
  const query: TriageQuery = { id: 'bleed', text: 'Intracranial haemorrhage.', negativeText: 'Normal MRI brain.', priority: 'STAT', sequences: ['DWI'] };
  /** n studies, `pos` of them with a haemorrhage: DWI image vector near the haemorrhage axis by a varying amount. */
  async function cohort(n: number, pos: number): Promise<{ studies: CalibrationStudy[]; truth: boolean[] }> {
    const studies: CalibrationStudy[] = [];
    const truth: boolean[] = [];
    for (let i = 0; i < n; i++) {
      const has = i < pos;
      const strength = has ? 0.3 + (i % 10) / 10 : (i % 7) / 20;
      const report = has ? 'Acute intraparenchymal haematoma with oedema.' : i % 2 ? 'No haemorrhage. Normal study.' : 'Small vessel change.';
      studies.push({ images: { DWI: Float32Array.from([strength, 0.1, 1 - strength / 2]), T2: Float32Array.from([0, 0, 1]) }, report: await embedReport(report, embed) });
      truth.push(has);
    }
    return { studies, truth };
  }

  test('labels come from the reports, the threshold keeps the target sensitivity of them, and the query is scored as the worker scores it', async () => {
    const { studies, truth } = await cohort(120, 30);
    const [text, negative] = await embed([query.text, query.negativeText!]);
    const out = calibrateFromReports(query, { text, negative }, studies, { combination: 'mean-embedding', bundleVersion: 'b1', targetSensitivity: 0.9, mentionSimilarity: 0.5 });
    if (!out.ok) throw new Error(out.reason);
    expect(out.pseudo.labels).toEqual(truth);
    expect(out.calibration).toMatchObject({ method: 'report-pseudo-labels', studies: 120, positives: 30, bundleVersion: 'b1', targetSensitivity: 0.9, fittedFor: queryFingerprint(query) });
    // The same scores the worker's scoring gives the DWI vector alone (the query reads on DWI).
    expect(out.scores[0]).toBeCloseTo(scoreStudy('mean-embedding', studies[0].images, [{ query, text, negative }])[0].score, 9);
    const probabilities = out.scores.map((s) => 1 / (1 + Math.exp(-(out.calibration.a * s + out.calibration.b))));
    expect(operatingPoint(probabilities, truth, out.calibration.threshold).sensitivity).toBeGreaterThanOrEqual(0.9);
    expect(out.calibration.estimated.sensitivity).toBeGreaterThanOrEqual(0.9);
  });

  test('a query that only states absence is scored with the finding as its contrast and its pseudo-positives are the reports without it', async () => {
    const { studies, truth } = await cohort(120, 30);
    const absence: TriageQuery = { id: 'no_bleed', text: 'No haemorrhage.', negativeText: 'Normal MRI brain.', priority: 'ROUTINE' };
    const { positive, contrast } = scoredSentences(absence);
    expect({ positive, contrast }).toEqual({ positive: 'Normal MRI brain.', contrast: 'haemorrhage' });
    const [text, negative] = await embed([positive, contrast!]);
    const out = calibrateFromReports(absence, { text, negative }, studies, { combination: 'mean-embedding', bundleVersion: 'b1', targetSensitivity: 0.9, mentionSimilarity: 0.5 });
    if (!out.ok) throw new Error(out.reason);
    expect(out.pseudo.labels).toEqual(truth.map((t) => !t));
    expect(out.calibration.positives).toBe(90);
    // Studies with a haemorrhage score lowest.
    const meanScore = (want: boolean) => out.scores.filter((_, i) => truth[i] === want).reduce((a, b) => a + b, 0) / truth.filter((t) => t === want).length;
    expect(meanScore(true)).toBeLessThan(meanScore(false));
    // A query that asserts a finding, and one without a contrast sentence, are scored as written.
    expect(scoredSentences(query)).toEqual({ positive: query.text, contrast: query.negativeText });
    expect(scoredSentences({ text: 'No haemorrhage.' })).toEqual({ positive: 'No haemorrhage.' });
  });

  test('too few studies, or no report mentioning the finding, give no calibration and say why', async () => {
    const [text, negative] = await embed([query.text, query.negativeText!]);
    const small = await cohort(10, 3);
    const few = calibrateFromReports(query, { text, negative }, small.studies, { combination: 'mean-embedding', bundleVersion: 'b1', targetSensitivity: 0.95 });
    expect(few).toMatchObject({ ok: false, studies: 10, reason: expect.stringContaining('needs at least 30') });
    const none = await cohort(60, 0);
    const unmentioned = calibrateFromReports(query, { text, negative }, none.studies, { combination: 'mean-embedding', bundleVersion: 'b1', targetSensitivity: 0.95, mentionSimilarity: 0.5 });
    expect(unmentioned).toMatchObject({ ok: false, positives: 0, reason: expect.stringContaining('0 mentioning this finding') });
  });

  test('images that do not tell the reported studies apart give no calibration, rather than a threshold that flags at random', async () => {
    const [text, negative] = await embed([query.text, query.negativeText!]);
    const { studies } = await cohort(60, 20);
    // The same reports, image vectors that no longer follow them (every study alike but for a small ripple).
    const blind = studies.map((s, i) => ({ ...s, images: { DWI: Float32Array.from([0.2 + (i % 3) / 100, 0.1, 0.9]) } }));
    const out = calibrateFromReports(query, { text, negative }, blind, { combination: 'mean-embedding', bundleVersion: 'b1', targetSensitivity: 0.95, mentionSimilarity: 0.5 });
    expect(out).toMatchObject({ ok: false, positives: 20, reason: expect.stringMatching(/do not tell apart the 20 past studies .* \(AUC 0\.\d\d against the reports, below 0\.6\)/) });
    // The same cohort with its images calibrates (the rule is about separation, not about the reports).
    expect(calibrateFromReports(query, { text, negative }, studies, { combination: 'mean-embedding', bundleVersion: 'b1', targetSensitivity: 0.95, mentionSimilarity: 0.5 }).ok).toBe(true);
  });

  test('a threshold that would flag nearly every study is no calibration: the reason says so', async () => {
    const [text, negative] = await embed([query.text, query.negativeText!]);
    const { studies } = await cohort(60, 20);
    // Two studies whose reports mention a haemorrhage have images below every other study (noisy pseudo-labels): at
    // 0.95 sensitivity on 20 pseudo-positives the threshold would sit under the whole cohort.
    const noisy = studies.map((s, i) => (i < 2 ? { ...s, images: { DWI: Float32Array.from([-0.5, 0.1, 1]) } } : s));
    const opts = { combination: 'mean-embedding' as const, bundleVersion: 'b1', targetSensitivity: 0.95, mentionSimilarity: 0.5 };
    const out = calibrateFromReports(query, { text, negative }, noisy, opts);
    expect(out).toMatchObject({ ok: false, studies: 60, positives: 20, reason: expect.stringMatching(/would also flag 40 of the 40 past studies whose reports do not mention this finding \(specificity 0\.00, below 0\.5\): it would flag nearly every study/) });
    // The images do rank the reports (the AUC gate passes): only the threshold is refused; turned off, it calibrates.
    const off = calibrateFromReports(query, { text, negative }, noisy, { ...opts, minSpecificity: 0 });
    if (!off.ok) throw new Error(off.reason);
    expect(off.calibration.estimated.specificity).toBe(0);
    // The clean cohort keeps a specificity above the floor.
    const clean = calibrateFromReports(query, { text, negative }, studies, opts);
    if (!clean.ok) throw new Error(clean.reason);
    expect(clean.calibration.estimated.specificity).toBeGreaterThanOrEqual(0.5);
  });
});
