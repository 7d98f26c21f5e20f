// Unit tests for the report-check rules with a tiny embedder that maps known phrases to fixed axes, so each
// expectation follows from the rule in docs/api.md alone. Sentence splitting and assertion cues are tested with
// shared/language/sentences.ts.
import { calibrated } from '../../test/helpers/calibration';
import type { TriageQuery } from '../../shared/model-manifest';
import type { FindingScore } from '../../shared/results';
import { checkReport } from './report-check';

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
  const run = (report: string) => checkReport({ report, image, findings, queries, mentionSimilarity: 0.8, normalText: null, embed });

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

  test('a sentence is matched on its text without the cue words; a generic query that is as close to a normal report mentions nothing', async () => {
    // Axes: 0 haemorrhage, 1 infarct, 2 "generic" (everything shares some of it, the normal-study sentence too).
    const space: [RegExp, number[]][] = [
      [/weather/, [0.5, 0.5, 1]],
      [/normal brain/, [0, 0, 1]],
      [/ha?emorrhage|haematoma/, [1, 0, 0.6]],
      [/infarct/, [0, 1, 0.6]],
    ];
    const embed2 = async (texts: string[]) => texts.map((t) => Float32Array.from(space.find(([re]) => re.test(t.toLowerCase()))?.[1] ?? [0, 0, 1]));
    const qs: TriageQuery[] = [
      calibrated({ id: 'haemorrhage', text: 'intracranial haemorrhage', priority: 'STAT' }, { a: 1, b: 0, scoreThreshold: 0.5 }),
      calibrated({ id: 'acute_infarct', text: 'acute infarct', priority: 'STAT' }, { a: 1, b: 0, scoreThreshold: 0.5 }),
      { id: 'weather', text: 'the weather is nice', priority: 'STAT' },
    ];
    const fs = [finding(qs[0], true), finding(qs[1], false)];
    const r = await checkReport({
      report: 'No intracranial haemorrhage. Acute left thalamic haematoma.', image, findings: fs, queries: qs, mentionSimilarity: 0.6, normalText: 'normal brain', embed: embed2,
    });
    // "No intracranial haemorrhage" is about haemorrhage (absent), not about infarct, whatever its cue word.
    expect(r.sentences[0]).toMatchObject({ about: 'intracranial haemorrhage', assertion: 'absent', matchedQueryId: 'haemorrhage' });
    // The generic query is as close to a normal study as to the haematoma: it does not take the sentence over.
    expect(r.sentences[1]).toMatchObject({ assertion: 'present', matchedQueryId: 'haemorrhage' });
    expect(r.sentences[1].matchMargin).toBeGreaterThan(0.05);
    expect(r.contradicted).toEqual([]);
    expect(r.notMentioned).toEqual([]);
  });
});
