import { anomalyCandidates, boxSmooth, headMask, peaks, regionOf, type Grid } from './anomaly';

const SHAPE: Grid = [12, 14, 16];
const N = SHAPE[0] * SHAPE[1] * SHAPE[2];
const idx = (z: number, y: number, x: number) => (z * SHAPE[1] + y) * SHAPE[2] + x;

function bruteSmooth(data: Float32Array, k: number): Float32Array {
  const r = (k - 1) / 2;
  const out = new Float32Array(N);
  for (let z = 0; z < SHAPE[0]; z++)
    for (let y = 0; y < SHAPE[1]; y++)
      for (let x = 0; x < SHAPE[2]; x++) {
        let sum = 0;
        let n = 0;
        for (let dz = -r; dz <= r; dz++)
          for (let dy = -r; dy <= r; dy++)
            for (let dx = -r; dx <= r; dx++) {
              const [zz, yy, xx] = [z + dz, y + dy, x + dx];
              if (zz < 0 || yy < 0 || xx < 0 || zz >= SHAPE[0] || yy >= SHAPE[1] || xx >= SHAPE[2]) continue;
              sum += data[idx(zz, yy, xx)];
              n++;
            }
        out[idx(z, y, x)] = sum / n;
      }
  return out;
}

/** A head: an ellipsoid of "tissue" (1) in background (-3); its atlas has spread 0.5 everywhere. */
function phantomAtlas() {
  const median = new Float32Array(N);
  for (let z = 0; z < SHAPE[0]; z++)
    for (let y = 0; y < SHAPE[1]; y++)
      for (let x = 0; x < SHAPE[2]; x++) {
        const inside = ((z - 5.5) / 5.5) ** 2 + ((y - 6.5) / 6.5) ** 2 + ((x - 7.5) / 7.5) ** 2 <= 1;
        median[idx(z, y, x)] = inside ? 1 : -3;
      }
  return { median, spread: new Float32Array(N).fill(0.5) };
}

/** Adds `delta` to a 3-voxel cube centred at c. */
function lesion(volume: Float32Array, c: [number, number, number], delta: number): void {
  for (let dz = -1; dz <= 1; dz++) for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) volume[idx(c[0] + dz, c[1] + dy, c[2] + dx)] += delta;
}

describe('anomaly candidates (localisation against a normal atlas)', () => {
  it('smooths with a cube that counts only voxels inside the grid, as the brute-force mean does', () => {
    const data = Float32Array.from({ length: N }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 % 1);
    for (const k of [1, 3, 5]) {
      const fast = boxSmooth(data, SHAPE, k);
      const slow = bruteSmooth(data, k);
      for (let i = 0; i < N; i++) expect(fast[i]).toBeCloseTo(slow[i], 5);
    }
  });

  it('keeps the head inside the atlas, less its edge', () => {
    const mask = headMask(phantomAtlas(), SHAPE);
    expect(mask[idx(6, 7, 8)]).toBe(1);
    expect(mask[idx(0, 0, 0)]).toBe(0);
    // The outermost tissue voxel along x is eroded away.
    expect(mask[idx(6, 7, 0)]).toBe(0);
  });

  it('finds separated peaks strongest first, and a region whose weighted centre is the blob centre', () => {
    const map = new Float32Array(N);
    lesion(map, [3, 4, 4], 2);
    lesion(map, [8, 9, 11], 5);
    map[idx(8, 9, 12)] = 4.9; // a shoulder of the strong blob, not a second candidate
    const ps = peaks(map, SHAPE, 4, 3);
    expect(ps.length).toBe(2);
    expect(map[ps[0]]).toBe(5);
    expect(map[ps[1]]).toBe(2);
    const { region, centre } = regionOf(map, SHAPE, idx(3, 4, 4), 3, 0.5);
    expect(region.length).toBe(27);
    centre.forEach((v, a) => expect(v).toBeCloseTo([3, 4, 4][a], 6));
  });

  it('offers both a brighter and a darker lesion, on the reference grid of a sequence that is shifted', () => {
    const atlas = phantomAtlas();
    const volume = atlas.median.slice();
    // In this sequence's own grid: bright lesion at (4, 5, 5), dark one at (7, 9, 10); the sequence grid is the
    // reference grid shifted by +1 voxel in x (own index = reference index + offset).
    lesion(volume, [4, 5, 5], 3);
    lesion(volume, [7, 9, 10], -2);
    const candidates = anomalyCandidates([{ volume, atlas, offset: [0, 0, 1] }], SHAPE, {
      smoothVoxels: 3, perDirection: 2, separationVoxels: 3, regionRadiusVoxels: 3, regionFraction: 0.4, perSequence: false,
    });
    const bright = candidates.find((c) => c.direction === 1)!;
    const dark = candidates.find((c) => c.direction === -1)!;
    expect(candidates[0]).toBe(bright);
    [4, 5, 4].forEach((v, a) => expect(bright.centre[a]).toBeCloseTo(v, 1));
    [7, 9, 9].forEach((v, a) => expect(dark.centre[a]).toBeCloseTo(v, 1));
    expect(bright.strength).toBeGreaterThan(dark.strength);
    expect(bright.region.length).toBeGreaterThan(0);
  });

  it('per sequence: a lesion brighter in one sequence and darker in another is one candidate, a lesion in one sequence alone is kept', () => {
    const atlas = phantomAtlas();
    const dwi = atlas.median.slice();
    const adc = atlas.median.slice();
    lesion(dwi, [4, 5, 5], 3); // bright on one...
    lesion(adc, [4, 5, 5], -3); // ...dark on the other, same place
    lesion(adc, [8, 9, 10], 2); // only on the second
    const options = { smoothVoxels: 3, perDirection: 2, separationVoxels: 3, regionRadiusVoxels: 3, regionFraction: 0.4 };
    const per = anomalyCandidates([{ volume: dwi, atlas, offset: [0, 0, 0] }, { volume: adc, atlas, offset: [0, 0, 0] }], SHAPE, { ...options, perSequence: true });
    const near = (c: { centre: number[] }, p: number[]) => c.centre.every((v, a) => Math.abs(v - p[a]) < 1);
    expect(per.filter((c) => near(c, [4, 5, 5])).length).toBe(1);
    expect(per.filter((c) => near(c, [8, 9, 10])).length).toBe(1);
    // Averaged first, the bright and dark halves each count half, and both directions keep their own candidate.
    const averaged = anomalyCandidates([{ volume: dwi, atlas, offset: [0, 0, 0] }, { volume: adc, atlas, offset: [0, 0, 0] }], SHAPE, { ...options, perSequence: false });
    expect(averaged.filter((c) => near(c, [4, 5, 5])).map((c) => c.direction).sort()).toEqual([-1, 1]);
  });

  it('offers nothing where a study looks like its atlas', () => {
    const atlas = phantomAtlas();
    const candidates = anomalyCandidates([{ volume: atlas.median.slice(), atlas, offset: [0, 0, 0] }], SHAPE, {
      smoothVoxels: 3, perDirection: 2, separationVoxels: 3, regionRadiusVoxels: 3, regionFraction: 0.4, perSequence: false,
    });
    expect(candidates).toEqual([]);
  });
});
