// Slice stacks in patient coordinates (DICOM LPS): orientation from the head's pose plus the radiographer's
// error, positions stepping by the slice spacing along the stack normal, optional reversed acquisition order.
import type { Subject, Vec3 } from './anatomy';
import { templateToPatient } from './anatomy';
import type { VoxelGrid } from './phantom';

export interface Stack {
  rows: number;
  cols: number;
  slices: number;
  /** Spacing between rows (along colDir) and between columns (along rowDir), mm: DICOM PixelSpacing order. */
  pixelSpacing: [number, number];
  sliceThickness: number;
  spacingBetweenSlices: number;
  /** ImageOrientationPatient: direction of increasing column index, then of increasing row index. */
  rowDir: Vec3;
  colDir: Vec3;
  normal: Vec3;
  /** ImagePositionPatient (centre of the first transmitted pixel) of slice k in instance order. */
  positions: Vec3[];
}

export type Plane = 'axial' | 'sagittal' | 'coronal';

const cross = (a: Vec3, b: Vec3): Vec3 => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const norm = (a: Vec3): Vec3 => {
  const l = Math.hypot(a[0], a[1], a[2]);
  return [a[0] / l, a[1] / l, a[2] / l];
};
const rotate = (R: number[], v: Vec3): Vec3 => [
  R[0]! * v[0] + R[1]! * v[1] + R[2]! * v[2],
  R[3]! * v[0] + R[4]! * v[1] + R[5]! * v[2],
  R[6]! * v[0] + R[7]! * v[1] + R[8]! * v[2],
];
const round6 = (v: number): number => Math.round(v * 1e6) / 1e6 + 0;

export interface StackSpec {
  plane: Plane;
  /** Template-space centre of the stack (mm). */
  centre: Vec3;
  fov: number;
  matrix: number;
  slices: number;
  thickness: number;
  spacing: number;
  /** Align to the head (true) or keep the scanner's pure orientation (false). */
  oblique: boolean;
  /** The radiographer's extra tilt about the patient's left-right axis, degrees (0: none). */
  tiltDeg?: number;
  reversed: boolean;
}

/** Builds a stack; orientation vectors are rounded to 6 decimals and re-orthonormalised so DICOM round-trips. */
export function makeStack(s: Subject, spec: StackSpec): Stack {
  const base: Record<Plane, [Vec3, Vec3]> = {
    axial: [[1, 0, 0], [0, 1, 0]],
    sagittal: [[0, 1, 0], [0, 0, -1]],
    coronal: [[1, 0, 0], [0, 0, -1]],
  };
  let [row, col] = base[spec.plane];
  if (spec.oblique) {
    row = rotate(s.rot, row);
    col = rotate(s.rot, col);
  }
  if (spec.tiltDeg) {
    const a = (spec.tiltDeg * Math.PI) / 180;
    const tilt = [1, 0, 0, 0, Math.cos(a), -Math.sin(a), 0, Math.sin(a), Math.cos(a)];
    row = rotate(tilt, row);
    col = rotate(tilt, col);
  }
  row = norm(row.map(round6) as Vec3);
  const n = norm(cross(row, col));
  col = norm(cross(n, row));
  const rowDir = row.map(round6) as Vec3;
  const colDir = col.map(round6) as Vec3;
  const normal = cross(rowDir, colDir);
  const centre = templateToPatient(s, spec.centre);
  const ps = spec.fov / spec.matrix;
  const half = (spec.matrix - 1) / 2;
  const positions: Vec3[] = [];
  for (let k = 0; k < spec.slices; k++) {
    const along = (k - (spec.slices - 1) / 2) * spec.spacing;
    const p: Vec3 = [0, 0, 0];
    for (let a = 0; a < 3; a++) p[a] = centre[a]! - half * ps * rowDir[a]! - half * ps * colDir[a]! + along * normal[a]!;
    positions.push(p.map((v) => Math.round(v * 1e4) / 1e4) as Vec3);
  }
  if (spec.reversed) positions.reverse();
  return {
    rows: spec.matrix,
    cols: spec.matrix,
    slices: spec.slices,
    pixelSpacing: [ps, ps],
    sliceThickness: spec.thickness,
    spacingBetweenSlices: spec.spacing,
    rowDir,
    colDir,
    normal,
    positions,
  };
}

export function stackGrid(st: Stack): VoxelGrid {
  const origins = new Float64Array(st.slices * 3);
  st.positions.forEach((p, k) => origins.set(p, k * 3));
  return {
    cols: st.cols,
    rows: st.rows,
    slices: st.slices,
    origins,
    colStep: [st.rowDir[0] * st.pixelSpacing[1], st.rowDir[1] * st.pixelSpacing[1], st.rowDir[2] * st.pixelSpacing[1]],
    rowStep: [st.colDir[0] * st.pixelSpacing[0], st.colDir[1] * st.pixelSpacing[0], st.colDir[2] * st.pixelSpacing[0]],
  };
}
