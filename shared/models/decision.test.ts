import type { Decision, TriageQuery } from '../model-manifest';
import { calibrated, TEST_BUNDLE_VERSION } from '../../test/helpers/calibration';
import { classThresholds, decideStudy, flagStatement, operatingPointNotes, probabilityDecimal, probabilityPairDecimal, probabilityText, queryThreshold, querySetVersion } from './decision';

const decision: Decision = {
  STAT: {
    targetSensitivity: 0.95, threshold: 0.3, positives: 50, negatives: 150,
    table: [
      { threshold: 0.6, sensitivity: 0.85, falsePositiveRate: 0.03 },
      { threshold: 0.45, sensitivity: 0.9, falsePositiveRate: 0.05 },
      { threshold: 0.3, sensitivity: 0.95, falsePositiveRate: 0.09 },
      { threshold: 0.1, sensitivity: 0.99, falsePositiveRate: 0.3 },
    ],
  },
};

describe('class thresholds', () => {
  it('are the bundle\'s unless a site picks another sensitivity from the table', () => {
    expect(classThresholds(decision)).toEqual({ STAT: 0.3 });
    expect(classThresholds(decision, { STAT: 0.9 })).toEqual({ STAT: 0.45 });
    expect(classThresholds(decision, { STAT: 0.97 })).toEqual({ STAT: 0.1 });
    expect(classThresholds(undefined, { STAT: 0.9 })).toEqual({});
  });
});

describe('queryThreshold', () => {
  const bundleQ = calibrated({ id: 'bleed', text: 'haemorrhage', priority: 'STAT' }, { a: 5, b: 0, scoreThreshold: 0.2 });
  it('uses the class threshold for a bundle query and its own for a site query', () => {
    expect(queryThreshold(bundleQ, TEST_BUNDLE_VERSION, { STAT: 0.3 })).toEqual({ threshold: 0.3, state: 'calibrated' });
    const site: TriageQuery = { ...bundleQ, origin: 'site' };
    expect(queryThreshold(site, TEST_BUNDLE_VERSION, { STAT: 0.3 }).threshold).toBeCloseTo(bundleQ.calibration!.threshold, 12);
    const routine: TriageQuery = { ...bundleQ, priority: 'ROUTINE' };
    expect(queryThreshold(routine, TEST_BUNDLE_VERSION, { STAT: 0.3 }).threshold).toBeCloseTo(bundleQ.calibration!.threshold, 12);
  });
  it('applies no threshold when the calibration is stale or missing', () => {
    expect(queryThreshold({ ...bundleQ, text: 'bleed' }, TEST_BUNDLE_VERSION, {})).toEqual({ threshold: null, state: 'stale-text' });
    expect(queryThreshold(bundleQ, 'new-bundle', {})).toEqual({ threshold: null, state: 'stale-bundle' });
  });
});

describe('decideStudy', () => {
  it('flags P >= threshold, takes the most urgent flagged class and orders by its probability', () => {
    const d = decideStudy([
      { priority: 'STAT', probability: 0.02, threshold: 0.3 },
      { priority: 'STAT', probability: 0.99, threshold: 0.3 },
      { priority: 'ROUTINE', probability: 0.96, threshold: 0.5 },
      { priority: 'URGENT', probability: 0.8, threshold: 0.5 },
    ]);
    expect(d.priority).toBe('STAT');
    expect(d.priorityProbability).toBe(0.99);
    expect(d.flagged).toEqual([false, true, true, true]);
    expect(d.triggered).toEqual([false, true, false, false]);
  });
  it('is ROUTINE with nothing triggered when no STAT or URGENT finding is flagged', () => {
    const d = decideStudy([{ priority: 'STAT', probability: 0.1, threshold: 0.3 }, { priority: 'ROUTINE', probability: 0.7, threshold: 0.5 }]);
    expect(d).toEqual({ priority: 'ROUTINE', priorityProbability: 0.7, flagged: [false, true], triggered: [false, false] });
  });
});

describe('querySetVersion', () => {
  it('changes when a threshold, a text or the bundle changes, not with order', () => {
    const a: TriageQuery = { id: 'a', text: 'infarct', priority: 'STAT' };
    const b: TriageQuery = { id: 'b', text: 'bleed', priority: 'STAT' };
    const t = new Map([['a', 0.3], ['b', null]]);
    const v = querySetVersion('v1', [a, b], t);
    expect(querySetVersion('v1', [b, a], t)).toBe(v);
    expect(querySetVersion('v2', [a, b], t)).not.toBe(v);
    expect(querySetVersion('v1', [{ ...a, text: 'stroke' }, b], t)).not.toBe(v);
    expect(querySetVersion('v1', [a, b], new Map([['a', 0.4], ['b', null]]))).not.toBe(v);
  });
});

describe('held findings (partial studies)', () => {
  it('a held finding is flagged but sets no priority; the rest decide', () => {
    const d = decideStudy([
      { priority: 'STAT', probability: 0.9, threshold: 0.5, held: true },
      { priority: 'URGENT', probability: 0.7, threshold: 0.5 },
    ]);
    expect(d).toEqual({ priority: 'URGENT', priorityProbability: 0.7, flagged: [true, true], triggered: [false, true] });
    expect(decideStudy([{ priority: 'STAT', probability: 0.9, threshold: 0.5, held: true }]).priority).toBe('ROUTINE');
  });
});

describe('flagStatement', () => {
  it('says the one rule with the numbers, and why a finding could not be flagged', () => {
    expect(flagStatement({ priority: 'STAT', probability: 0.93, threshold: 0.5, triggered: true })).toBe('flagged: P 0.930 >= threshold 0.500; sets the STAT priority');
    expect(flagStatement({ priority: 'URGENT', probability: 0.12, threshold: 0.31 })).toBe('not flagged: P 0.120 < threshold 0.310');
    // Close numbers get the decimals that show their order.
    expect(flagStatement({ priority: 'STAT', probability: 0.31049, threshold: 0.3104 })).toBe('flagged: P 0.3105 >= threshold 0.3104');
    expect(flagStatement({ priority: 'STAT', probability: null, threshold: null, calibration: 'stale-bundle' })).toBe('not flagged: cannot be flagged (query stale-bundle)');
    expect(flagStatement({ priority: 'STAT', probability: 0.9, threshold: 0.5, held: true, waitingFor: ['DWI'] })).toContain('held: scored without DWI');
  });

  it('never rounds a probability to certainty', () => {
    expect(flagStatement({ priority: 'STAT', probability: 0.99996, threshold: 0.062 })).toBe('flagged: P >0.999 >= threshold 0.062');
    expect(flagStatement({ priority: 'URGENT', probability: 0.00004, threshold: 0.71 })).toBe('not flagged: P <0.001 < threshold 0.710');
    expect(flagStatement({ priority: 'STAT', probability: 1, threshold: 0.5 })).toBe('flagged: P 1.000 >= threshold 0.500');
    // A threshold near 1 is written the same way, so the two never read as equal or the wrong way round.
    expect(flagStatement({ priority: 'STAT', probability: 0.99996, threshold: 0.9999 })).toBe('flagged: P >0.9999 >= threshold 0.9999');
  });
});

describe('probability as text and as a number field', () => {
  it('keeps ordinary values and marks the ones that would round to 0 or 1', () => {
    expect(probabilityText(0.5, 3)).toBe('0.500');
    expect(probabilityText(0.9996, 3)).toBe('>0.999');
    expect(probabilityText(0.0004, 2)).toBe('<0.01');
    expect(probabilityText(0, 3)).toBe('0.000');
  });

  it('adds places (up to twelve) until a decimal does not read 0 or 1; no exponent, no trailing zeros', () => {
    expect(probabilityDecimal(0.25)).toBe('0.25');
    expect(probabilityDecimal(0.99996)).toBe('0.99996');
    expect(probabilityDecimal(0.0000004)).toBe('0.0000004');
    expect(probabilityDecimal(1 - 1e-15)).toBe('0.999999999999');
    expect(probabilityDecimal(1)).toBe('1');
    expect(probabilityDecimal(0)).toBe('0');
  });
});

describe('probabilityPairDecimal', () => {
  it('writes P and its threshold with four places, more until they read in the order of the real numbers', () => {
    expect(probabilityPairDecimal(0.97, 0.4)).toEqual(['0.97', '0.4']);
    expect(probabilityPairDecimal(0.5, 0.5)).toEqual(['0.5', '0.5']);
    // The probe's case: both read 0.0406 at four places although P is below the threshold.
    expect(probabilityPairDecimal(0.04055, 0.04058)).toEqual(['0.04055', '0.04058']);
    expect(probabilityPairDecimal(0.3104449, 0.3104451)).toEqual(['0.31044', '0.31045']);
    expect(probabilityPairDecimal(0.31044441, 0.31044443)).toEqual(['0.31044441', '0.31044443']);
    expect(probabilityPairDecimal(0.1234561, 0.123456)).toEqual(['0.1234561', '0.123456']);
    expect(probabilityPairDecimal(0.99996, 0.99997)).toEqual(['0.99996', '0.99997']);
    expect(probabilityPairDecimal(Number.NaN, 0.5)).toEqual(['NaN', '0.5']);
  });

  it('never writes P below its threshold as equal to it or above it, within 16 characters and never as 0 or 1 unless it is', () => {
    const cases: Array<[number, number]> = [];
    for (let i = 0; i < 600; i++) {
      const t = (i % 7 === 0 ? 1 - Math.random() * 1e-6 : Math.random());
      cases.push([t - Math.random() * 10 ** -(4 + (i % 12)), t], [t + Math.random() * 10 ** -(4 + (i % 12)), t]);
    }
    cases.push([0.3 - 1e-15, 0.3], [1 - 1e-16, 1], [0.1, 0.1 + 2 ** -56]);
    for (const [p, t] of cases) {
      const [a, b] = probabilityPairDecimal(p, t);
      expect([a.length <= 16, b.length <= 16]).toEqual([true, true]);
      // P above its threshold may only read equal when they are within 1e-14: "P >= threshold" still holds.
      if (p < t) expect(Number(a)).toBeLessThan(Number(b));
      else expect(Number(a)).toBeGreaterThanOrEqual(Number(b));
      if (p > 0 && p < 1) expect(Number(a) > 0 && Number(a) < 1).toBe(true);
    }
  });
});

describe('operatingPointNotes', () => {
  it('warns when a chosen sensitivity has no effect or is out of the table\'s reach', () => {
    expect(operatingPointNotes(decision, { STAT: 0.9 })).toEqual([]);
    expect(operatingPointNotes(undefined, { STAT: 0.9 })[0]).toContain('has no effect');
    const capped: Decision = { STAT: { ...decision.STAT, table: decision.STAT.table.slice(0, 3) } };
    expect(operatingPointNotes(capped, { STAT: 0.99 })[0]).toContain('reaches at most 0.95');
  });
});
