// Mapping back from the canonical grid to the source series (what localisation relies on): a bright blob at a known
// patient position is resampled by the real preprocessing; the canonical voxel where it lands, mapped back with
// canonicalToPatient, must be the blob's position, and locateInSource must name the slice through it and the pixel
// it sits on, for axial, sagittal, oblique and Enhanced MR multi-frame series.
import { canonicalToPatient, imageToPatient, loadStudyVolumes, locateInSource, readInstance, type Vec3 } from '../../shared/imaging';
import { DEFAULT_PREPROCESSING } from '../../shared/imaging/spec';
import { axialPositions, makeEnhancedSeries, makeSeries, phantom, stackPositions, uid, type SeriesSpec } from '../../shared/imaging/synthetic';
import type { Preprocessing } from '../../shared/model-manifest';

const CENTRE: Vec3 = [4, -12, 30];
const BLOB: Vec3 = [-30, 20, 45];
const SPEC: Preprocessing = { ...DEFAULT_PREPROCESSING, centre: 'volume-centre', intensity: { method: 'zscore-foreground', clip: [-1000, 1000] } };
const ROT = (deg: number) => (deg * Math.PI) / 180;
const OBLIQUE_R: Vec3 = [Math.cos(ROT(25)), 0, -Math.sin(ROT(25))];
const OBLIQUE_C: Vec3 = [Math.sin(ROT(25)) * Math.sin(ROT(30)), Math.cos(ROT(30)), Math.cos(ROT(25)) * Math.sin(ROT(30))];

const dist = (a: Vec3, b: Vec3) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);

/** Centroid of the voxels within 30 % of the maximum: the blob's canonical position (z, y, x). */
function blobVoxel(v: Float32Array): Vec3 {
  const [D, H, W] = SPEC.shape;
  let max = -Infinity;
  for (const x of v) max = Math.max(max, x);
  let n = 0;
  const s: Vec3 = [0, 0, 0];
  for (let z = 0; z < D; z++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++)
        if (v[(z * H + y) * W + x] > 0.7 * max) {
          n++;
          s[0] += z;
          s[1] += y;
          s[2] += x;
        }
  return [s[0] / n, s[1] / n, s[2] / n];
}

function series(over: Partial<SeriesSpec> & Pick<SeriesSpec, 'positions'>): SeriesSpec {
  return { SeriesInstanceUID: uid(), intensity: phantom(CENTRE, BLOB), ...over };
}

const cases: [string, () => Uint8Array[], number][] = [
  ['axial', () => makeSeries(series({ positions: axialPositions(CENTRE, 36, 5) })), 5],
  ['sagittal', () => makeSeries(series({ rowDirection: [0, 1, 0], columnDirection: [0, 0, -1], positions: stackPositions(CENTRE, [0, 1, 0], [0, 0, -1], 36, 4) })), 4],
  ['oblique', () => makeSeries(series({ rowDirection: OBLIQUE_R, columnDirection: OBLIQUE_C, positions: stackPositions(CENTRE, OBLIQUE_R, OBLIQUE_C, 36, 5) })), 5],
  ['Enhanced MR multi-frame, frames shuffled', () => {
    const positions = stackPositions(CENTRE, OBLIQUE_R, OBLIQUE_C, 36, 5);
    const order = positions.map((_, k) => (k * 7) % positions.length);
    return [makeEnhancedSeries(series({ rowDirection: OBLIQUE_R, columnDirection: OBLIQUE_C, positions: order.map((k) => positions[k]), SeriesDescription: 'T2W_TSE' }))];
  }, 5],
];

describe('from the canonical grid back to the source slice', () => {
  it.each(cases)('%s', async (name, make, spacing) => {
    const files = make();
    const out = await loadStudyVolumes(files.map((data, i) => ({ name: `f${i}.dcm`, data })), SPEC, { sequences: ['T2'] });
    const info = out.volumeInfo.T2!;
    // Canonical voxel of the blob -> patient position: the blob (within a voxel of the 3 mm grid).
    const [z, y, x] = blobVoxel(out.volumes.T2!);
    const back = canonicalToPatient(SPEC, info.centreMm, z, y, x);
    expect(dist(back, BLOB)).toBeLessThan(2.5);

    // Patient position -> the slice through it, and the pixel it projects to.
    const src = info.source;
    expect(src.slices).toHaveLength(36);
    const at = locateInSource(src, BLOB);
    expect(at.distanceMm).toBeLessThanOrEqual(spacing / 2 + 1e-6);
    const onSlice = imageToPatient(src, at.sliceIndex, at.point);
    // The projection differs from the blob only along the slice normal.
    expect(Math.abs(dist(onSlice, BLOB) - at.distanceMm)).toBeLessThan(1e-6);
    expect(at.point[0]).toBeGreaterThan(0);
    expect(at.point[0]).toBeLessThan(src.columns);
    expect(at.point[1]).toBeGreaterThan(0);
    expect(at.point[1]).toBeLessThan(src.rows);

    // The named SOP instance (and frame) is the one whose stored position is that slice's.
    const instances = files.map((f, i) => readInstance(f, `f${i}`));
    const inst = instances.find((i) => i.header.SOPInstanceUID === at.slice.SOPInstanceUID)!;
    expect(inst).toBeDefined();
    const frame = inst.frames[(at.slice.frame ?? 1) - 1];
    expect(dist(frame.ImagePositionPatient!, at.slice.ImagePositionPatient)).toBeLessThan(1e-6);
    if (name.startsWith('Enhanced')) expect(at.slice.frame).toBeGreaterThanOrEqual(1);
    else expect(at.slice.frame).toBeUndefined();
    expect(src.SOPClassUID).toBe(inst.header.SOPClassUID);
  });
});
