// Where a study departs from normal appearance: the candidate lesions that localisation (localise.ts) asks the
// model about. Each sequence's canonical volume is compared voxel by voxel with the bundle's atlas (the median and
// robust spread of unlabelled training volumes, shared/models/atlas.ts): z = (volume - median) / spread inside the
// atlas's head, split into brighter- and darker-than-normal maps, smoothed over a small cube so single noisy voxels
// do not count, and averaged over the sequences a finding is scored on. The strongest separated peaks of each map
// are the candidates; each carries its region (the voxels reached downhill from the peak that keep a share of its
// strength), whose weighted centre is the point reported. Pure array maths on the canonical grid; no model runs here.
import { otsuThreshold } from '../../shared/imaging';
import type { SequenceAtlas } from '../../shared/models';

export type Grid = readonly [number, number, number];

/** [z, y, x] of a flat (z-major) index on the grid. */
export function voxelOf(i: number, shape: readonly number[]): [number, number, number] {
  const [, H, W] = shape;
  return [Math.floor(i / (H * W)), Math.floor(i / W) % H, i % W];
}

/** Two grid points at least `separation` apart on some axis: two candidates, not one. */
function apart(a: readonly number[], b: readonly number[], separation: number): boolean {
  return a.some((v, axis) => Math.abs(v - b[axis]) >= separation);
}

export interface AnomalyOptions {
  /** Edge of the smoothing cube, voxels (odd). */
  smoothVoxels: number;
  /** Candidates kept per direction (brighter, darker). */
  perDirection: number;
  /** Peaks closer than this (voxels, per axis) to a stronger one are the same candidate. */
  separationVoxels: number;
  /** A candidate's region: voxels within this distance of its peak (voxels)... */
  regionRadiusVoxels: number;
  /** ...whose smoothed anomaly is at least this fraction of the peak's. */
  regionFraction: number;
  /**
   * true: each sequence's own maps give candidates (a lesion brighter in one sequence and darker in another is found
   * in both; the same place twice is kept once); false: the sequences' maps are averaged first.
   */
  perSequence: boolean;
}

export interface SequenceAnomaly {
  volume: Float32Array;
  atlas: SequenceAtlas;
  /** Voxel offset [z, y, x] from the reference grid to this sequence's grid (the same patient point). */
  offset: readonly [number, number, number];
}

export interface Candidate {
  /** +1: brighter than normal; -1: darker. */
  direction: 1 | -1;
  /** Smoothed mean anomaly at the peak (robust z units). */
  strength: number;
  /** Reference-grid voxel indices of the region (flat, z-major). */
  region: Int32Array;
  /** Anomaly-weighted centre of the region, reference-grid voxels [z, y, x]. */
  centre: [number, number, number];
}

const headMasks = new WeakMap<SequenceAtlas, Uint8Array>();

/** Voxels of the atlas's head: median above its Otsu threshold, eroded by one voxel (the scalp edge varies most). */
export function headMask(atlas: SequenceAtlas, shape: Grid): Uint8Array {
  const known = headMasks.get(atlas);
  if (known) return known;
  const t = otsuThreshold(atlas.median, 3);
  const inside = new Uint8Array(atlas.median.length);
  for (let i = 0; i < inside.length; i++) inside[i] = atlas.median[i] > t ? 1 : 0;
  const [D, H, W] = shape;
  const out = new Uint8Array(inside.length);
  for (let z = 1; z < D - 1; z++)
    for (let y = 1; y < H - 1; y++)
      for (let x = 1; x < W - 1; x++) {
        const i = (z * H + y) * W + x;
        if (inside[i] && inside[i - 1] && inside[i + 1] && inside[i - W] && inside[i + W] && inside[i - H * W] && inside[i + H * W]) out[i] = 1;
      }
  headMasks.set(atlas, out);
  return out;
}

/** Mean over a cube of edge k (odd) around each voxel, counting only voxels inside the grid (separable box filter). */
export function boxSmooth(data: Float32Array, shape: Grid, k: number): Float32Array {
  const r = (k - 1) >> 1;
  const [D, H, W] = shape;
  let cur = Float64Array.from(data);
  // Along each axis a running sum over the window; the in-grid count is a product of per-axis counts.
  const axes = [
    { n: D, stride: H * W, lines: (f: (base: number) => void) => { for (let i = 0; i < H * W; i++) f(i); } },
    { n: H, stride: W, lines: (f: (base: number) => void) => { for (let z = 0; z < D; z++) for (let x = 0; x < W; x++) f(z * H * W + x); } },
    { n: W, stride: 1, lines: (f: (base: number) => void) => { for (let j = 0; j < D * H; j++) f(j * W); } },
  ];
  for (const { n, stride, lines } of axes) {
    const next = new Float64Array(cur.length);
    lines((base) => {
      let sum = 0;
      for (let i = 0; i <= Math.min(r, n - 1); i++) sum += cur[base + i * stride];
      for (let i = 0; i < n; i++) {
        next[base + i * stride] = sum;
        if (i + r + 1 < n) sum += cur[base + (i + r + 1) * stride];
        if (i - r >= 0) sum -= cur[base + (i - r) * stride];
      }
    });
    cur = next;
  }
  const count = (n: number) => Float64Array.from({ length: n }, (_, i) => Math.min(n - 1, i + r) - Math.max(0, i - r) + 1);
  const [cz, cy, cx] = [count(D), count(H), count(W)];
  const out = new Float32Array(cur.length);
  for (let z = 0; z < D; z++)
    for (let y = 0; y < H; y++) {
      const row = (z * H + y) * W;
      const czy = cz[z] * cy[y];
      for (let x = 0; x < W; x++) out[row + x] = cur[row + x] / (czy * cx[x]);
    }
  return out;
}

/**
 * The brighter (+1) or darker (-1) than normal map on the reference grid: each sequence's one-sided robust z inside
 * its atlas head, smoothed, shifted onto the reference grid, averaged over the sequences.
 */
export function anomalyMap(sequences: SequenceAnomaly[], shape: Grid, direction: 1 | -1, smoothVoxels: number, masks: Uint8Array[]): Float32Array {
  const [D, H, W] = shape;
  const out = new Float32Array(D * H * W);
  sequences.forEach((s, k) => {
    const z = new Float32Array(out.length);
    const { median, spread } = s.atlas;
    const mask = masks[k];
    for (let i = 0; i < z.length; i++) if (mask[i]) z[i] = Math.max(0, (direction * (s.volume[i] - median[i])) / spread[i]);
    const smooth = boxSmooth(z, shape, smoothVoxels);
    const [oz, oy, ox] = s.offset;
    for (let zz = 0; zz < D; zz++) {
      const sz = zz + oz;
      if (sz < 0 || sz >= D) continue;
      for (let y = 0; y < H; y++) {
        const sy = y + oy;
        if (sy < 0 || sy >= H) continue;
        for (let x = 0; x < W; x++) {
          const sx = x + ox;
          if (sx < 0 || sx >= W) continue;
          out[(zz * H + y) * W + x] += smooth[(sz * H + sy) * W + sx] / sequences.length;
        }
      }
    }
  });
  return out;
}

/**
 * The strongest local maxima of `map` (not below any of their 26 neighbours, above 0), each at least `separation`
 * voxels (on some axis) from every stronger one kept.
 */
export function peaks(map: Float32Array, shape: Grid, count: number, separation: number): number[] {
  const [D, H, W] = shape;
  const maxima: number[] = [];
  for (let z = 0; z < D; z++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const i = (z * H + y) * W + x;
        const v = map[i];
        if (!(v > 0)) continue;
        let top = true;
        for (let dz = -1; dz <= 1 && top; dz++)
          for (let dy = -1; dy <= 1 && top; dy++)
            for (let dx = -1; dx <= 1; dx++) {
              const zz = z + dz;
              const yy = y + dy;
              const xx = x + dx;
              if (zz < 0 || zz >= D || yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
              if (map[(zz * H + yy) * W + xx] > v) {
                top = false;
                break;
              }
            }
        if (top) maxima.push(i);
      }
  maxima.sort((a, b) => map[b] - map[a]);
  const kept: number[] = [];
  for (const i of maxima) {
    const c = voxelOf(i, shape);
    if (kept.every((j) => apart(voxelOf(j, shape), c, separation))) kept.push(i);
    if (kept.length === count) break;
  }
  return kept;
}

/**
 * A peak's region and anomaly-weighted centre: the voxels reached from the peak by steps to face neighbours that
 * never go uphill, within `radius` of it and at least `fraction` of its strength. Going only downhill keeps a
 * neighbouring, stronger departure (another lesion) out of this one's region.
 */
export function regionOf(map: Float32Array, shape: Grid, peak: number, radius: number, fraction: number): { region: Int32Array; centre: [number, number, number] } {
  const [D, H, W] = shape;
  const [pz, py, px] = voxelOf(peak, shape);
  const floor = fraction * map[peak];
  const inRegion = new Set<number>([peak]);
  const queue = [peak];
  for (let q = 0; q < queue.length; q++) {
    const i = queue[q];
    const [z, y, x] = voxelOf(i, shape);
    for (const [dz, dy, dx] of [[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]]) {
      const [nz, ny, nx] = [z + dz, y + dy, x + dx];
      if (nz < 0 || nz >= D || ny < 0 || ny >= H || nx < 0 || nx >= W) continue;
      if ((nz - pz) ** 2 + (ny - py) ** 2 + (nx - px) ** 2 > radius * radius) continue;
      const j = (nz * H + ny) * W + nx;
      if (inRegion.has(j) || map[j] < floor || map[j] > map[i]) continue;
      inRegion.add(j);
      queue.push(j);
    }
  }
  const c = [0, 0, 0];
  let w = 0;
  for (const i of inRegion) {
    const p = voxelOf(i, shape);
    for (let a = 0; a < 3; a++) c[a] += map[i] * p[a];
    w += map[i];
  }
  return { region: Int32Array.from([...inRegion].sort((a, b) => a - b)), centre: [c[0] / w, c[1] / w, c[2] / w] };
}

/** Candidate lesions: the strongest departures from the atlas, brighter and darker, strongest first. */
export function anomalyCandidates(sequences: SequenceAnomaly[], shape: Grid, options: AnomalyOptions): Candidate[] {
  if (!(options.smoothVoxels >= 1 && options.smoothVoxels % 2 === 1)) throw new RangeError(`smoothVoxels must be odd and >= 1, not ${options.smoothVoxels}`);
  if (!(options.regionFraction > 0 && options.regionFraction <= 1)) throw new RangeError(`regionFraction must be in (0, 1], not ${options.regionFraction}`);
  const masks = sequences.map((s) => headMask(s.atlas, shape));
  const groups = options.perSequence ? sequences.map((s, k) => ({ seqs: [s], masks: [masks[k]] })) : [{ seqs: sequences, masks }];
  const out: Candidate[] = [];
  for (const g of groups)
    for (const direction of [1, -1] as const) {
      const map = anomalyMap(g.seqs, shape, direction, options.smoothVoxels, g.masks);
      for (const p of peaks(map, shape, options.perDirection, options.separationVoxels)) {
        out.push({ direction, strength: map[p], ...regionOf(map, shape, p, options.regionRadiusVoxels, options.regionFraction) });
      }
    }
  out.sort((a, b) => b.strength - a.strength);
  if (!options.perSequence) return out;
  // The same place found in several sequences' maps is one candidate (the strongest finding of it).
  const kept: Candidate[] = [];
  for (const c of out) {
    if (kept.every((k) => apart(k.centre, c.centre, options.separationVoxels))) kept.push(c);
  }
  return kept;
}
