// Calibrations for test queries in the v2 contract: a Platt fit (a, b) and a threshold given as the RAW score at
// which a test wants the flag (converted to the probability there), fitted for the query's own text and for a
// test bundle version, so shared/models/decision.ts applies it.
import { queryFingerprint, type Calibration, type TriageQuery } from '../../shared/model-manifest';

export const TEST_BUNDLE_VERSION = 'test-bundle-1';

export function testCalibration(
  query: Pick<TriageQuery, 'text' | 'negativeText' | 'sequences'>,
  c: { a: number; b: number; scoreThreshold: number; targetSensitivity?: number },
  bundleVersion = TEST_BUNDLE_VERSION,
): Calibration {
  const threshold = 1 / (1 + Math.exp(-(c.a * c.scoreThreshold + c.b)));
  return {
    a: c.a,
    b: c.b,
    threshold,
    targetSensitivity: c.targetSensitivity ?? 0.9,
    method: 'labelled-cohort',
    studies: 100,
    positives: 20,
    calibratedAt: '2026-01-01T00:00:00Z',
    fittedFor: queryFingerprint(query),
    bundleVersion,
    estimated: { sensitivity: c.targetSensitivity ?? 0.9, specificity: 0.9 },
    operatingPoints: [{ threshold, sensitivity: c.targetSensitivity ?? 0.9, falsePositiveRate: 0.1 }],
  };
}

/** A query with a test calibration fitted for itself. */
export function calibrated(q: TriageQuery, c: { a: number; b: number; scoreThreshold: number; targetSensitivity?: number }, bundleVersion = TEST_BUNDLE_VERSION): TriageQuery {
  return { ...q, calibration: testCalibration(q, c, bundleVersion) };
}
