// localiseFindings with a stand-in image encoder whose embedding reads one box of the volume (the "lesion the model
// responds to"), so which region drives the score is known: the atlas search must choose that lesion over a
// stronger departure from normal the score does not depend on, place it through a sequence grid that is shifted,
// and hand a finding to the block search when no candidate lowers its score. The trained bundle's behaviour is
// test/worker/localise.test.ts's; accuracy on a cohort is bench:localise's.
import { canonicalToPatient, type SourceGeometry, type Vec3 } from '../../shared/imaging';
import type { Preprocessing, Sequence } from '../../shared/model-manifest';
import type { NormalAtlas } from '../../shared/models';
import { DEFAULT_LOCALISE_OPTIONS, localiseFindings, type LocaliseTarget } from './localise';
import type { VolumeGeometry } from './ports';

const SHAPE = [12, 16, 16] as const;
const N = SHAPE[0] * SHAPE[1] * SHAPE[2];
const SPEC = { shape: [...SHAPE], spacingMm: [3, 3, 3] } as unknown as Preprocessing;
const idx = (z: number, y: number, x: number) => (z * SHAPE[1] + y) * SHAPE[2] + x;
const LESION: Vec3 = [6, 8, 5];
const DECOY: Vec3 = [6, 8, 11];

function head(): Float32Array {
  const v = new Float32Array(N);
  for (let z = 0; z < SHAPE[0]; z++)
    for (let y = 0; y < SHAPE[1]; y++)
      for (let x = 0; x < SHAPE[2]; x++) v[idx(z, y, x)] = ((z - 5.5) / 6) ** 2 + ((y - 7.5) / 8) ** 2 + ((x - 7.5) / 8) ** 2 <= 1 ? 1 : -3;
  return v;
}
const ATLAS: NormalAtlas = { DWI: { median: head(), spread: new Float32Array(N).fill(0.5) }, T2: { median: head(), spread: new Float32Array(N).fill(0.5) } };

/** Adds `delta` to the 3-voxel cube centred at c, shifted by `dx` voxels along x. */
function withBlob(v: Float32Array, c: Vec3, delta: number, dx = 0): Float32Array {
  const out = v.slice();
  for (let z = -1; z <= 1; z++) for (let y = -1; y <= 1; y++) for (let x = -1; x <= 1; x++) out[idx(c[0] + z, c[1] + y, c[2] + x + dx)] += delta;
  return out;
}

/** Axial slices that coincide with the canonical grid centred at `centre`. */
function geometry(centre: Vec3, series: string): VolumeGeometry {
  const source: SourceGeometry = {
    SeriesInstanceUID: series, rows: SHAPE[1], columns: SHAPE[2], rowDirection: [1, 0, 0], columnDirection: [0, 1, 0], normal: [0, 0, 1], pixelSpacing: [3, 3],
    slices: Array.from({ length: SHAPE[0] }, (_, k) => ({
      SOPInstanceUID: `${series}.${k}`,
      ImagePositionPatient: [centre[0] - ((SHAPE[2] - 1) / 2) * 3, centre[1] - ((SHAPE[1] - 1) / 2) * 3, centre[2] + (k - (SHAPE[0] - 1) / 2) * 3] as Vec3,
    })),
  };
  return { centreMm: centre, source };
}

/** The stand-in encoder: [mean of the box around the lesion in this sequence's grid, 1], counting its runs. */
function encoder(lesionDx: Partial<Record<Sequence, number>>) {
  const runs = { n: 0 };
  const read = (s: Sequence, v: Float32Array) => {
    let sum = 0;
    for (let z = -1; z <= 1; z++) for (let y = -1; y <= 1; y++) for (let x = -1; x <= 1; x++) sum += v[idx(LESION[0] + z, LESION[1] + y, LESION[2] + x + (lesionDx[s] ?? 0))];
    return Float32Array.from([sum / 27, 1]);
  };
  return { runs, image: { embed: async (s: Sequence, vs: Float32Array[]) => ((runs.n += vs.length), vs.map((v) => read(s, v))) } };
}

const target = (sequences: Sequence[]): LocaliseTarget => ({
  queryId: 'acute_infarct',
  vectors: { query: { id: 'acute_infarct', text: 'Acute infarct.', priority: 'STAT', sequences }, text: Float32Array.from([1, 0]) },
});

async function run(volumes: Partial<Record<Sequence, Float32Array>>, geo: Partial<Record<Sequence, VolumeGeometry>>, sequences: Sequence[], atlas: NormalAtlas | null, dx: Partial<Record<Sequence, number>> = {}) {
  const enc = encoder(dx);
  const embeddings = Object.fromEntries(await Promise.all(Object.entries(volumes).map(async ([s, v]) => [s, (await enc.image.embed(s as Sequence, [v!]))[0]])));
  enc.runs.n = 0;
  const out = await localiseFindings({ volumes, geometry: geo, embeddings, targets: [target(sequences)] }, { image: enc.image, preprocessing: SPEC, combination: 'mean-embedding', atlas }, DEFAULT_LOCALISE_OPTIONS);
  return { ...out, runs: enc.runs.n, location: out.locations.get('acute_infarct') };
}

const distance = (a: readonly number[], b: readonly number[]) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);

describe('localiseFindings (stand-in encoder)', () => {
  const centre: Vec3 = [0, 0, 0];

  it('chooses the departure from normal the score falls for, not the strongest one, with a few encoder runs', async () => {
    const dwi = withBlob(withBlob(head(), LESION, 2), DECOY, 4);
    const r = await run({ DWI: dwi }, { DWI: geometry(centre, '1.2.1') }, ['DWI'], ATLAS);
    const loc = r.location!;
    expect(loc.sequence).toBe('DWI');
    expect(loc.scoreDrop).toBeGreaterThan(0);
    expect(distance(loc.patientMm, canonicalToPatient(SPEC, centre, ...LESION))).toBeLessThan(3);
    expect(loc.SOPInstanceUID).toBe(`1.2.1.${LESION[0]}`);
    expect(r.runs).toBeLessThanOrEqual(2 * DEFAULT_LOCALISE_OPTIONS.atlas.perDirection);
  });

  it('names the key slice by its own series, and its place in it, in a volume joined from two series of one acquisition', async () => {
    const dwi = withBlob(withBlob(head(), LESION, 2), DECOY, 4);
    const geo = geometry(centre, '1.2.1');
    // slices 4 and up came as another series (a PACS gave the upper part a new SeriesInstanceUID)
    geo.source.slices = geo.source.slices.map((s, k) => (k >= 4 ? { ...s, SeriesInstanceUID: '1.2.9' } : s));
    const loc = (await run({ DWI: dwi }, { DWI: geo }, ['DWI'], ATLAS)).location!;
    expect(loc).toMatchObject({ SeriesInstanceUID: '1.2.9', SOPInstanceUID: `1.2.1.${LESION[0]}`, sliceIndex: LESION[0] - 4, sliceCount: SHAPE[0] - 4 });
  });

  it('replaces each candidate at the same patient position in a sequence whose grid is shifted', async () => {
    // T2's grid is centred 3 mm further along x: its voxel x is the reference (DWI) voxel x - 1.
    const dwi = withBlob(head(), LESION, 2);
    const t2 = withBlob(head(), LESION, 2, -1);
    const r = await run({ DWI: dwi, T2: t2 }, { DWI: geometry(centre, '1.2.1'), T2: geometry([3, 0, 0], '1.2.2') }, ['DWI', 'T2'], ATLAS, { T2: -1 });
    const loc = r.location!;
    expect(loc.scoreDrop).toBeGreaterThan(0);
    expect(distance(loc.patientMm, canonicalToPatient(SPEC, centre, ...LESION))).toBeLessThan(3);
  });

  it('hands a finding to the block search when no candidate lowers its score, or without an atlas', async () => {
    // The only departure from normal is the decoy; the lesion the score reads looks normal.
    const dwi = withBlob(head(), DECOY, 4);
    const geo = { DWI: geometry(centre, '1.2.1') };
    const blocksOnly = await run({ DWI: dwi }, geo, ['DWI'], null);
    const withAtlas = await run({ DWI: dwi }, geo, ['DWI'], ATLAS);
    expect(blocksOnly.location!.scoreDrop).toBeGreaterThan(0);
    // Same place as the block search alone; the candidates' runs came first.
    expect(withAtlas.location!.patientMm).toEqual(blocksOnly.location!.patientMm);
    expect(withAtlas.runs).toBeGreaterThan(blocksOnly.runs);
    expect(distance(withAtlas.location!.patientMm, canonicalToPatient(SPEC, centre, ...DECOY))).toBeGreaterThan(distance(withAtlas.location!.patientMm, canonicalToPatient(SPEC, centre, ...LESION)));
  });

  it('uses the block search for a sequence the atlas lacks', async () => {
    const flair = withBlob(head(), LESION, 2);
    const r = await run({ FLAIR: flair }, { FLAIR: geometry(centre, '1.2.3') }, ['FLAIR'], ATLAS, {});
    const blocks = await run({ FLAIR: flair }, { FLAIR: geometry(centre, '1.2.3') }, ['FLAIR'], null, {});
    expect(r.location).toEqual(blocks.location);
    expect(r.runs).toBe(blocks.runs);
  });
});
