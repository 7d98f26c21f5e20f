// Slice geometry: from frames that each carry ImagePositionPatient / ImageOrientationPatient / PixelSpacing to
// one sorted stack with a voxel -> patient (LPS mm) affine. Handles reversed order, duplicate positions, gaps
// (non-uniform slice offsets kept for the resampler), and several orientations or matrix sizes in one series
// (split into stacks, the largest kept). Pure functions; every anomaly is counted in `notes`.
import type { Vec3 } from './dicom-header';
import { UnusableSeriesError } from './errors';

export const dot = (a: Vec3, b: Vec3): number => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
export const cross = (a: Vec3, b: Vec3): Vec3 => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
export const sub = (a: Vec3, b: Vec3): Vec3 => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
export const norm = (a: Vec3): number => Math.hypot(a[0], a[1], a[2]);
export const scale = (a: Vec3, s: number): Vec3 => [a[0] * s, a[1] * s, a[2] * s];
export const add = (a: Vec3, b: Vec3): Vec3 => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
export const unit = (a: Vec3): Vec3 => scale(a, 1 / norm(a));

export interface GeometryInput<T> {
  item: T;
  ImagePositionPatient?: Vec3;
  ImageOrientationPatient?: readonly number[];
  /** [between rows, between columns] mm */
  PixelSpacing?: readonly [number, number];
  Rows: number;
  Columns: number;
  /** Deterministic preference among duplicates and ties: compared element by element, smallest first. */
  order: readonly (number | string)[];
}

export interface StackNotes {
  /** Frames without usable position/orientation/spacing. */
  framesWithoutGeometry: number;
  /** Frames dropped because another frame had the same position (the first by `order` is kept). */
  duplicatesDropped: number;
  /** Other stacks (another orientation or matrix size) in the same series that were not used. */
  stacksDropped: number;
  framesInDroppedStacks: number;
  /**
   * Slices at an end of the stack further from their neighbour than POSITION_OUTLIER_GAP (a position no acquisition
   * of this series can have: a corrupt ImagePositionPatient), dropped so that one such slice does not stretch the
   * stack over metres and leave its volume empty.
   */
  positionOutliers: number;
  /** Slice gaps larger than 1.5x the median spacing; the resampler interpolates across them. */
  gaps: number;
  maxGapMm: number;
  /** Slice offsets are not evenly spaced (gaps, or jitter > 1 %). */
  nonUniform: boolean;
  /** Largest in-plane displacement of a slice origin from the stack axis, mm (0 for a true stack). */
  inPlaneShiftMm: number;
}

export interface Stack<T> {
  /** Slices sorted by position along `normal` (ascending). */
  items: T[];
  rows: number;
  columns: number;
  /** Unit direction of increasing column index (IOP row cosines). */
  rowDirection: Vec3;
  /** Unit direction of increasing row index (IOP column cosines). */
  columnDirection: Vec3;
  /** rowDirection x columnDirection; slice index k increases along it. */
  normal: Vec3;
  /** [between rows, between columns] mm */
  pixelSpacing: [number, number];
  /** Median spacing between consecutive slices, mm; 0 for a stack of one slice (built only with minSlices 1). */
  sliceSpacing: number;
  /** Offset of each slice along `normal` from slice 0, mm (0 first, strictly increasing). */
  sliceOffsets: Float64Array;
  origin: Vec3;
  /**
   * Row-major 4x4 affine from voxel (i = column, j = row, k = slice, 1) to patient LPS mm, with the median slice
   * spacing; exact for uniform stacks (see sliceOffsets for the true positions when `notes.nonUniform`).
   */
  affine: number[];
  notes: StackNotes;
}

export interface StackOptions {
  minSlices: number;
  /** Minimum extent along the normal (first to last slice plus one spacing), mm. */
  minCoverageMm: number;
}

export const DEFAULT_STACK_OPTIONS: StackOptions = { minSlices: 8, minCoverageMm: 30 };

function compareOrder(a: readonly (number | string)[], b: readonly (number | string)[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x === y) continue;
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    return String(x) < String(y) ? -1 : 1;
  }
  return 0;
}

interface Valid<T> {
  input: GeometryInput<T>;
  r: Vec3;
  c: Vec3;
  n: Vec3;
  p: Vec3;
  ps: [number, number];
}

/** A pixel wider than this is not head MR (a damaged Pixel Spacing): the frame has no usable geometry. */
export const MAX_PIXEL_SPACING_MM = 50;

function validate<T>(f: GeometryInput<T>): Valid<T> | undefined {
  const o = f.ImageOrientationPatient;
  const p = f.ImagePositionPatient;
  const ps = f.PixelSpacing;
  if (!o || o.length < 6 || !p || !ps || !(f.Rows >= 2) || !(f.Columns >= 2)) return undefined;
  if (!(ps[0] > 0 && ps[0] <= MAX_PIXEL_SPACING_MM && ps[1] > 0 && ps[1] <= MAX_PIXEL_SPACING_MM)) return undefined;
  if (![...o.slice(0, 6), ...p].every(Number.isFinite)) return undefined;
  const r0: Vec3 = [o[0], o[1], o[2]];
  const c0: Vec3 = [o[3], o[4], o[5]];
  if (Math.abs(norm(r0) - 1) > 0.05 || Math.abs(norm(c0) - 1) > 0.05) return undefined;
  const r = unit(r0);
  const c = unit(c0);
  if (Math.abs(dot(r, c)) > 0.05) return undefined;
  return { input: f, r, c, n: unit(cross(r, c)), p, ps: [ps[0], ps[1]] };
}

function sameStack(a: Valid<unknown>, b: Valid<unknown>): boolean {
  return (
    dot(a.r, b.r) > 0.9999 &&
    dot(a.c, b.c) > 0.9999 &&
    a.input.Rows === b.input.Rows &&
    a.input.Columns === b.input.Columns &&
    Math.abs(a.ps[0] - b.ps[0]) < 1e-3 * a.ps[0] &&
    Math.abs(a.ps[1] - b.ps[1]) < 1e-3 * a.ps[1]
  );
}

/**
 * A slice at an end of the stack this far from the next one is not part of it: the larger of 100 mm and 20 slice
 * spacings (a brain is 150-180 mm long; an acquisition split across series is joined by join.ts, not here).
 */
export const POSITION_OUTLIER_GAP = { mm: 100, spacings: 20 } as const;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Builds the stack of a series from its frames. Throws UnusableSeriesError (missing-geometry,
 * inconsistent-geometry, too-few-slices, insufficient-coverage) when no usable stack exists.
 */
export function buildStack<T>(frames: readonly GeometryInput<T>[], options: StackOptions = DEFAULT_STACK_OPTIONS): Stack<T> {
  const valid: Valid<T>[] = [];
  for (const f of frames) {
    const v = validate(f);
    if (v) valid.push(v);
  }
  if (valid.length === 0) {
    throw new UnusableSeriesError('missing-geometry', `none of ${frames.length} frames has usable geometry (position, orthonormal orientation, pixel spacing above 0 and up to ${MAX_PIXEL_SPACING_MM} mm, at least 2 x 2 pixels)`);
  }

  // Split into stacks of one orientation and matrix; clusters are formed in `order` so the result is deterministic.
  valid.sort((a, b) => compareOrder(a.input.order, b.input.order));
  const clusters: Valid<T>[][] = [];
  for (const v of valid) {
    const c = clusters.find((cl) => sameStack(cl[0], v));
    if (c) c.push(v);
    else clusters.push([v]);
  }
  // Largest stack wins; ties go to the one whose first frame comes first in `order` (clusters are in that order).
  let best = clusters[0];
  for (const c of clusters) if (c.length > best.length) best = c;

  const ref = best[0];
  const n = ref.n;
  const withD = best.map((v) => ({ v, d: dot(v.p, n) }));
  withD.sort((a, b) => a.d - b.d || compareOrder(a.v.input.order, b.v.input.order));
  // Duplicates: same position along the normal (0.05 mm is far below any MR slice spacing).
  const kept: { v: Valid<T>; d: number }[] = [];
  let duplicatesDropped = 0;
  for (const s of withD) {
    const last = kept[kept.length - 1];
    if (last && s.d - last.d < 0.05) {
      duplicatesDropped++;
      if (compareOrder(s.v.input.order, last.v.input.order) < 0) kept[kept.length - 1] = s;
    } else kept.push(s);
  }

  // A slice far beyond either end (a corrupt position), while fewer than half the slices would go.
  let positionOutliers = 0;
  if (kept.length >= 3) {
    const steps: number[] = [];
    for (let k = 1; k < kept.length; k++) steps.push(kept[k].d - kept[k - 1].d);
    const limit = Math.max(POSITION_OUTLIER_GAP.mm, POSITION_OUTLIER_GAP.spacings * median(steps));
    const most = Math.floor((kept.length - 1) / 2);
    while (positionOutliers < most && kept.length >= 3) {
      if (kept[1].d - kept[0].d > limit) kept.shift();
      else if (kept[kept.length - 1].d - kept[kept.length - 2].d > limit) kept.pop();
      else break;
      positionOutliers++;
    }
  }

  const base = {
    framesWithoutGeometry: frames.length - valid.length,
    positionOutliers,
    stacksDropped: clusters.length - 1,
    framesInDroppedStacks: valid.length - best.length,
    duplicatesDropped,
  };
  if (kept.length < options.minSlices) {
    throw new UnusableSeriesError('too-few-slices', `${kept.length} distinct slices (minimum ${options.minSlices})`);
  }
  const diffs: number[] = [];
  for (let k = 1; k < kept.length; k++) diffs.push(kept[k].d - kept[k - 1].d);
  // One slice (only with minSlices 1: a part of a split acquisition, join.ts) has no spacing of its own: 0.
  const spacing = kept.length === 1 ? 0 : median(diffs);
  if (kept.length > 1 && !(spacing > 1e-3)) throw new UnusableSeriesError('inconsistent-geometry', 'zero slice spacing');
  const offsets = new Float64Array(kept.length);
  for (let k = 0; k < kept.length; k++) offsets[k] = kept[k].d - kept[0].d;
  const coverage = offsets[kept.length - 1] + spacing;
  if (coverage < options.minCoverageMm) {
    throw new UnusableSeriesError('insufficient-coverage', `${coverage.toFixed(1)} mm along the slice normal (minimum ${options.minCoverageMm})`);
  }
  let gaps = 0;
  let maxGapMm = 0;
  let nonUniform = false;
  for (const d of diffs) {
    if (d > 1.5 * spacing) {
      gaps++;
      maxGapMm = Math.max(maxGapMm, d);
    }
    if (Math.abs(d - spacing) > 0.01 * spacing) nonUniform = true;
  }
  const origin = kept[0].v.p;
  let inPlaneShiftMm = 0;
  for (const s of kept) {
    const dp = sub(s.v.p, origin);
    const inPlane = sub(dp, scale(n, dot(dp, n)));
    inPlaneShiftMm = Math.max(inPlaneShiftMm, norm(inPlane));
  }
  const [rowSp, colSp] = ref.ps;
  const r = ref.r;
  const c = ref.c;
  const affine = [
    r[0] * colSp, c[0] * rowSp, n[0] * spacing, origin[0],
    r[1] * colSp, c[1] * rowSp, n[1] * spacing, origin[1],
    r[2] * colSp, c[2] * rowSp, n[2] * spacing, origin[2],
    0, 0, 0, 1,
  ];
  return {
    items: kept.map((s) => s.v.input.item),
    rows: ref.input.Rows,
    columns: ref.input.Columns,
    rowDirection: r,
    columnDirection: c,
    normal: n,
    pixelSpacing: [rowSp, colSp],
    sliceSpacing: spacing,
    sliceOffsets: offsets,
    origin,
    affine,
    notes: { ...base, gaps, maxGapMm, nonUniform, inPlaneShiftMm },
  };
}

/** Patient (LPS mm) position of a continuous voxel index, using the true slice offsets. */
export function voxelToPatient(stack: Pick<Stack<unknown>, 'origin' | 'rowDirection' | 'columnDirection' | 'normal' | 'pixelSpacing' | 'sliceOffsets'>, i: number, j: number, k: number): Vec3 {
  const off = stack.sliceOffsets;
  const last = off.length - 1;
  const k0 = Math.max(0, Math.min(last - 1, Math.floor(k)));
  const d = last === 0 ? 0 : off[k0] + (k - k0) * (off[k0 + 1] - off[k0]);
  return add(
    add(add(stack.origin, scale(stack.rowDirection, i * stack.pixelSpacing[1])), scale(stack.columnDirection, j * stack.pixelSpacing[0])),
    scale(stack.normal, d),
  );
}
