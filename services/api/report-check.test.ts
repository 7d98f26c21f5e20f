// Unit tests for the report-check rules with a tiny embedder that maps known phrases to fixed axes, so each
// expectation follows from the rule in docs/api.md alone. Sentence splitting and assertion cues are tested with
// shared/language/sentences.ts.
import { calibrated } from '../../test/helpers/calibration';
import type { TriageQuery } from '../../shared/model-manifest';
import type { FindingScore } from '../../shared/results';
import { checkReport, MAX_SENTENCES, TAIL_SENTENCES } from './report-check';
import { plattProbability } from '../../shared/models/calibration';

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

  test('a statement of absence speaks of the flagged finding it is closest to, not of every finding it is near', async () => {
    // Haemorrhage and infarct texts close together (as the shipped encoder has them): "No haemorrhage." is near both.
    const near: Record<string, number[]> = { haemorrhage: [0.6, 1, 0], infarct: [1, 0.6, 0] };
    const nearEmbed = async (texts: string[]) =>
      texts.map((t) => Float32Array.from(Object.entries(near).find(([k]) => t.toLowerCase().includes(k))?.[1] ?? [0, 0, 1]));
    const haem = calibrated({ id: 'haemorrhage', text: 'intracranial haemorrhage', priority: 'STAT' }, { a: 1, b: 0, scoreThreshold: 0.5 });
    const both = [queries[0], haem];
    const check = (report: string) => checkReport({ report, image, findings: both.map((q) => finding(q, true)), queries: both, mentionSimilarity: 0.8, normalText: null, embed: nearEmbed });
    const r = await check('No haemorrhage.');
    expect(r.sentences[0].matchedQueryId).toBe('haemorrhage');
    expect(r.contradicted.map((g) => g.queryId)).toEqual(['haemorrhage']);
    expect(r.notMentioned.map((g) => g.queryId)).toEqual(['acute_infarct']);
    // Each finding denied in its own sentence: both contradicted.
    expect((await check('No haemorrhage. No acute infarct.')).contradicted.map((g) => g.queryId).sort()).toEqual(['acute_infarct', 'haemorrhage']);
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
    // The threshold is a probability: the sentence's probability under the query's calibration is what it is
    // compared with (the raw image score is not), and it is below the threshold.
    expect(r.sentences[1].probability).toBeCloseTo(plattProbability(queries[1].calibration!, 0), 12);
    expect(r.sentences[1].probability!).toBeLessThan(r.sentences[1].threshold!);
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

  test('the closest mentioned query takes the sentence, not the one farthest from the normal sentence', async () => {
    // Axes: 0 haemorrhage, 1 an odd site query (far from everything, the normal sentence too), 2 normal.
    const space: [RegExp, number[]][] = [
      [/normal brain/, [0, 0, 1]],
      [/odd/, [1, 0.3, -0.2]],
      [/ha?emorrhage|haematoma|bleed/, [1, 0, 0.5]],
    ];
    const embedOdd = async (texts: string[]) => texts.map((t) => Float32Array.from(space.find(([re]) => re.test(t.toLowerCase()))?.[1] ?? [0, 0, 1]));
    const haem = calibrated({ id: 'haemorrhage', text: 'intracranial haemorrhage', priority: 'STAT' }, { a: 1, b: 0, scoreThreshold: 0.5 });
    const odd = calibrated({ id: 'odd', text: 'odd site wording', priority: 'STAT', origin: 'site' }, { a: 1, b: 0, scoreThreshold: 0.5 });
    const r = await checkReport({
      report: 'There is a large bleed in the left parietal lobe.', image, findings: [finding(haem, true), finding(odd, false)], queries: [odd, haem],
      mentionSimilarity: 0.6, normalText: 'normal brain', embed: embedOdd,
    });
    // Both mention the sentence: it is 1.0 from the haemorrhage text and 0.76 from the odd query, whose margin over
    // the normal sentence (0.95) is larger than the haemorrhage text's (0.55): similarity decides.
    expect(r.sentences[0]).toMatchObject({ assertion: 'present', matchedQueryId: 'haemorrhage', supported: true });
    expect(r.sentences[0].matchSimilarity).toBeCloseTo(1, 5);
    expect(r.sentences[0].matchMargin).toBeCloseTo(0.553, 2);
  });

  describe('queries that cannot be judged on the study', () => {
    // Axes: 0 hydrocephalus, 1 infarct, 2 other.
    const space: [RegExp, number[]][] = [[/hydrocephalus/, [1, 0, 0]], [/ventricles/, [0.9, 0, 0.44]], [/infarct/, [0, 1, 0]]];
    const embed3 = async (texts: string[]) => texts.map((t) => Float32Array.from(space.find(([re]) => re.test(t.toLowerCase()))?.[1] ?? [0, 0, 1]));
    const hydroPicture = Float32Array.from([1, 0, 0]);
    const image3 = (t: Float32Array) => hydroPicture.reduce((s, x, i) => s + x * t[i], 0) / Math.hypot(...t);
    const judged = calibrated({ id: 'hydrocephalus', text: 'dilated ventricles', priority: 'URGENT' }, { a: 1, b: 0, scoreThreshold: 0.5 });
    const infarct = calibrated({ id: 'acute_infarct', text: 'acute infarct', priority: 'STAT' }, { a: 1, b: 0, scoreThreshold: 0.5 });
    // A site query created after the study was scored: no calibration, no finding in the stored result.
    const newSite: TriageQuery = { id: 'hydro_site', text: 'hydrocephalus', priority: 'URGENT', origin: 'site' };
    const check = (report: string, queries3: TriageQuery[], findings3: FindingScore[]) =>
      checkReport({ report, image: image3, findings: findings3, queries: queries3, mentionSimilarity: 0.6, normalText: null, embed: embed3 });

    test('a sentence matched to a query with no finding in the result is not checked (supported null), not unsupported', async () => {
      const r = await check('Hydrocephalus. Acute infarct.', [newSite, infarct], [finding(infarct, false)]);
      expect(r.sentences[0]).toMatchObject({ matchedQueryId: 'hydro_site', assertion: 'present', supported: null });
      expect(r.sentences[0].notChecked).toMatch(/no finding for "hydro_site"/);
      expect(r.sentences[1]).toMatchObject({ matchedQueryId: 'acute_infarct', supported: false, notChecked: null });
      expect(r.unsupported).toEqual([1]);
      expect(r.warnings.join(' ')).toMatch(/1 sentence matches a query that cannot be judged on this study \("hydro_site"\)/);
    });

    test('a query that had no threshold when the study was scored cannot refute a sentence either', async () => {
      const uncalibrated = { ...finding(judged, false), threshold: null, calibration: 'uncalibrated' as const };
      const r = await check('Hydrocephalus.', [{ ...judged, calibration: undefined }], [uncalibrated]);
      expect(r.sentences[0]).toMatchObject({ matchedQueryId: 'hydrocephalus', supported: null });
      expect(r.sentences[0].notChecked).toMatch(/no threshold/);
      expect(r.unsupported).toEqual([]);
    });

    test('a judged query keeps the match over a closer unjudged one within JUDGED_PREFERENCE; a much closer one still wins', async () => {
      // "Hydrocephalus." is at 1.0 from the new site query and 0.9 from the flagged default's "dilated ventricles":
      // 0.1 apart, more than JUDGED_PREFERENCE, so the site query takes it (not checked); as close, the default wins.
      const flagged = finding(judged, true);
      let r = await check('Hydrocephalus.', [newSite, judged], [flagged]);
      expect(r.sentences[0]).toMatchObject({ matchedQueryId: 'hydro_site', supported: null });
      const closeDefault = { ...judged, text: 'hydrocephalus with dilated ventricles' }; // as close as the site query
      r = await check('Hydrocephalus.', [newSite, closeDefault], [{ ...flagged, text: closeDefault.text }]);
      expect(r.sentences[0]).toMatchObject({ matchedQueryId: 'hydrocephalus', supported: true, notChecked: null });
      expect(r.unsupported).toEqual([]);
      expect(r.warnings).toEqual([]);
    });
  });

  test('a report over MAX_SENTENCES is read at its head and tail, and says which sentences were not read', async () => {
    const filler = Array.from({ length: 259 }, (_, i) => `Sinus ${i} is clear.`);
    const r = await run([...filler, 'IMPRESSION: Acute infarct.'].join('\n'));
    expect(r.sentences).toHaveLength(MAX_SENTENCES);
    expect(r.truncated).toEqual({ sentences: 260, read: MAX_SENTENCES, skippedFrom: MAX_SENTENCES - TAIL_SENTENCES + 1, skippedTo: 260 - TAIL_SENTENCES });
    expect(r.warnings[0]).toMatch(/has 260 sentences.*sentences 151 to 210 were not read/);
    // The impression at the end was read: the flagged infarct is mentioned.
    expect(r.sentences[MAX_SENTENCES - 1].text).toMatch(/Acute infarct/);
    expect(r.notMentioned).toEqual([]);
    const short = await run('Acute infarct.');
    expect(short.truncated).toBeNull();
    expect(short.warnings).toEqual([]);
  });
});
