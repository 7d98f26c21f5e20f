import { queryFingerprint, type TriageQuery } from '../model-manifest';
import { calibrate, calibrationState, fitPlatt, operatingPoint, operatingPoints, pseudoLabels, sigmoid, thresholdForSensitivity, thresholdFromTable } from './calibration';

describe('fitPlatt', () => {
  it('recovers the logistic curve that generated the labels', () => {
    // Deterministic "sample": labels as the expected fraction on a fine grid of scores.
    const scores: number[] = [];
    const labels: boolean[] = [];
    for (let i = 0; i < 2000; i++) {
      const s = -1 + (2 * i) / 1999;
      scores.push(s);
      labels.push((i * 0.6180339887) % 1 < sigmoid(4 * s - 1));
    }
    const { a, b } = fitPlatt(scores, labels);
    expect(a).toBeGreaterThan(3.3);
    expect(a).toBeLessThan(4.7);
    expect(b).toBeGreaterThan(-1.4);
    expect(b).toBeLessThan(-0.6);
  });
  it('gives a finite steep slope on separable data', () => {
    const { a } = fitPlatt([0, 0.1, 0.2, 0.8, 0.9, 1], [false, false, false, true, true, true]);
    expect(Number.isFinite(a)).toBe(true);
    expect(a).toBeGreaterThan(5);
  });
});

describe('thresholds and operating points', () => {
  const values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95];
  const labels = [false, false, false, false, true, false, true, true, true, true];
  it('keeps at least the target share of positives at or above the threshold, halfway (log-odds) into the gap below', () => {
    const between = (lo: number, hi: number) => sigmoid((Math.log(lo / (1 - lo)) + Math.log(hi / (1 - hi))) / 2);
    // All five positives: between the highest negative under 0.5 (0.4) and 0.5.
    expect(thresholdForSensitivity(values, labels, 1)).toBeCloseTo(between(0.4, 0.5), 12);
    // Four of five: the point keeps 0.7 up; 0.6 is the highest negative under it, so 0.7 is the lowest positive kept.
    expect(thresholdForSensitivity(values, labels, 0.8)).toBeCloseTo(between(0.6, 0.7), 12);
    // Perfectly separated: the margin spans the whole gap, not the last positive the target needs.
    const separated = [0.01, 0.02, 0.03, 0.96, 0.99, 0.999, 0.9995, 0.9998];
    const isPos = separated.map((v) => v > 0.5);
    const t = thresholdForSensitivity(separated, isPos, 0.6);
    expect(t).toBeCloseTo(between(0.03, 0.96), 12);
    expect(operatingPoint(separated, isPos, t)).toMatchObject({ sensitivity: 1, falsePositiveRate: 0 });
    // No negative under the point: the lowest positive; no positive at all: a threshold nothing reaches.
    expect(thresholdForSensitivity([0.2, 0.9], [true, false], 1)).toBe(0.2);
    expect(thresholdForSensitivity([0.2, 0.9], [false, false], 0.9)).toBe(1);
    expect(operatingPoint(values, labels, 0.7)).toEqual({ threshold: 0.7, sensitivity: 0.8, falsePositiveRate: 0 });
    expect(operatingPoint(values, labels, 0.5).falsePositiveRate).toBeCloseTo(0.2, 9);
  });
  it('tables distinct thresholds, highest first, and reads a target back from the table', () => {
    const table = operatingPoints(values, labels);
    expect(table.map((r) => r.threshold)).toEqual([...table.map((r) => r.threshold)].sort((a, b) => b - a));
    expect(new Set(table.map((r) => r.threshold)).size).toBe(table.length);
    expect(thresholdFromTable(table, 0.9).sensitivity).toBeGreaterThanOrEqual(0.9);
    expect(thresholdFromTable(table, 0.8).threshold).toBeCloseTo(thresholdForSensitivity(values, labels, 0.8), 12);
  });
});

describe('calibrate', () => {
  const q: TriageQuery = { id: 'x', text: 'acute infarct', priority: 'STAT' };
  it('writes a probability threshold that keeps the target sensitivity on its own data', () => {
    const scores = Array.from({ length: 200 }, (_, i) => (i < 40 ? 0.3 + i / 200 : i / 400));
    const labels = scores.map((_, i) => i < 40);
    const c = calibrate(q, scores, labels, { method: 'report-pseudo-labels', bundleVersion: 'v1', targetSensitivity: 0.9 });
    expect(c.threshold).toBeGreaterThan(0);
    expect(c.threshold).toBeLessThanOrEqual(1);
    expect(c.estimated.sensitivity).toBeGreaterThanOrEqual(0.9);
    expect(c).toMatchObject({ studies: 200, positives: 40, fittedFor: queryFingerprint(q), bundleVersion: 'v1' });
    expect(calibrationState({ ...q, calibration: c }, 'v1')).toBe('calibrated');
    expect(calibrationState({ ...q, text: 'acute infarct.', calibration: c }, 'v1')).toBe('stale-text');
    expect(calibrationState({ ...q, calibration: c }, 'v2')).toBe('stale-bundle');
    expect(calibrationState(q, 'v1')).toBe('uncalibrated');
  });
  it('refuses data with only one kind of label', () => {
    expect(() => calibrate(q, [1, 2], [true, true], { method: 'labelled-cohort', bundleVersion: 'v', targetSensitivity: 0.9 })).toThrow(/both kinds/);
  });
});

describe('pseudoLabels', () => {
  it('splits a higher group of mentioning reports from the rest', () => {
    const sims = [...Array.from({ length: 80 }, (_, i) => 0.1 + (i % 10) / 100), ...Array.from({ length: 20 }, (_, i) => 0.7 + (i % 5) / 50)];
    const p = pseudoLabels(sims);
    expect(p.positives).toBe(20);
    expect(p.threshold).toBeGreaterThan(0.2);
    expect(p.threshold).toBeLessThan(0.7);
    expect(p.separation).toBeGreaterThan(2);
  });
  it('never calls a report positive below the floor', () => {
    const p = pseudoLabels([0.01, 0.02, 0.03, 0.3, 0.31], 0.5);
    expect(p.positives).toBe(0);
  });
});
