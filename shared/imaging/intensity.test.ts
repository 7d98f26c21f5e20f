// Otsu, quantiles and the two normalisations on arrays with known answers.
import { otsuThreshold, percentileScale, quantile, zscoreForeground } from './intensity';
import { UnusableSeriesError } from './errors';

describe('intensity', () => {
  it('Otsu separates a two-level volume between the levels', () => {
    const v = new Float32Array(1000);
    for (let i = 0; i < v.length; i++) v[i] = i < 600 ? 10 + (i % 5) : 500 + (i % 7);
    const t = otsuThreshold(v);
    expect(t).toBeGreaterThan(14);
    expect(t).toBeLessThan(500);
  });

  it('z-score over the foreground gives mean 0 / std 1 there, and clips', () => {
    const v = new Float32Array(1000);
    for (let i = 0; i < v.length; i++) v[i] = i < 500 ? 0 : i < 750 ? 100 : 150;
    const stats = zscoreForeground(v, [-5, 5]);
    expect(stats.mean).toBeCloseTo(125, 4);
    expect(stats.std).toBeCloseTo(25, 4);
    expect(v[600]).toBeCloseTo(-1, 5);
    expect(v[900]).toBeCloseTo(1, 5);
    expect(v[0]).toBe(-5); // (0 - 125) / 25 = -5: at the clip
    // Two hot voxels must not squeeze the tissue into Otsu's lowest bin.
    const hot = Float32Array.from({ length: 1000 }, (_, i) => (i < 500 ? 0 : i < 998 ? 10 + (i % 3) : 10000));
    const st = zscoreForeground(hot, [-1, 1]);
    expect(st.foregroundFraction).toBeCloseTo(0.5, 2);
    expect(Math.max(...hot)).toBe(1); // the hot voxels, clipped
    expect(Math.min(...hot)).toBeGreaterThanOrEqual(-1);
  });

  it('a constant volume is empty-volume', () => {
    expect(() => zscoreForeground(new Float32Array(100).fill(3), [-5, 5])).toThrow(UnusableSeriesError);
    expect(() => percentileScale(new Float32Array(100).fill(3), [0, 1])).toThrow(UnusableSeriesError);
  });

  it('quantiles and percentile scaling', () => {
    const v = Float32Array.from({ length: 10001 }, (_, i) => i);
    expect(Math.abs(quantile(v, 0.5) - 5000)).toBeLessThan(3);
    percentileScale(v, [0, 1]);
    expect(v[0]).toBe(0);
    expect(v[10000]).toBe(1);
    expect(Math.abs(v[5000] - 0.5)).toBeLessThan(0.01);
  });
});
