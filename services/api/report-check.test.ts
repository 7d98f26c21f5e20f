// Unit tests for the report-check text rules (sentence splitting, assertion cues) with a tiny embedder that
// maps known phrases to fixed axes, so each expectation follows from the rule in docs/api.md alone.
import { calibrated } from '../../test/helpers/calibration';
import type { TriageQuery } from '../../shared/model-manifest';
import type { FindingScore } from '../../shared/results';
import { assertionOf, checkReport, splitSentences } from './report-check';

describe('splitSentences', () => {
  test('splits on line breaks and sentence ends, drops headings, bullets and empty parts', () => {
    const report = 'FINDINGS: Acute infarct in the left MCA territory. No haemorrhage!\n- Ventricles normal;  midline shift absent\n\nIMPRESSION:\n1. Stroke.';
    expect(splitSentences(report)).toEqual([
      'Acute infarct in the left MCA territory', 'No haemorrhage!', 'Ventricles normal', 'midline shift absent', 'Stroke',
    ]);
  });

  test('"but" and "however" start a clause with its own assertion', () => {
    const parts = splitSentences('No haemorrhage but an acute infarct in the pons. Ventricles normal, however there is a mass.');
    expect(parts).toEqual(['No haemorrhage', 'an acute infarct in the pons', 'Ventricles normal', 'there is a mass']);
    expect(parts.map(assertionOf)).toEqual(['absent', 'present', 'absent', 'present']);
  });

  test('keeps decimals inside a sentence together', () => {
    expect(splitSentences('Lesion measures 1.5 cm. Stable.')).toEqual(['Lesion measures 1.5 cm', 'Stable']);
  });
});

describe('assertionOf', () => {
  test.each([
    ['Acute infarct in the left MCA territory', 'present'],
    ['No acute infarct', 'absent'],
    ['Negative for haemorrhage', 'absent'],
    ['Ventricles are normal in size', 'absent'],
    ['Abnormal signal in the pons', 'present'],
    ['Small infarct cannot be excluded', 'uncertain'],
    ['Possible early ischaemia', 'uncertain'],
  ])('%s -> %s', (sentence, expected) => {
    expect(assertionOf(sentence)).toBe(expected);
  });
});

describe('checkReport', () => {
  // Axes: 0 infarct, 1 mass, 2 other. Unknown sentences point at "other".
  const axes: Record<string, number[]> = { infarct: [1, 0, 0], mass: [0, 1, 0] };
  const embed = async (texts: string[]) =>
    texts.map((t) => Float32Array.from(Object.entries(axes).find(([k]) => t.toLowerCase().includes(k))?.[1] ?? [0, 0, 1]));
  const queries: TriageQuery[] = [
    calibrated({ id: 'acute_infarct', text: 'acute infarct', priority: 'STAT' }, { a: 1, b: 0, scoreThreshold: 0.5 }),
    calibrated({ id: 'mass', text: 'mass lesion', priority: 'URGENT' }, { a: 1, b: 0, scoreThreshold: 0.5 }),
  ];
  const finding = (q: TriageQuery, flagged: boolean): FindingScore => ({
    queryId: q.id, text: q.text, priority: q.priority, similarity: flagged ? 0.9 : 0.1, probability: null, threshold: q.calibration!.threshold, flagged, triggered: flagged,
    calibration: 'calibrated', bySequence: {},
  });
  const picture = Float32Array.from([1, 0, 0]); // looks like an infarct
  const image = (t: Float32Array) => picture.reduce((s, x, i) => s + x * t[i], 0) / Math.hypot(...t);
  const findings = [finding(queries[0], true), finding(queries[1], false)];
  const run = (report: string) => checkReport({ report, image, findings, queries, mentionSimilarity: 0.8, embed });

  test('flagged finding missing from the report is notMentioned, with the closest sentence', async () => {
    const r = await run('Ventricles are unremarkable. Old lacune.');
    expect(r.notMentioned.map((g) => g.queryId)).toEqual(['acute_infarct']);
    expect(r.notMentioned[0].closestSentence).toBe(0);
    expect(r.contradicted).toEqual([]);
  });

  test('a flagged finding only ever stated absent is contradicted, not notMentioned', async () => {
    const r = await run('No acute infarct.');
    expect(r.contradicted.map((g) => g.queryId)).toEqual(['acute_infarct']);
    expect(r.notMentioned).toEqual([]);
  });

  test('a hedged mention counts as mentioned and is not checked for support', async () => {
    const r = await run('Possible small infarct.');
    expect(r.notMentioned).toEqual([]);
    expect(r.contradicted).toEqual([]);
    expect(r.sentences[0]).toMatchObject({ assertion: 'uncertain', supported: null });
  });

  test('an asserted finding below its threshold and not flagged is unsupported; a flagged one is supported', async () => {
    const r = await run('Acute infarct in the left MCA territory. A mass in the right frontal lobe.');
    expect(r.sentences[0]).toMatchObject({ matchedQueryId: 'acute_infarct', supported: true });
    expect(r.sentences[1]).toMatchObject({ matchedQueryId: 'mass', supported: false, imageScore: 0, threshold: queries[1].calibration!.threshold });
    expect(r.unsupported).toEqual([1]);
  });

  test('sentences matching no query are left unchecked', async () => {
    const r = await run('Acute infarct. Sinuses are clear.');
    expect(r.sentences[1]).toMatchObject({ matchedQueryId: null, supported: null });
    expect(r.unsupported).toEqual([]);
  });
});
