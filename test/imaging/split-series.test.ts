// One acquisition split across two SeriesInstanceUIDs (two packages of a long acquisition, a PACS that gives part
// of a series a new UID): its parts are one volume when they are evidently one regular stack; parts that are not
// are never joined, and a slab used while another part of its acquisition exists is reported as incomplete.
import { loadStudyVolumes, MAX_JOINED_PARTS, type StudyVolumes } from '../../shared/imaging/study';
import { DEFAULT_PREPROCESSING } from '../../shared/imaging/spec';
import type { Vec3 } from '../../shared/imaging/dicom-header';
import { axialPositions, makeSeries, phantom, uid, type SeriesSpec } from '../../shared/imaging/synthetic';

const CENTRE: Vec3 = [0, 10, 25];
const STUDY = uid();
const head = phantom(CENTRE, [15, 0, 40]);

function s(desc: string, over: Partial<SeriesSpec> = {}): SeriesSpec {
  return { StudyInstanceUID: STUDY, SeriesInstanceUID: uid(), SeriesDescription: desc, positions: axialPositions(CENTRE, 24, 5), intensity: head, ...over };
}

/**
 * One axial T2 acquisition of `slices` slices `spacing` mm apart in its own frame of reference: the whole series, and
 * `part` for a piece of it under a new SeriesInstanceUID (its positions, anything else overridden).
 */
function acquisition(slices: number, spacing: number) {
  const FrameOfReferenceUID = uid();
  const p = axialPositions(CENTRE, slices, spacing);
  const whole = s('t2_tse_tra', { SeriesNumber: 4, positions: p, attributes: { FrameOfReferenceUID } });
  const part = (positions: Vec3[], over: Partial<SeriesSpec> = {}): SeriesSpec => ({ ...whole, SeriesInstanceUID: uid(), positions, ...over });
  return { FrameOfReferenceUID, p, whole, part };
}

/** The report of the series `spec` in a loaded study. */
const byUid = (res: StudyVolumes, spec: SeriesSpec) => res.series.find((r) => r.SeriesInstanceUID === spec.SeriesInstanceUID)!;

/** Largest voxel difference between two canonical volumes (a diff of 196608 voxels is no use in a failure). */
function maxDifference(a: Float32Array | undefined, b: Float32Array | undefined): number {
  if (!a || !b || a.length !== b.length) return Infinity;
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

function files(list: SeriesSpec[]) {
  return list.flatMap((spec) => makeSeries(spec)).map((data, i) => ({ name: `f${i}.dcm`, data }));
}

describe('one acquisition split across two series', () => {
  // 30 axial slices of 4.2 mm (126 mm); a split at slice 17 leaves two slabs (71 and 55 mm) of one acquisition.
  const { FrameOfReferenceUID, p, whole, part } = acquisition(30, 4.2);
  let unsplit: StudyVolumes;
  beforeAll(async () => {
    unsplit = await loadStudyVolumes(files([whole]), DEFAULT_PREPROCESSING);
  });

  it('is one volume, the same as the unsplit series, and both series say they were joined', async () => {
    const lower = part(p.slice(0, 17), { SeriesNumber: 54 });
    const upper = part(p.slice(17), { SeriesNumber: 4 });
    const res = await loadStudyVolumes(files([upper, lower]), DEFAULT_PREPROCESSING);
    expect(maxDifference(res.volumes.T2, unsplit.volumes.T2)).toBeLessThan(1e-6);
    expect(res.volumeInfo.T2?.centreMm).toEqual(unsplit.volumeInfo.T2?.centreMm);
    expect(res.volumeInfo.T2?.sourceShape).toEqual([30, 64, 64]);
    expect(byUid(res, lower)).toMatchObject({ used: true, joinedWith: [upper.SeriesInstanceUID] });
    expect(byUid(res, upper)).toMatchObject({ used: true, joinedWith: [lower.SeriesInstanceUID] });
    expect(byUid(res, upper).reason).toBeUndefined();
    // the key slice of a finding is named by the series that holds it
    const slices = res.volumeInfo.T2!.source.slices;
    expect(slices.slice(0, 17).every((sl) => (sl.SeriesInstanceUID ?? res.volumeInfo.T2!.source.SeriesInstanceUID) === lower.SeriesInstanceUID)).toBe(true);
    expect(slices.slice(17).every((sl) => (sl.SeriesInstanceUID ?? res.volumeInfo.T2!.source.SeriesInstanceUID) === upper.SeriesInstanceUID)).toBe(true);
  });

  it('a diffusion trace split in two (b=0 and b=1000 in each part) gives the whole b=1000 volume', async () => {
    const trace = (positions: Vec3[], SeriesNumber: number): SeriesSpec =>
      part([...positions, ...positions], {
        SeriesDescription: 'ep2d_diff_3scan_trace_p2_TRACEW',
        SeriesNumber,
        attributes: { FrameOfReferenceUID, ImageType: ['DERIVED', 'PRIMARY', 'DIFFUSION', 'TRACEW'], ScanningSequence: 'EP', RepetitionTime: 6000, EchoTime: 80 },
        perSlice: (k) => ({ DiffusionBValue: k < positions.length ? 0 : 1000 }),
      });
    const all = trace(p, 401);
    const ref = await loadStudyVolumes(files([all]), DEFAULT_PREPROCESSING);
    const upper = trace(p.slice(13), 401);
    const lower = trace(p.slice(0, 13), 451);
    const res = await loadStudyVolumes(files([upper, lower]), DEFAULT_PREPROCESSING);
    expect(maxDifference(res.volumes.DWI, ref.volumes.DWI)).toBeLessThan(1e-6);
    expect(res.series.filter((r) => r.sequence === 'DWI').map((r) => [r.SeriesNumber, r.used, r.joinedWith])).toEqual([
      [401, true, [lower.SeriesInstanceUID]],
      [451, true, [upper.SeriesInstanceUID]],
    ]);
  });

  it('two complete repeats are not joined: the later one is used', async () => {
    const repeat = part(p, { SeriesNumber: 5 });
    const res = await loadStudyVolumes(files([whole, repeat]), DEFAULT_PREPROCESSING);
    expect(res.volumeInfo.T2?.SeriesInstanceUID).toBe(repeat.SeriesInstanceUID);
    expect(byUid(res, repeat)).toMatchObject({ used: true });
    expect(byUid(res, repeat).joinedWith).toBeUndefined();
    expect(byUid(res, repeat).dropped).toBeUndefined();
    expect(byUid(res, whole)).toMatchObject({ used: false, reason: 'not-selected' });
  });

  it.each([
    ['another orientation', { rowDirection: [Math.cos(0.05), Math.sin(0.05), 0], columnDirection: [-Math.sin(0.05), Math.cos(0.05), 0] }],
    ['another echo time', { attributes: { FrameOfReferenceUID, EchoTime: 90 } }],
    ['another frame of reference', { attributes: { FrameOfReferenceUID: uid() } }],
    ['another matrix', { rows: 48, columns: 48, positions: p.slice(17).map((x) => [x[0] + 28, x[1] + 28, x[2]] as Vec3) }],
  ] as [string, Partial<SeriesSpec>][])('parts of %s are not joined, and nothing suggests they belong together', async (_, over) => {
    const lower = part(p.slice(0, 17), { SeriesNumber: 54 });
    const upper = part(p.slice(17), { SeriesNumber: 4, ...over });
    const res = await loadStudyVolumes(files([upper, lower]), DEFAULT_PREPROCESSING);
    expect(res.volumeInfo.T2?.SeriesInstanceUID).toBe(lower.SeriesInstanceUID);
    expect(res.volumeInfo.T2?.sourceShape[0]).toBe(17);
    expect(byUid(res, lower).joinedWith).toBeUndefined();
    expect(byUid(res, lower).dropped).toBeUndefined();
    expect(byUid(res, upper)).toMatchObject({ used: false, reason: 'not-selected' });
  });

  it.each([
    ['overlap (three positions in both)', 14, 13],
    ['leave a slice out at the join', 18, 12],
  ])('parts of one acquisition that %s are not joined; the slab used counts the other part as left out', async (_, from, outside) => {
    const lower = part(p.slice(0, 17), { SeriesNumber: 54 });
    const upper = part(p.slice(from), { SeriesNumber: 4 });
    const res = await loadStudyVolumes(files([upper, lower]), DEFAULT_PREPROCESSING);
    expect(res.volumeInfo.T2?.SeriesInstanceUID).toBe(lower.SeriesInstanceUID);
    expect(res.volumeInfo.T2?.sourceShape[0]).toBe(17);
    expect(byUid(res, lower)).toMatchObject({ used: true, dropped: [{ images: outside, reason: 'unjoined-part' }] });
    expect(byUid(res, lower).joinedWith).toBeUndefined();
    expect(byUid(res, upper)).toMatchObject({ used: false, reason: 'not-selected' });
    expect(byUid(res, upper).detail).toMatch(/part of the same acquisition as series 54/);
  });
});

describe('why parts that continue each other were not joined', () => {
  // 30 axial slices of 4.2 mm: slabs of 15 that continue each other along the normal, yet are not joined.
  const { p, part } = acquisition(30, 4.2);

  it('a part shifted in plane is named as such, not by its (regular) distance at the join', async () => {
    const lower = part(p.slice(0, 15), { SeriesNumber: 4 });
    const upper = part(p.slice(15).map((x) => [x[0] + 3, x[1], x[2]] as Vec3), { SeriesNumber: 5 });
    const res = await loadStudyVolumes(files([lower, upper]), DEFAULT_PREPROCESSING);
    const used = res.series.find((r) => r.used)!;
    const other = [lower, upper].map((x) => byUid(res, x)).find((r) => !r.used)!;
    expect(used.dropped).toEqual([{ images: 15, reason: 'unjoined-part' }]);
    expect(other.detail).toMatch(/not joined: the parts are shifted in plane$/);
  });

  it('a half continued by two repeats of the other half says a third part continues it as well', async () => {
    const lower = part(p.slice(0, 15), { SeriesNumber: 4 });
    const upper = part(p.slice(15), { SeriesNumber: 5 });
    const again = part(p.slice(15), { SeriesNumber: 6 });
    const res = await loadStudyVolumes(files([lower, upper, again]), DEFAULT_PREPROCESSING);
    expect(res.volumeInfo.T2?.SeriesInstanceUID).toBe(again.SeriesInstanceUID);
    expect(byUid(res, again).dropped).toEqual([{ images: 15, reason: 'unjoined-part' }]);
    expect(byUid(res, lower).detail).toMatch(/series 6, not joined: another series of the acquisition continues the same slices/);
  });
});

describe('a part with fewer slices than a series needs', () => {
  // 24 axial slices of 5 mm, the last 7 (or 3) given a new UID: too few alone, but part of the one acquisition.
  const { p, whole, part } = acquisition(24, 5);

  it.each([7, 3, 1])('is joined when it continues the other part (%i slices)', async (n) => {
    const unsplit = await loadStudyVolumes(files([whole]), DEFAULT_PREPROCESSING);
    const lower = part(p.slice(0, 24 - n), { SeriesNumber: 4 });
    const upper = part(p.slice(24 - n), { SeriesNumber: 104 });
    const res = await loadStudyVolumes(files([lower, upper]), DEFAULT_PREPROCESSING);
    expect(maxDifference(res.volumes.T2, unsplit.volumes.T2)).toBeLessThan(1e-6);
    expect(byUid(res, upper)).toMatchObject({ used: true, joinedWith: [lower.SeriesInstanceUID] });
    expect(byUid(res, upper).reason).toBeUndefined();
    expect(byUid(res, lower)).toMatchObject({ used: true, joinedWith: [upper.SeriesInstanceUID] });
  });

  it('a first slice given a new UID is joined too (a part of one slice takes the other part\'s spacing)', async () => {
    const unsplit = await loadStudyVolumes(files([whole]), DEFAULT_PREPROCESSING);
    const first = part(p.slice(0, 1), { SeriesNumber: 104 });
    const rest = part(p.slice(1), { SeriesNumber: 4 });
    const res = await loadStudyVolumes(files([first, rest]), DEFAULT_PREPROCESSING);
    expect(maxDifference(res.volumes.T2, unsplit.volumes.T2)).toBeLessThan(1e-6);
    expect(byUid(res, first)).toMatchObject({ used: true, joinedWith: [rest.SeriesInstanceUID] });
  });

  it('parts of one slice each are never joined to each other (no spacing to go by)', async () => {
    const res = await loadStudyVolumes(files(p.slice(0, 12).map((x, i) => part([x], { SeriesNumber: 200 + i }))), DEFAULT_PREPROCESSING);
    expect(res.missing).toContain('T2');
    expect(res.series.every((r) => r.reason === 'too-few-slices' && r.joinedWith === undefined)).toBe(true);
  });

  it('a single slice that cannot be joined (a gap at the join) counts as an unjoined part of a short slab', async () => {
    const lower = part(p.slice(0, 14), { SeriesNumber: 4 });
    const last = part(p.slice(15, 16), { SeriesNumber: 104 });
    const res = await loadStudyVolumes(files([lower, last]), DEFAULT_PREPROCESSING);
    expect(byUid(res, last)).toMatchObject({ used: false, reason: 'too-few-slices' });
    expect(byUid(res, lower).dropped).toEqual([{ images: 1, reason: 'unjoined-part' }]);
  });

  it(`at most MAX_JOINED_PARTS parts are joined: every part names the others, so the result would grow with their square`, async () => {
    const p3 = axialPositions(CENTRE, 2 * (MAX_JOINED_PARTS + 1), 3);
    const fragments = (n: number) => Array.from({ length: n }, (_, i) => part(p3.slice(2 * i, 2 * i + 2), { SeriesNumber: 300 + i }));
    const joined = await loadStudyVolumes(files(fragments(MAX_JOINED_PARTS)), DEFAULT_PREPROCESSING);
    expect(joined.volumeInfo.T2?.sourceShape[0]).toBe(2 * MAX_JOINED_PARTS);
    expect(joined.series.every((r) => r.used && r.joinedWith?.length === MAX_JOINED_PARTS - 1)).toBe(true);
    const many = await loadStudyVolumes(files(fragments(MAX_JOINED_PARTS + 1)), DEFAULT_PREPROCESSING);
    expect(many.missing).toContain('T2');
    for (const r of many.series) {
      expect(r).toMatchObject({ used: false, reason: 'too-few-slices' });
      expect(r.joinedWith).toBeUndefined();
      expect(r.detail).toMatch(new RegExp(`not joined: ${MAX_JOINED_PARTS + 1} parts \\(at most ${MAX_JOINED_PARTS} are joined\\)$`));
    }
  });

  it('one that cannot be joined (a gap at the join) stays refused and counts as an unjoined part', async () => {
    const lower = part(p.slice(0, 17), { SeriesNumber: 4 });
    const upper = part(p.slice(18), { SeriesNumber: 104 });
    const res = await loadStudyVolumes(files([lower, upper]), DEFAULT_PREPROCESSING);
    expect(byUid(res, upper)).toMatchObject({ used: false, reason: 'too-few-slices' });
    expect(byUid(res, lower).dropped).toEqual(expect.arrayContaining([{ images: 6, reason: 'unjoined-part' }]));
  });
});
