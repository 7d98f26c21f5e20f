// Intensity statistics and normalisation over typed arrays: Otsu's threshold (foreground/background split of an
// MR volume), z-score over the foreground, percentile scaling, clipping. No allocation per voxel.
import { UnusableSeriesError } from './errors';

const BINS = 256;

/**
 * Otsu's threshold on a 256-bin histogram from the minimum to the 99.5th percentile (values above fall in the top
 * bin, so a few hot voxels cannot squeeze all tissue into one bin); `stride` subsamples large arrays.
 */
export function otsuThreshold(data: Float32Array, stride = 1): number {
  let lo = Infinity;
  let max = -Infinity;
  for (let i = 0; i < data.length; i += stride) {
    const v = data[i];
    if (v < lo) lo = v;
    if (v > max) max = v;
  }
  if (!(max > lo)) return lo;
  // Robust top of the range: 99.5th percentile from a fine histogram.
  const FINE = 4096;
  const fine = new Float64Array(FINE);
  const fineScale = (FINE - 1e-6) / (max - lo);
  let count = 0;
  for (let i = 0; i < data.length; i += stride) {
    fine[((data[i] - lo) * fineScale) | 0]++;
    count++;
  }
  let acc = 0;
  let top = FINE - 1;
  for (let b = 0; b < FINE; b++) {
    acc += fine[b];
    if (acc >= 0.995 * count) {
      top = b;
      break;
    }
  }
  const hi = lo + (top + 1) / fineScale;
  const hist = new Float64Array(BINS);
  const scale = (BINS - 1e-6) / (hi - lo);
  for (let i = 0; i < data.length; i += stride) {
    const b = ((data[i] - lo) * scale) | 0;
    hist[b < BINS ? b : BINS - 1]++;
  }
  let sumAll = 0;
  for (let b = 0; b < BINS; b++) sumAll += b * hist[b];
  let wB = 0;
  let sumB = 0;
  let best = -1;
  let bestBin = 0;
  for (let b = 0; b < BINS - 1; b++) {
    wB += hist[b];
    if (wB === 0) continue;
    const wF = count - wB;
    if (wF === 0) break;
    sumB += b * hist[b];
    const mB = sumB / wB;
    const mF = (sumAll - sumB) / wF;
    const between = wB * wF * (mB - mF) * (mB - mF);
    if (between > best) {
      best = between;
      bestBin = b;
    }
  }
  return lo + (bestBin + 1) / scale;
}

/** [lowest, highest] value of `data` ([Infinity, -Infinity] when empty). */
export function valueRange(data: Float32Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/**
 * Value at quantile q (0..1) from a 4096-bin histogram: accurate to 1/4096 of the range, one pass (two without
 * `range`, valueRange(data), when the caller has it already).
 */
export function quantile(data: Float32Array, q: number, range: readonly [number, number] = valueRange(data)): number {
  const bins = 4096;
  const [lo, hi] = range;
  if (!(hi > lo)) return lo;
  const hist = new Float64Array(bins);
  const scale = (bins - 1e-6) / (hi - lo);
  for (let i = 0; i < data.length; i++) hist[((data[i] - lo) * scale) | 0]++;
  const target = q * data.length;
  let acc = 0;
  for (let b = 0; b < bins; b++) {
    acc += hist[b];
    if (acc >= target) return lo + (b + 0.5) / scale;
  }
  return hi;
}

function clipInPlace(data: Float32Array, lo: number, hi: number): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    data[i] = v < lo ? lo : v > hi ? hi : v;
  }
}

/**
 * z-score over the foreground (voxels above Otsu's threshold), then clip; in place. Throws
 * UnusableSeriesError('empty-volume') when there is no foreground with spread.
 */
export function zscoreForeground(data: Float32Array, clip: readonly [number, number]): { mean: number; std: number; threshold: number; foregroundFraction: number } {
  const threshold = otsuThreshold(data);
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v > threshold) {
      n++;
      sum += v;
      sumSq += v * v;
    }
  }
  const mean = n > 0 ? sum / n : 0;
  const std = n > 1 ? Math.sqrt(Math.max(0, sumSq / n - mean * mean)) : 0;
  if (n < 10 || !(std > 1e-6 * Math.max(1, Math.abs(mean)))) {
    throw new UnusableSeriesError('empty-volume', `no foreground with spread after resampling (${n} voxels)`);
  }
  const inv = 1 / std;
  for (let i = 0; i < data.length; i++) data[i] = (data[i] - mean) * inv;
  clipInPlace(data, clip[0], clip[1]);
  return { mean, std, threshold, foregroundFraction: n / data.length };
}

/** (v - p1) / (p99 - p1) over the whole grid, then clip; in place. */
export function percentileScale(data: Float32Array, clip: readonly [number, number]): { p1: number; p99: number } {
  const range = valueRange(data);
  const p1 = quantile(data, 0.01, range);
  const p99 = quantile(data, 0.99, range);
  if (!(p99 > p1)) throw new UnusableSeriesError('empty-volume', 'constant volume after resampling');
  const inv = 1 / (p99 - p1);
  for (let i = 0; i < data.length; i++) data[i] = (data[i] - p1) * inv;
  clipInPlace(data, clip[0], clip[1]);
  return { p1, p99 };
}
