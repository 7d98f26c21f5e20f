// Resampling a stack onto the canonical grid of the preprocessing spec. Every canonical voxel is mapped back
// through the stack's geometry (inverse mapping), so any acquisition orientation (axial, sagittal, coronal,
// oblique, reversed) lands the same way. Canonical array axes [D, H, W] run along patient +Z (superior), +Y
// (posterior), +X (left): LPS, index 0 = inferior / anterior / right, voxel centres symmetric about the centre.
import type { Preprocessing } from '../model-manifest';
import type { Vec3 } from './dicom-header';
import { add, dot, scale, sub, voxelToPatient, type Stack } from './geometry';
import { otsuThreshold, quantile, valueRange } from './intensity';

/** Decoded stack: data[k][j][i] (slice, row, column) in rescaled units. */
export interface SourceVolume {
  data: Float32Array;
  columns: number;
  rows: number;
  slices: number;
}

type StackGeometry = Pick<Stack<unknown>, 'origin' | 'rowDirection' | 'columnDirection' | 'normal' | 'pixelSpacing' | 'sliceOffsets' | 'sliceSpacing'> & {
  notes: { nonUniform: boolean };
};

/** Centre of the stack's field of view in patient coordinates (midway between first and last slice, even with gaps). */
export function volumeCentre(stack: StackGeometry, vol: SourceVolume): Vec3 {
  const inPlane = voxelToPatient(stack, (vol.columns - 1) / 2, (vol.rows - 1) / 2, 0);
  return add(inPlane, scale(stack.normal, stack.sliceOffsets[stack.sliceOffsets.length - 1] / 2));
}

/**
 * Centroid (patient mm) of voxels above Otsu's threshold; the FOV centre when there are none. In-plane every
 * second pixel is enough for a centroid (and 4x cheaper on 256x256 slices).
 */
export function foregroundCentroid(stack: StackGeometry, vol: SourceVolume): Vec3 {
  const { data, columns, rows, slices } = vol;
  const t = otsuThreshold(data, data.length > 1 << 18 ? 5 : 1);
  const step = columns >= 128 && rows >= 128 ? 2 : 1;
  let n = 0;
  let si = 0;
  let sj = 0;
  let sk = 0;
  for (let k = 0; k < slices; k++) {
    for (let j = 0; j < rows; j += step) {
      const rowStart = (k * rows + j) * columns;
      let rowCount = 0;
      let rowSumI = 0;
      for (let i = 0; i < columns; i += step) {
        if (data[rowStart + i] > t) {
          rowCount++;
          rowSumI += i;
        }
      }
      n += rowCount;
      si += rowSumI;
      sj += rowCount * j;
      sk += rowCount * k;
    }
  }
  if (n === 0) return volumeCentre(stack, vol);
  return voxelToPatient(stack, si / n, sj / n, sk / n);
}

/** Entries at most in sliceIndexer's table of an uneven stack. */
const LUT_MAX = 1 << 20;

/** Maps distance along the normal (mm from slice 0) to a continuous slice index, honouring uneven offsets. */
function sliceIndexer(stack: StackGeometry): (d: number) => number {
  const off = stack.sliceOffsets;
  const last = off.length - 1;
  const sp = stack.sliceSpacing;
  if (!stack.notes.nonUniform) return (d) => d / sp;
  const end = off[last];
  // At most LUT_MAX entries (8 MB): a stack whose slices span metres (positions no acquisition has) coarsens the
  // table instead of allocating past what a typed array takes.
  const step = Math.max(Math.min(0.1, sp / 20), end / LUT_MAX);
  const n = Math.ceil(end / step) + 2;
  const lut = new Float64Array(n);
  let k = 0;
  for (let t = 0; t < n; t++) {
    const d = Math.min(end, t * step);
    while (k < last - 1 && off[k + 1] <= d) k++;
    lut[t] = k + (d - off[k]) / (off[k + 1] - off[k]);
  }
  return (d) => {
    if (d <= 0) return d / sp;
    if (d >= end) return last + (d - end) / sp;
    const x = d / step;
    const t = x | 0;
    return lut[t] + (x - t) * (lut[t + 1] - lut[t]);
  };
}

/** Narrows the x range [span[0], span[1]] to where lo <= f0 + x * df <= hi (empty: span[0] > span[1]). */
function narrow(span: Int32Array, f0: number, df: number, lo: number, hi: number): void {
  if (Math.abs(df) < 1e-12) {
    if (f0 < lo || f0 > hi) span[1] = -1;
    return;
  }
  const a = (lo - f0) / df;
  const b = (hi - f0) / df;
  // The 1e-9 slack keeps boundary voxels that rounding would drop; they are clamped to the edge anyway.
  span[0] = Math.max(span[0], Math.ceil(Math.min(a, b) - 1e-9));
  span[1] = Math.min(span[1], Math.floor(Math.max(a, b) + 1e-9));
}

/**
 * Patient (LPS mm) position of the centre of canonical voxel (z, y, x) (fractional indices allowed): the grid that
 * resampleToCanonical fills, centred at `centre`. Localisation maps canonical voxels back with it.
 */
export function canonicalToPatient(spec: Pick<Preprocessing, 'shape' | 'spacingMm'>, centre: Vec3, z: number, y: number, x: number): Vec3 {
  const [D, H, W] = spec.shape;
  const [sz, sy, sx] = spec.spacingMm;
  return [centre[0] + (x - (W - 1) / 2) * sx, centre[1] + (y - (H - 1) / 2) * sy, centre[2] + (z - (D - 1) / 2) * sz];
}

/** Fraction of a stack's voxels at or below its background value: a few stray low pixels do not decide it. */
const BACKGROUND_QUANTILE = 0.001;
/** The minimum is a stray when the 0.1th percentile lies more than this fraction of the value range above it. */
const STRAY_FRACTION = 0.01;

/**
 * The value of the grid beyond the stack: the stack's air, its minimum, unless the minimum is a few stray pixels far
 * below the rest (the 0.1th percentile, from intensity.ts's 4096-bin histogram, more than 1 % of the value range
 * above it): then that percentile. MR values are arbitrary units and a Rescale Intercept can shift a whole series
 * (negative or positive); a fixed 0 would then lie above or below the air and move the intensity normalisation
 * (Otsu, z-score, percentiles), so the volume would depend on the offset. Both statistics shift with the series, and
 * a series whose minimum is 0 (not a stray) keeps the background 0 it always had.
 */
export function backgroundValue(vol: SourceVolume): number {
  const { data } = vol;
  const range = valueRange(data);
  const [min, max] = range;
  if (!Number.isFinite(min) || !Number.isFinite(max)) return 0;
  if (max === min) return min;
  const air = quantile(data, BACKGROUND_QUANTILE, range);
  // The minimum itself when the air reaches down to it (the usual series: exactly what the grid had before, 0 when
  // the air is 0); the percentile only when the minimum lies far below it (stray pixels).
  return air - min <= STRAY_FRACTION * (max - min) ? min : air;
}

/**
 * Resamples `vol` onto the canonical grid centred at `centre` (patient mm). Canonical voxels more than half a
 * source voxel outside the stack are background (`backgroundValue`: the stack's air, 0 for a series whose air is
 * 0); within that margin the edge value is used.
 */
export function resampleToCanonical(vol: SourceVolume, stack: StackGeometry, spec: Preprocessing, centre: Vec3): Float32Array {
  const [D, H, W] = spec.shape;
  const sx = spec.spacingMm[2];
  const out = new Float32Array(D * H * W);
  const background = backgroundValue(vol);
  if (background !== 0) out.fill(background);
  const { data, columns: C, rows: R, slices: K } = vol;
  const r = stack.rowDirection;
  const c = stack.columnDirection;
  const nrm = stack.normal;
  const [rowSp, colSp] = stack.pixelSpacing;
  const kOf = sliceIndexer(stack);
  const uniform = !stack.notes.nonUniform;
  const invSp = 1 / stack.sliceSpacing;
  const dMin = -0.5 * stack.sliceSpacing;
  const dMax = stack.sliceOffsets[stack.sliceOffsets.length - 1] + 0.5 * stack.sliceSpacing;
  // Per canonical step along x (patient +X by sx): constant increments of i, j and d.
  const di = (r[0] * sx) / colSp;
  const dj = (c[0] * sx) / rowSp;
  const dd = nrm[0] * sx;
  const nearest = spec.interpolation === 'nearest';
  const plane = R * C;
  const x0 = canonicalToPatient(spec, centre, 0, 0, 0)[0];
  const span = new Int32Array(2);
  let o = 0;
  for (let z = 0; z < D; z++) {
    const pz = canonicalToPatient(spec, centre, z, 0, 0)[2];
    for (let y = 0; y < H; y++) {
      const py = canonicalToPatient(spec, centre, z, y, 0)[1];
      const v0 = sub([x0, py, pz], stack.origin);
      const fi0 = dot(v0, r) / colSp;
      const fj0 = dot(v0, c) / rowSp;
      const fd0 = dot(v0, nrm);
      // i, j and d are linear in x: intersect the three "inside the stack" intervals once per row instead of
      // testing every voxel (the d range is slice index -0.5 .. K-0.5; kOf is monotone even with gaps).
      span[0] = 0;
      span[1] = W - 1;
      narrow(span, fi0, di, -0.5, C - 0.5);
      narrow(span, fj0, dj, -0.5, R - 0.5);
      narrow(span, fd0, dd, dMin, dMax);
      const xs = span[0];
      const xe = span[1];
      const rowBase = o;
      o += W;
      if (xs > xe) continue;
      let fi = fi0 + xs * di;
      let fj = fj0 + xs * dj;
      let fd = fd0 + xs * dd;
      for (let x = xs; x <= xe; x++, fi += di, fj += dj, fd += dd) {
        const fk = uniform ? fd * invSp : kOf(fd);
        const ox = rowBase + x;
        const ci = fi < 0 ? 0 : fi > C - 1 ? C - 1 : fi;
        const cj = fj < 0 ? 0 : fj > R - 1 ? R - 1 : fj;
        const ck = fk < 0 ? 0 : fk > K - 1 ? K - 1 : fk;
        if (nearest) {
          out[ox] = data[Math.round(ck) * plane + Math.round(cj) * C + Math.round(ci)];
          continue;
        }
        const i0 = ci >= C - 1 ? C - 2 : ci | 0;
        const j0 = cj >= R - 1 ? R - 2 : cj | 0;
        const k0 = ck >= K - 1 ? K - 2 : ck | 0;
        // Degenerate 1-wide axes (C, R or K == 1) never reach here: stacks have >= 2 of everything that matters.
        const ti = ci - i0;
        const tj = cj - j0;
        const tk = ck - k0;
        const b = k0 * plane + j0 * C + i0;
        const a00 = data[b] + ti * (data[b + 1] - data[b]);
        const a01 = data[b + C] + ti * (data[b + C + 1] - data[b + C]);
        const a10 = data[b + plane] + ti * (data[b + plane + 1] - data[b + plane]);
        const a11 = data[b + plane + C] + ti * (data[b + plane + C + 1] - data[b + plane + C]);
        const a0 = a00 + tj * (a01 - a00);
        const a1 = a10 + tj * (a11 - a10);
        out[ox] = a0 + tk * (a1 - a0);
      }
    }
  }
  return out;
}
