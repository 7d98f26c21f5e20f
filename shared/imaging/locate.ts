// From a point in patient coordinates back to the source series: which slice (SOP Instance, frame) holds it and
// where in that slice's pixels. The stack geometry is the one buildStack made for preprocessing, kept as plain data
// (SourceGeometry) so it can cross the worker's thread boundary and be stored beside a result.
import type { Vec3 } from './dicom-header';
import { add, dot, scale, sub, type Stack } from './geometry';
import type { SeriesFrame } from './series';

export interface SourceSlice {
  /** Set only when the slice is of another series than the geometry's (a stack joined from parts of one acquisition). */
  SeriesInstanceUID?: string;
  SOPInstanceUID: string;
  /** 1-based frame number inside a multi-frame instance; absent for single-frame images. */
  frame?: number;
  ImagePositionPatient: Vec3;
}

/** The geometry of the stack a canonical volume was resampled from (Stack's directions and spacing), as plain data. */
export interface SourceGeometry extends Pick<Stack<unknown>, 'rows' | 'columns' | 'rowDirection' | 'columnDirection' | 'normal' | 'pixelSpacing'> {
  SeriesInstanceUID: string;
  SOPClassUID?: string;
  FrameOfReferenceUID?: string;
  /** Ascending along `normal`. */
  slices: SourceSlice[];
}

export function sourceGeometry(stack: Stack<SeriesFrame>, SeriesInstanceUID: string): SourceGeometry {
  const first = stack.items[0]?.instance.header;
  return {
    SeriesInstanceUID,
    ...(first?.SOPClassUID ? { SOPClassUID: first.SOPClassUID } : {}),
    ...(first?.FrameOfReferenceUID ? { FrameOfReferenceUID: first.FrameOfReferenceUID } : {}),
    rows: stack.rows,
    columns: stack.columns,
    rowDirection: stack.rowDirection,
    columnDirection: stack.columnDirection,
    normal: stack.normal,
    pixelSpacing: stack.pixelSpacing,
    slices: stack.items.map((f) => ({
      ...(f.instance.header.SeriesInstanceUID && f.instance.header.SeriesInstanceUID !== SeriesInstanceUID ? { SeriesInstanceUID: f.instance.header.SeriesInstanceUID } : {}),
      SOPInstanceUID: f.instance.header.SOPInstanceUID ?? '',
      ...(f.instance.header.NumberOfFrames > 1 ? { frame: f.frame.index + 1 } : {}),
      // buildStack only keeps frames with a position.
      ImagePositionPatient: f.frame.ImagePositionPatient as Vec3,
    })),
  };
}

export interface SliceLocation {
  /** Index into SourceGeometry.slices. */
  sliceIndex: number;
  slice: SourceSlice;
  /**
   * The point in DICOM image coordinates of that slice (PS3.3 C.10.5.1.2, as SR SCOORD and presentation states use
   * them): [column, row] with 0,0 at the top left corner of the first pixel, so a pixel's centre is at +0.5.
   */
  point: [number, number];
  /** Distance from the point to the slice's plane, mm (0: in the plane). */
  distanceMm: number;
}

/** The slice whose plane is nearest to `p` (patient LPS mm), and where `p` projects onto it. */
export function locateInSource(g: SourceGeometry, p: Vec3): SliceLocation {
  if (g.slices.length === 0) throw new Error('locateInSource: the series has no slices');
  let best = 0;
  let bestD = Infinity;
  g.slices.forEach((s, k) => {
    const d = Math.abs(dot(sub(p, s.ImagePositionPatient), g.normal));
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  });
  const slice = g.slices[best];
  const v = sub(p, slice.ImagePositionPatient);
  // ImagePositionPatient is the centre of the first pixel: pixel-centre indices, then +0.5 for image coordinates.
  const column = dot(v, g.rowDirection) / g.pixelSpacing[1] + 0.5;
  const row = dot(v, g.columnDirection) / g.pixelSpacing[0] + 0.5;
  return { sliceIndex: best, slice, point: [column, row], distanceMm: bestD };
}

/** Patient position (LPS mm) of a point given in DICOM image coordinates of slice `sliceIndex`. */
export function imageToPatient(g: SourceGeometry, sliceIndex: number, point: readonly [number, number]): Vec3 {
  const ipp = g.slices[sliceIndex].ImagePositionPatient;
  return add(add(ipp, scale(g.rowDirection, (point[0] - 0.5) * g.pixelSpacing[1])), scale(g.columnDirection, (point[1] - 0.5) * g.pixelSpacing[0]));
}
