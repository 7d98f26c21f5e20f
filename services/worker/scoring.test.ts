import { expectedSequences, type TriageQuery } from '../../shared/model-manifest';
import { calibrated, TEST_BUNDLE_VERSION } from '../../test/helpers/calibration';
import { combinedVector, confidence, findings, partialFacts, queryVectors, readsOn, scoreStudy, sentencesOf, studyPriority, type Judging } from './scoring';
import { finalResult } from './finalise';
import type { StudyResult } from '../../shared/results';

const v = (...xs: number[]) => Float32Array.from(xs);
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

const vectors = new Map<string, Float32Array>([
  ['infarct', v(1, 0, 0)],
  ['bleed', v(0, 1, 0)],
  ['normal brain', v(0, 0, 1)],
  ['no infarct', v(0, 0, 1)],
]);
const cal = (q: TriageQuery, scoreThreshold: number, a = 10, b = -5) => calibrated(q, { a, b, scoreThreshold });
const infarct: TriageQuery = cal({ id: 'acute_infarct', text: 'infarct', priority: 'STAT' }, 0.5);
const bleed: TriageQuery = cal({ id: 'haemorrhage', text: 'bleed', priority: 'URGENT' }, 0.5);
const judging: Judging = { bundleVersion: TEST_BUNDLE_VERSION, classThresholds: {} };
const p = (priority: 'STAT' | 'URGENT' | 'ROUTINE', probability: number | null, threshold: number | null = 0.5) => ({ priority, probability, threshold });

describe('study priority', () => {
  it('is the most urgent class among flagged findings, ordered by the probability that set it', () => {
    expect(studyPriority([p('URGENT', 0.9), p('STAT', 0.6)])).toEqual({ priority: 'STAT', priorityProbability: 0.6 });
    expect(studyPriority([p('URGENT', 0.7), p('STAT', 0.4)])).toEqual({ priority: 'URGENT', priorityProbability: 0.7 });
  });
  it('is ROUTINE when nothing is flagged, whatever the queries\' classes', () => {
    expect(studyPriority([p('STAT', 0.2), p('URGENT', null, null)]).priority).toBe('ROUTINE');
    expect(studyPriority([])).toEqual({ priority: 'ROUTINE', priorityProbability: null });
  });
});

describe('confidence', () => {
  it('is the fraction of the bundle\'s sequences present', () => {
    expect(confidence(['T2', 'FLAIR', 'DWI', 'ADC'], ['T2', 'FLAIR', 'DWI', 'ADC'])).toBe(1);
    expect(confidence(['T2', 'FLAIR', 'DWI'], ['T2', 'FLAIR', 'DWI', 'ADC'])).toBe(0.75);
    // A sequence the bundle has no encoder for does not raise it.
    expect(confidence(['T1', 'T2'], ['T2', 'FLAIR'])).toBe(0.5);
  });
});

describe('findings', () => {
  const qvs = queryVectors([infarct, bleed], vectors);

  it('mean-score: the combined score is the mean of the per-sequence cosines', () => {
    // DWI points at "infarct", ADC half-way between infarct and bleed.
    const emb = { DWI: v(2, 0, 0), ADC: v(1, 1, 0) };
    const [fInfarct, fBleed] = findings(emb, qvs, 'mean-score', judging);
    expect(fInfarct.bySequence.DWI).toBeCloseTo(1, 6);
    expect(fInfarct.bySequence.ADC).toBeCloseTo(Math.SQRT1_2, 6);
    expect(fInfarct.similarity).toBeCloseTo((1 + Math.SQRT1_2) / 2, 6);
    expect(fBleed.similarity).toBeCloseTo((0 + Math.SQRT1_2) / 2, 6);
    expect(fInfarct.probability).toBeCloseTo(sigmoid(10 * fInfarct.similarity - 5), 6);
    expect(fInfarct.flagged).toBe(true);
    expect(fBleed.flagged).toBe(false);
  });

  it('mean-embedding: the combined score is the cosine with the mean vector', () => {
    const emb = { T2: v(1, 0, 0), FLAIR: v(0, 1, 0) };
    const [fInfarct] = findings(emb, qvs, 'mean-embedding', judging);
    expect(fInfarct.similarity).toBeCloseTo(Math.SQRT1_2, 6);
    expect(fInfarct.bySequence).toEqual({ FLAIR: expect.closeTo(0, 6), T2: expect.closeTo(1, 6) });
  });

  it('subtracts the negative sentence\'s cosine when a query has one', () => {
    const contrast: TriageQuery = { ...infarct, negativeText: 'no infarct' };
    const [f] = findings({ DWI: v(1, 0, 1) }, queryVectors([contrast], vectors), 'mean-score', judging);
    expect(f.similarity).toBeCloseTo(Math.SQRT1_2 - Math.SQRT1_2, 6);
  });

  it('flags at the threshold itself and never flags an uncalibrated query', () => {
    const atThreshold: TriageQuery = cal(infarct, 1);
    const uncalibrated: TriageQuery = { id: 'adhoc', text: 'infarct', priority: 'STAT' };
    const [a, u] = findings({ DWI: v(3, 0, 0) }, queryVectors([atThreshold, uncalibrated], vectors), 'mean-score', judging);
    expect(a.similarity).toBe(1); // 3/sqrt(9): exact in floating point
    expect(a.flagged).toBe(true);
    expect(u.flagged).toBe(false);
    expect(u.probability).toBeNull();
    expect(u.calibration).toBe('uncalibrated');
  });

  it('never applies a calibration fitted for other words or another image model', () => {
    const edited: TriageQuery = { ...infarct, text: 'bleed' };
    const [e] = findings({ DWI: v(0, 1, 0) }, queryVectors([edited], vectors), 'mean-score', judging);
    expect(e).toMatchObject({ calibration: 'stale-text', probability: null, threshold: null, flagged: false });
    const [b] = findings({ DWI: v(1, 0, 0) }, qvs, 'mean-score', { ...judging, bundleVersion: 'another-bundle' });
    expect(b).toMatchObject({ calibration: 'stale-bundle', flagged: false });
  });

  it('judges a bundle query with its class threshold and marks what triggered the priority', () => {
    const [fi, fb] = findings({ DWI: v(1, 1, 0) }, qvs, 'mean-score', { ...judging, classThresholds: { STAT: 0.99, URGENT: 0.5 } });
    expect(fi).toMatchObject({ threshold: 0.99, flagged: false, triggered: false });
    expect(fb).toMatchObject({ threshold: 0.5, flagged: true, triggered: true });
    expect(fi.probability! >= 0.99).toBe(fi.flagged);
  });
});

describe('scoreStudy', () => {
  const opts = { combination: 'mean-score' as const, modelSequences: ['T2', 'FLAIR', 'DWI', 'ADC'] as const, ...judging };

  it('reports a missing sequence and lowers confidence without failing', () => {
    const s = scoreStudy({ DWI: v(1, 0, 0), ADC: v(1, 0.1, 0), T2: v(0.2, 0.1, 1) }, [infarct, bleed], vectors, { ...opts, modelSequences: [...opts.modelSequences] });
    expect(s.sequencesUsed).toEqual(['ADC', 'DWI', 'T2']);
    expect(s.sequencesMissing).toEqual(['FLAIR']);
    expect(s.confidence).toBe(0.75);
    expect(s.priority).toBe(s.findings.find((f) => f.queryId === 'acute_infarct')!.flagged ? 'STAT' : 'ROUTINE');
  });

  it('gives URGENT when only the URGENT query is flagged, ROUTINE when none', () => {
    const urgent = scoreStudy({ FLAIR: v(0, 1, 0) }, [infarct, bleed], vectors, { ...opts, modelSequences: [...opts.modelSequences] });
    expect(urgent.findings.map((f) => f.flagged)).toEqual([false, true]);
    expect(urgent.priority).toBe('URGENT');
    const routine = scoreStudy({ FLAIR: v(0, 0, 1) }, [infarct, bleed], vectors, { ...opts, modelSequences: [...opts.modelSequences] });
    expect(routine.priority).toBe('ROUTINE');
  });

  it('abnormal probability is 1 - P(normal) from the normal query', () => {
    const normalQuery: TriageQuery = cal({ id: 'normal', text: 'normal brain', priority: 'ROUTINE' }, 0.5, 4, -1);
    const s = scoreStudy({ T2: v(0, 0, 1) }, [infarct], vectors, { ...opts, modelSequences: [...opts.modelSequences], normalQuery });
    expect(s.abnormalProbability).toBeCloseTo(1 - sigmoid(4 * 1 - 1), 6);
    const none = scoreStudy({ T2: v(0, 0, 1) }, [infarct], vectors, { ...opts, modelSequences: [...opts.modelSequences] });
    expect(none.abnormalProbability).toBeNull();
  });

  it('keeps a unit-length combined vector for retrieval', () => {
    const c = combinedVector({ T2: v(3, 0, 0), DWI: v(0, 3, 0) });
    expect(Math.hypot(...c)).toBeCloseTo(1, 6);
    expect(c[0]).toBeCloseTo(c[1], 6);
  });

  it('refuses a study with no sequence (the pipeline turns that into a permanent error first)', () => {
    expect(() => scoreStudy({}, [infarct], vectors, { ...opts, modelSequences: [...opts.modelSequences] })).toThrow(/at least one sequence/);
  });
});

describe('sentences and query vectors', () => {
  it('lists each sentence once, including contrast and normal sentences', () => {
    const q2: TriageQuery = { ...bleed, negativeText: 'no infarct' };
    const normal: TriageQuery = { id: 'normal', text: 'normal brain', priority: 'ROUTINE' };
    expect(sentencesOf([infarct, q2, { ...infarct, id: 'dup' }], normal).sort()).toEqual(['bleed', 'infarct', 'no infarct', 'normal brain']);
  });
  it('refuses to score a query whose sentence was not embedded', () => {
    expect(() => queryVectors([{ ...infarct, text: 'never embedded' }], vectors)).toThrow(/no text vector/);
  });
});

describe('partial studies', () => {
  const model = ['T2', 'FLAIR', 'DWI', 'ADC'] as const;
  const onDwi: TriageQuery = cal({ id: 'acute_infarct', text: 'infarct', priority: 'STAT', sequences: ['DWI'] }, 0.5, 10, 5);

  it('a query reads on its own sequences the bundle has, else on all of them', () => {
    expect(readsOn({ sequences: ['DWI', 'T1'] }, model)).toEqual(['DWI']);
    expect(readsOn({}, model)).toEqual([...model]);
    // Only sequences the bundle cannot read (a site query on SWI or T1): scored on all, so it reads on all.
    expect(readsOn({ sequences: ['SWI', 'T1'] }, model)).toEqual([...model]);
  });

  it('a query naming only sequences the bundle cannot read is a fallback, held while the study lacks any of them', () => {
    const onSwi: TriageQuery = { ...onDwi, id: 'ich_swi', sequences: ['SWI'] };
    expect(partialFacts(onSwi, ['T2', 'FLAIR'], { modelSequences: model })).toEqual({ waitingFor: ['DWI', 'ADC'], fallback: true, held: true });
    expect(partialFacts(onSwi, ['T2', 'FLAIR', 'DWI', 'ADC'], { modelSequences: model })).toEqual({ waitingFor: [], fallback: true, held: false });
  });

  it('a STAT/URGENT finding waits for its missing sequences; a fallback one is held until the result is final', () => {
    expect(partialFacts(onDwi, ['T2', 'FLAIR'], { modelSequences: model })).toEqual({ waitingFor: ['DWI'], fallback: true, held: true });
    expect(partialFacts(onDwi, ['T2', 'FLAIR'], { modelSequences: model, final: true })).toEqual({ waitingFor: ['DWI'], fallback: true, held: false });
    expect(partialFacts(onDwi, ['DWI'], { modelSequences: model })).toEqual({ waitingFor: [], fallback: false, held: false });
    // A query read on all sequences waits for any missing one, but is never a fallback.
    expect(partialFacts(bleed, ['T2'], { modelSequences: model })).toEqual({ waitingFor: ['FLAIR', 'DWI', 'ADC'], fallback: false, held: false });
    // ROUTINE queries cannot raise a priority: nothing to wait for.
    expect(partialFacts({ ...onDwi, priority: 'ROUTINE' }, ['T2'], { modelSequences: model }).waitingFor).toEqual([]);
  });

  it('a study without DWI is not STAT on a DWI query scored on T2 and FLAIR; the final version counts it', () => {
    // P = sigmoid(10 * score + 5): flagged for any score above -0.5, here on the fallback sequences.
    const s = scoreStudy({ T2: v(1, 0, 0), FLAIR: v(1, 0.2, 0) }, [onDwi], vectors, { combination: 'mean-score', modelSequences: [...model], ...judging });
    expect(s.findings[0]).toMatchObject({ flagged: true, triggered: false, held: true, fallback: true, waitingFor: ['DWI'] });
    expect(s.priority).toBe('ROUTINE');
    expect(s.waitingFor).toEqual(['DWI']);
    const provisional = {
      StudyInstanceUID: '1.2.3', priority: s.priority, priorityProbability: s.priorityProbability, findings: s.findings, abnormalProbability: null,
      sequencesUsed: s.sequencesUsed, sequencesMissing: s.sequencesMissing, series: [], confidence: s.confidence, provisional: { waitingFor: s.waitingFor, until: 5000 },
      model: { bundleId: 'b', version: TEST_BUNDLE_VERSION }, judgedWith: { querySetVersion: s.querySetVersion, classThresholds: {} }, provider: 'cpu',
      timingsMs: { decode: 0, preprocess: 0, inference: 0, scoring: 0, total: 0 }, receivedAt: 1000, scoredAt: 2000, resultVersion: 1,
    } satisfies StudyResult;
    const final = finalResult(provisional, 6000);
    expect(final).toMatchObject({ priority: 'STAT', incomplete: { missing: ['DWI'], waitedUntil: 5000 }, scoredAt: 6000, judgedWith: provisional.judgedWith });
    expect(final.provisional).toBeUndefined();
    expect(final.findings[0]).toMatchObject({ flagged: true, triggered: true, fallback: true });
    expect(final.findings[0].held).toBeUndefined();
    // Judged as final from the start (no wait configured): the same as the finalised version.
    const atOnce = scoreStudy({ T2: v(1, 0, 0), FLAIR: v(1, 0.2, 0) }, [onDwi], vectors, { combination: 'mean-score', modelSequences: [...model], ...judging, final: true });
    expect(atOnce.priority).toBe('STAT');
    expect(atOnce.waitingFor).toEqual([]);
  });

  it('a supplementary sequence (SWI) is read when present and never waited for: a study without it is complete', () => {
    const spec = { id: 'x', file: 'x.onnx', input: { name: 'volume', dtype: 'float32', shape: ['batch', 1, 4, 4, 4] }, output: { name: 'embedding', dtype: 'float32', shape: ['batch', 3] } } as const;
    const encoders = { T2: spec, DWI: spec, SWI: { ...spec, supplementary: true } };
    expect(expectedSequences({ imageEncoders: encoders })).toEqual(['T2', 'DWI']);
    const onBlood: TriageQuery = cal({ id: 'haemorrhage', text: 'bleed', priority: 'STAT', sequences: ['DWI', 'SWI'] }, 0.5);
    const opts = { combination: 'mean-embedding' as const, modelSequences: expectedSequences({ imageEncoders: encoders }), ...judging };
    const without = scoreStudy({ T2: v(0, 0, 1), DWI: v(0, 1, 0) }, [onBlood], vectors, opts);
    expect(without).toMatchObject({ waitingFor: [], confidence: 1, sequencesMissing: [] });
    expect(without.findings[0]).toMatchObject({ flagged: true, triggered: true });
    expect(without.findings[0].fallback).toBeFalsy();
    expect(without.findings[0].waitingFor).toBeUndefined();
    // With SWI the query reads both (the mean of DWI and SWI vectors): a study whose SWI disagrees scores lower.
    const withSwi = scoreStudy({ T2: v(0, 0, 1), DWI: v(0, 1, 0), SWI: v(1, 0, 0) }, [onBlood], vectors, opts);
    expect(withSwi.findings[0].similarity).toBeCloseTo(Math.SQRT1_2, 5);
    expect([...withSwi.sequencesUsed].sort()).toEqual(['DWI', 'SWI', 'T2']);
    // Missing DWI is still waited for.
    expect(scoreStudy({ T2: v(0, 0, 1), SWI: v(0, 1, 0) }, [onBlood], vectors, opts).waitingFor).toEqual(['DWI']);
  });
});
