// Evaluation metrics on small cases whose answers are known by hand.
import { PNG } from 'pngjs';
import { expectedCalibrationError, roc, sensSpec } from '../../shared/models/metrics';
import { rocPng } from '../../shared/models/cli/roc-png';

describe('metrics', () => {
  it('AUC is 1 for a perfect ranking, 0.5 for all-tied scores, and counts pairs otherwise', () => {
    expect(roc([0.9, 0.8, 0.2, 0.1], [true, true, false, false]).auc).toBe(1);
    expect(roc([0.5, 0.5, 0.5, 0.5], [true, false, true, false]).auc).toBe(0.5);
    // Pairs (pos, neg): (0.9,0.7) (0.9,0.1) (0.3,0.7)x (0.3,0.1) -> 3/4.
    const r = roc([0.9, 0.3, 0.7, 0.1], [true, true, false, false]);
    expect(r.auc).toBeCloseTo(0.75, 10);
    expect(r.points[0]).toEqual({ fpr: 0, tpr: 0 });
    expect(r.points[r.points.length - 1]).toEqual({ fpr: 1, tpr: 1 });
    expect(Number.isNaN(roc([1, 2], [true, true]).auc)).toBe(true);
  });

  it('sensitivity and specificity at a threshold (score >= threshold is flagged)', () => {
    expect(sensSpec([0.9, 0.3, 0.7, 0.1], [true, true, false, false], 0.5)).toEqual({ sensitivity: 0.5, specificity: 0.5 });
    expect(sensSpec([0.9, 0.3, 0.7, 0.1], [true, true, false, false], 0.3)).toEqual({ sensitivity: 1, specificity: 0.5 });
  });

  it('ECE is 0 when confidence matches frequency and grows with miscalibration', () => {
    expect(expectedCalibrationError([0.25, 0.25, 0.25, 0.25], [true, false, false, false])).toBeCloseTo(0, 10);
    expect(expectedCalibrationError([0.95, 0.95], [false, false])).toBeCloseTo(0.95, 10);
  });

  it('draws a ROC curve as a valid PNG', () => {
    const png = PNG.sync.read(rocPng([{ fpr: 0, tpr: 0 }, { fpr: 0, tpr: 1 }, { fpr: 1, tpr: 1 }], 100, 10));
    expect([png.width, png.height]).toEqual([120, 120]);
    // The curve's vertical leg at fpr=0 is blue.
    const i = (60 * 120 + 10) * 4;
    expect([png.data[i], png.data[i + 1], png.data[i + 2]]).toEqual([20, 70, 200]);
  });
});
