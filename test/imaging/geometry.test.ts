// Geometry end to end: synthetic series in several orientations, slice orders and with duplicates, gaps and a
// second orientation mixed in. A bright blob at a known patient position must land at the canonical voxel the
// spec's grid puts it at (grid centred on the known stack centre with centre 'volume-centre').
import { loadStudyVolumes, type StudyVolumes } from '../../shared/imaging/study';
import { buildStack } from '../../shared/imaging/geometry';
import { DEFAULT_PREPROCESSING } from '../../shared/imaging/spec';
import type { Preprocessing } from '../../shared/model-manifest';
import type { Vec3 } from '../../shared/imaging/dicom-header';
import { axialPositions, makeEnhancedSeries, makeSeries, phantom, stackPositions, uid, type SeriesSpec } from '../../shared/imaging/synthetic';

const CENTRE: Vec3 = [4, -12, 30];
const BLOB: Vec3 = [-30, 20, 45];
// Wide clip so the blob is not flattened by clipping; volume-centre so the expected voxel is known a priori.
const SPEC: Preprocessing = { ...DEFAULT_PREPROCESSING, centre: 'volume-centre', intensity: { method: 'zscore-foreground', clip: [-1000, 1000] } };

function blobVoxel(v: Float32Array, spec: Preprocessing): Vec3 {
  const [D, H, W] = spec.shape;
  let max = -Infinity;
  for (const x of v) max = Math.max(max, x);
  // Centroid of the voxels within 30 % of the maximum: the blob, interpolated.
  let n = 0;
  let sx = 0;
  let sy = 0;
  let sz = 0;
  for (let z = 0; z < D; z++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        if (v[(z * H + y) * W + x] > 0.7 * max) {
          n++;
          sx += x;
          sy += y;
          sz += z;
        }
      }
  return [sx / n, sy / n, sz / n];
}

function expectedVoxel(p: Vec3, centre: Vec3, spec: Preprocessing): Vec3 {
  const [D, H, W] = spec.shape;
  const [sz, sy, sx] = spec.spacingMm;
  return [(p[0] - centre[0]) / sx + (W - 1) / 2, (p[1] - centre[1]) / sy + (H - 1) / 2, (p[2] - centre[2]) / sz + (D - 1) / 2];
}

function expectNear(a: Vec3, b: Vec3, tol: number) {
  for (let i = 0; i < 3; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(tol);
}

async function load(files: Uint8Array[], spec = SPEC): Promise<StudyVolumes> {
  return loadStudyVolumes(
    files.map((data, i) => ({ name: `f${i}.dcm`, data })),
    spec,
  );
}

function series(over: Partial<SeriesSpec> & Pick<SeriesSpec, 'positions'>): SeriesSpec {
  return { SeriesInstanceUID: uid(), intensity: phantom(CENTRE, BLOB), ...over };
}

const ROT = (deg: number) => (deg * Math.PI) / 180;
/** Axial plane tilted 30 degrees about X and 25 about Y: oblique enough that no patient axis dominates. */
const OBLIQUE_R: Vec3 = [Math.cos(ROT(25)), 0, -Math.sin(ROT(25))];
const OBLIQUE_C: Vec3 = [Math.sin(ROT(25)) * Math.sin(ROT(30)), Math.cos(ROT(30)), Math.cos(ROT(25)) * Math.sin(ROT(30))];

describe('canonical geometry', () => {
  const cases: [string, Vec3, Vec3, number, 'axial' | 'sagittal' | 'coronal' | 'oblique'][] = [
    ['axial', [1, 0, 0], [0, 1, 0], 5, 'axial'],
    ['axial, normal reversed (row direction flipped)', [-1, 0, 0], [0, 1, 0], 5, 'axial'],
    ['sagittal', [0, 1, 0], [0, 0, -1], 4, 'sagittal'],
    ['coronal', [1, 0, 0], [0, 0, -1], 4, 'coronal'],
    ['oblique (30 deg about X, 25 about Y)', OBLIQUE_R, OBLIQUE_C, 5, 'oblique'],
  ];
  it.each(cases)('%s: the blob lands at its canonical voxel', async (_name, r, c, spacing, plane) => {
    const positions = stackPositions(CENTRE, r, c, 36, spacing);
    const out = await load(makeSeries(series({ rowDirection: r, columnDirection: c, positions })));
    expect(out.missing).not.toContain('T2');
    const t2 = out.series.find((s) => s.used)!;
    expect(t2.geometry?.plane).toBe(plane);
    expectNear(out.volumeInfo.T2!.centreMm, CENTRE, 0.01);
    expectNear(blobVoxel(out.volumes.T2!, SPEC), expectedVoxel(BLOB, CENTRE, SPEC), 0.75);
  });

  it('reversed slice order (files and InstanceNumbers descending along the normal) gives the same volume', async () => {
    const positions = axialPositions(CENTRE, 30, 5);
    const forward = await load(makeSeries(series({ positions })));
    const reversed = await load(makeSeries(series({ positions: [...positions].reverse() })).reverse());
    expect(reversed.volumes.T2).toEqual(forward.volumes.T2);
    expectNear(blobVoxel(reversed.volumes.T2!, SPEC), expectedVoxel(BLOB, CENTRE, SPEC), 0.75);
  });

  it('foreground-centroid centres the grid on the head, not on the field of view', async () => {
    const fovCentre: Vec3 = [CENTRE[0] + 25, CENTRE[1], CENTRE[2]]; // FOV shifted 25 mm to the left of the head
    const positions = axialPositions(fovCentre, 36, 5);
    const spec: Preprocessing = { ...SPEC, centre: 'foreground-centroid' };
    const out = await load(makeSeries(series({ positions, rows: 96, columns: 96, pixelSpacing: [2.5, 2.5] })), spec);
    const centre = out.volumeInfo.T2!.centreMm;
    // The blob pulls the centroid a little towards it; the FOV centre is 25 mm away.
    expect(Math.hypot(centre[0] - CENTRE[0], centre[1] - CENTRE[1], centre[2] - CENTRE[2])).toBeLessThan(4);
    expectNear(blobVoxel(out.volumes.T2!, spec), expectedVoxel(BLOB, centre, spec), 0.75);
  });

  it('Enhanced MR multi-frame: frames placed by their per-frame PlanePositionSequence', async () => {
    const positions = stackPositions(CENTRE, OBLIQUE_R, OBLIQUE_C, 36, 5);
    // Frames stored in a shuffled order: only the functional groups say where each one is.
    const order = positions.map((_, k) => (k * 7) % positions.length);
    const file = makeEnhancedSeries(series({ rowDirection: OBLIQUE_R, columnDirection: OBLIQUE_C, positions: order.map((k) => positions[k]), SeriesDescription: 'T2W_TSE' }));
    const out = await load([file]);
    const used = out.series.find((s) => s.used)!;
    expect(used.frames).toBe(36);
    expect(used.sequence).toBe('T2');
    expectNear(blobVoxel(out.volumes.T2!, SPEC), expectedVoxel(BLOB, CENTRE, SPEC), 0.75);
  });
});

describe('stack anomalies', () => {
  it('duplicates: one copy per position kept (lowest InstanceNumber), result equals the clean series', async () => {
    const positions = axialPositions(CENTRE, 30, 5);
    const uidA = uid();
    const clean = await load(makeSeries(series({ SeriesInstanceUID: uidA, positions })));
    const dupPositions = [...positions, positions[3], positions[10], positions[20]];
    const dimmer = phantom(CENTRE, BLOB);
    const files = makeSeries(series({ SeriesInstanceUID: uidA, positions: dupPositions, intensity: (p) => dimmer(p) }));
    // The duplicates (InstanceNumber 31..33) carry different pixels; they must lose to the originals.
    const dupFiles = makeSeries(series({ SeriesInstanceUID: uidA, positions: dupPositions, intensity: (p) => dimmer(p) * 0.5 })).slice(30);
    const out = await load([...files.slice(0, 30), ...dupFiles]);
    const used = out.series.find((s) => s.used)!;
    expect(used.geometry?.notes.duplicatesDropped).toBe(3);
    expect(out.volumes.T2).toEqual(clean.volumes.T2);
  });

  it('gaps: recorded, resampled across, blob still in place', async () => {
    const positions = axialPositions(CENTRE, 30, 4);
    const withGap = positions.filter((_, k) => k < 5 || k > 8); // 4 slices (16 mm) missing low in the head
    const out = await load(makeSeries(series({ positions: withGap })));
    const used = out.series.find((s) => s.used)!;
    expect(used.geometry?.notes.gaps).toBe(1);
    expect(used.geometry?.notes.maxGapMm).toBeCloseTo(20, 5);
    expect(used.geometry?.notes.nonUniform).toBe(true);
    expectNear(blobVoxel(out.volumes.T2!, SPEC), expectedVoxel(BLOB, CENTRE, SPEC), 0.75);
    // Inside the gap the head is interpolated from its neighbours, not left as background.
    const [, H, W] = SPEC.shape;
    const gapZ = positions[6][2] + 0; // patient z of a missing slice
    const z = Math.round((gapZ - CENTRE[2]) / 3 + (SPEC.shape[0] - 1) / 2);
    const mid = out.volumes.T2![(z * H + H / 2) * W + W / 2];
    const bg = out.volumes.T2![0];
    expect(mid).toBeGreaterThan(bg + 1);
  });

  it('a slice whose position is corrupt (far beyond an end of the stack) is left out and said; the volume is the clean one', async () => {
    const positions = axialPositions(CENTRE, 30, 5);
    const seriesUid = uid();
    const clean = await load(makeSeries(series({ SeriesInstanceUID: seriesUid, positions })));
    for (const z of [1e4, 1e7, 1e12, -1e6]) {
      // Slice 12's ImagePositionPatient z flipped to an absurd value: it would stretch the stack over metres.
      const moved = positions.map((p, k): Vec3 => (k === 12 ? [p[0], p[1], z] : p));
      const out = await load(makeSeries(series({ SeriesInstanceUID: seriesUid, positions: moved })));
      const used = out.series.find((s) => s.used)!;
      expect([z, used.geometry?.notes.positionOutliers, used.dropped]).toEqual([z, 1, expect.arrayContaining([{ images: 1, reason: 'position-outlier' }])]);
      expectNear(blobVoxel(out.volumes.T2!, SPEC), blobVoxel(clean.volumes.T2!, SPEC), 0.75);
    }
    // A gap (15 mm) before a thin end slab, and two slices together 150 mm beyond the end, are not single outliers.
    const frame = (p: Vec3, k: number) => ({ item: k, order: [k], ImagePositionPatient: p, ImageOrientationPatient: [1, 0, 0, 0, 1, 0], PixelSpacing: [1, 1] as const, Rows: 64, Columns: 64 });
    expect(buildStack([...positions.slice(0, 26), ...positions.slice(28)].map(frame)).notes.positionOutliers).toBe(0);
    const far = (p: Vec3, dz: number): Vec3 => [p[0], p[1], p[2] + dz];
    expect(buildStack([...positions, far(positions[29], 150), far(positions[29], 155)].map(frame)).notes.positionOutliers).toBe(0);
    expect(buildStack([...positions, far(positions[29], 150)].map(frame)).notes.positionOutliers).toBe(1);
  });

  it('mixed orientations in one series: the largest stack is kept, the others recorded', async () => {
    const seriesUid = uid();
    const axial = makeSeries(series({ SeriesInstanceUID: seriesUid, positions: axialPositions(CENTRE, 30, 5) }));
    const sag = makeSeries(
      series({ SeriesInstanceUID: seriesUid, rowDirection: [0, 1, 0], columnDirection: [0, 0, -1], positions: stackPositions(CENTRE, [0, 1, 0], [0, 0, -1], 3, 10), perSlice: (k) => ({ InstanceNumber: 100 + k, SOPInstanceUID: `${seriesUid}.${100 + k}` }) }),
    );
    const out = await load([...sag, ...axial]);
    const used = out.series.find((s) => s.used)!;
    expect(used.geometry?.plane).toBe('axial');
    expect(used.geometry?.notes.stacksDropped).toBe(1);
    expect(used.geometry?.notes.framesInDroppedStacks).toBe(3);
    expectNear(blobVoxel(out.volumes.T2!, SPEC), expectedVoxel(BLOB, CENTRE, SPEC), 0.75);
  });

  it('affine maps voxel indices to the slice positions, whatever the file order', () => {
    const r = OBLIQUE_R;
    const c = OBLIQUE_C;
    const positions = stackPositions(CENTRE, r, c, 12, 5);
    const shuffled = positions.map((p, k) => ({ p, k })).sort((a, b) => ((a.k * 5) % 12) - ((b.k * 5) % 12));
    const stack = buildStack(
      shuffled.map(({ p, k }) => ({ item: k, ImagePositionPatient: p, ImageOrientationPatient: [...r, ...c], PixelSpacing: [2, 3], Rows: 10, Columns: 20, order: [k] })),
    );
    expect(stack.items).toEqual([...Array(12).keys()]);
    const A = stack.affine;
    const apply = (i: number, j: number, k: number): Vec3 => [0, 1, 2].map((row) => A[row * 4] * i + A[row * 4 + 1] * j + A[row * 4 + 2] * k + A[row * 4 + 3]) as Vec3;
    expectNear(apply(0, 0, 7), positions[7], 1e-6);
    const p = apply(19, 9, 11);
    const expected: Vec3 = [0, 1, 2].map((a) => positions[11][a] + 19 * 3 * r[a] + 9 * 2 * c[a]) as Vec3;
    expectNear(p, expected, 1e-6);
  });
});
