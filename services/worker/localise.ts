// Localisation of flagged findings by occlusion sensitivity: blocks of the canonical volumes are replaced by the
// foreground mean and the image encoders run again (no gradients); the block whose occlusion lowers the finding's
// score most is the region that drives it. The search is coarse to fine (large blocks over the whole head, then
// smaller blocks inside the best one, then a weighted centre), so the cost is a bounded number of encoder calls per
// sequence, batched. The winning point goes back to patient coordinates through the canonical grid
// (shared/imaging canonicalToPatient) and to the nearest slice of the source series (locateInSource).
// Nothing here knows which sequences a bundle has: a finding is occluded in the sequences it is scored on.
import { canonicalToPatient, imageToPatient, locateInSource, otsuThreshold, type Vec3 } from '../../shared/imaging';
import { PRIORITIES, type Manifest, type Preprocessing, type Sequence } from '../../shared/model-manifest';
import { scoreStudy as scoreQueries, vectorsFor, type QueryVectors } from '../../shared/models/scoring';
import type { FindingLocation } from '../../shared/results';
import type { ImageEmbedder, VolumeGeometry } from './ports';

export interface LocaliseOptions {
  /**
   * Search levels, coarse to fine, in mm (turned into canonical voxels with manifest.preprocessing.spacingMm, so the
   * cost does not depend on the grid): cube edge, stride, and how far the search region reaches beyond the previous
   * level's best cube. The first level covers the whole grid.
   */
  levels: { sizeMm: number; strideMm: number; marginMm: number }[];
  /** Blocks with less foreground than this fraction (in the first sequence) are not tried. */
  minForeground: number;
  /** Volumes per encoder call. */
  batch: number;
  /** The final point is the drop-weighted centre of the last level's blocks within this fraction of the best drop. */
  topFraction: number;
  /**
   * Bound on a study's encoder runs: the first level always runs (about 45 per sequence, shared by every finding);
   * a finer level runs only while the study's total stays within this bound, for the most urgent findings first. A
   * finding whose next level would pass it keeps its coarser location.
   */
  maxRuns: number;
}

export const DEFAULT_LOCALISE_OPTIONS: LocaliseOptions = {
  // Chosen on the held-out synthetic cohort (docs/benchmarks.md): non-overlapping 48 mm cubes over the head, then
  // 36 mm cubes at a 12 mm stride over the best one and 12 mm around it, were as accurate as overlapping coarse
  // cubes for 40 % of the encoder runs (about 45 + 64 per sequence).
  levels: [
    { sizeMm: 48, strideMm: 48, marginMm: 0 },
    { sizeMm: 36, strideMm: 12, marginMm: 12 },
  ],
  minForeground: 0.15,
  batch: 4,
  topFraction: 0.5,
  // About 0.6-0.8 s of encoder time on one CPU core (docs/benchmarks.md).
  maxRuns: 256,
};

/** What one flagged finding is scored with: its query's vectors. */
export interface LocaliseTarget {
  queryId: string;
  vectors: QueryVectors;
}

export interface LocaliseInput {
  volumes: Partial<Record<Sequence, Float32Array>>;
  geometry: Partial<Record<Sequence, VolumeGeometry>>;
  /** The unoccluded image vectors (what the study was scored with). */
  embeddings: Partial<Record<Sequence, Float32Array>>;
  targets: LocaliseTarget[];
}

export interface LocaliseDeps {
  image: ImageEmbedder;
  preprocessing: Preprocessing;
  combination: Manifest['combination'];
}

export interface LocaliseOutcome {
  locations: Map<string, FindingLocation>;
  /** Volumes run through the encoders, over all sequences: the cost. */
  encoderRuns: number;
}

/** A box in canonical voxels of the reference sequence: [z0, y0, x0] inclusive to [z1, y1, x1] exclusive. */
interface Box {
  lo: [number, number, number];
  hi: [number, number, number];
}

const centreOf = (b: Box): Vec3 => [(b.lo[0] + b.hi[0] - 1) / 2, (b.lo[1] + b.hi[1] - 1) / 2, (b.lo[2] + b.hi[2] - 1) / 2];

/** Start positions along one axis covering [lo, hi) with windows of `size` at `stride`, the last one flush with hi. */
function starts(lo: number, hi: number, size: number, stride: number): number[] {
  if (hi - lo <= size) return [Math.max(0, lo)];
  const out: number[] = [];
  for (let s = lo; s + size < hi; s += stride) out.push(s);
  out.push(hi - size);
  return [...new Set(out)];
}

/** Boxes of `size` voxels (per axis) at `stride` (per axis) covering `region`, clipped to the grid. */
function boxesIn(region: Box, size: readonly number[], stride: readonly number[], shape: readonly number[]): Box[] {
  const axes = [0, 1, 2].map((a) => {
    const lo = Math.max(0, region.lo[a]);
    const hi = Math.min(shape[a], region.hi[a]);
    const edge = Math.min(size[a], hi - lo);
    return starts(lo, hi, edge, stride[a]).map((s) => [s, s + edge] as const);
  });
  const out: Box[] = [];
  for (const [z0, z1] of axes[0]) for (const [y0, y1] of axes[1]) for (const [x0, x1] of axes[2]) out.push({ lo: [z0, y0, x0], hi: [z1, y1, x1] });
  return out;
}

interface SequenceGrid {
  sequence: Sequence;
  volume: Float32Array;
  /** Foreground mask (above the volume's Otsu threshold): only these voxels are occluded. */
  mask: Uint8Array;
  /** Voxel offset [z, y, x] from the reference sequence's grid to this one's (same patient point). */
  offset: [number, number, number];
}

function foregroundMask(volume: Float32Array): Uint8Array {
  const t = otsuThreshold(volume, 3);
  const mask = new Uint8Array(volume.length);
  for (let i = 0; i < volume.length; i++) mask[i] = volume[i] > t ? 1 : 0;
  return mask;
}

function foregroundFraction(mask: Uint8Array, b: Box, shape: readonly number[]): number {
  const [, H, W] = shape;
  let n = 0;
  let all = 0;
  for (let z = b.lo[0]; z < b.hi[0]; z++)
    for (let y = b.lo[1]; y < b.hi[1]; y++) {
      const row = (z * H + y) * W;
      for (let x = b.lo[2]; x < b.hi[2]; x++) {
        n += mask[row + x];
        all++;
      }
    }
  return all > 0 ? n / all : 0;
}

/** A copy of the grid's volume with the box's foreground voxels set to 0, the foreground mean after z-scoring. */
function occluded(g: SequenceGrid, b: Box, shape: readonly number[]): Float32Array {
  const [D, H, W] = shape;
  const out = g.volume.slice();
  const [oz, oy, ox] = g.offset;
  const z0 = Math.max(0, b.lo[0] + oz);
  const z1 = Math.min(D, b.hi[0] + oz);
  const y0 = Math.max(0, b.lo[1] + oy);
  const y1 = Math.min(H, b.hi[1] + oy);
  const x0 = Math.max(0, b.lo[2] + ox);
  const x1 = Math.min(W, b.hi[2] + ox);
  for (let z = z0; z < z1; z++)
    for (let y = y0; y < y1; y++) {
      const row = (z * H + y) * W;
      for (let x = x0; x < x1; x++) if (g.mask[row + x]) out[row + x] = 0;
    }
  return out;
}

/**
 * Localises each target finding. Findings whose sequences have no geometry (a loader without it) or whose score
 * no block lowers are left out of the map.
 */
export async function localiseFindings(input: LocaliseInput, deps: LocaliseDeps, options: LocaliseOptions = DEFAULT_LOCALISE_OPTIONS): Promise<LocaliseOutcome> {
  const spec = deps.preprocessing;
  const shape = spec.shape;
  const locations = new Map<string, FindingLocation>();
  let encoderRuns = 0;

  // The sequences each target is scored on (the same rule as scoring: its own sequences present, else all).
  const present = (Object.keys(input.embeddings) as Sequence[]).filter((s) => input.embeddings[s] && input.volumes[s] && input.geometry[s]).sort();
  if (present.length === 0) return { locations, encoderRuns };
  const usable: Partial<Record<Sequence, Float32Array>> = Object.fromEntries(present.map((s) => [s, input.embeddings[s]]));
  const targets = input.targets.map((t) => {
    const wanted = t.vectors.query.sequences?.filter((s) => present.includes(s)) ?? [];
    return { ...t, sequences: wanted.length > 0 ? wanted : present };
  });
  const score = (t: (typeof targets)[number], images: Partial<Record<Sequence, Float32Array>>): number =>
    scoreQueries(deps.combination, images, [t.vectors])[0].score;
  // vectorsFor is the rule scoreQueries applies; checked here so the two cannot drift apart silently.
  for (const t of targets) if (vectorsFor(usable, t.vectors.query).length !== t.sequences.length) throw new Error('localise: sequence rule differs from scoring');

  const reference = present[0];
  const refCentre = input.geometry[reference]!.centreMm;
  const [sz, sy, sx] = spec.spacingMm;
  const grids = new Map<Sequence, SequenceGrid>();
  for (const s of present) {
    const c = input.geometry[s]!.centreMm;
    // Same patient point: grids differ only by their centres (same orientation and spacing).
    grids.set(s, {
      sequence: s,
      volume: input.volumes[s]!,
      mask: foregroundMask(input.volumes[s]!),
      offset: [Math.round((refCentre[2] - c[2]) / sz), Math.round((refCentre[1] - c[1]) / sy), Math.round((refCentre[0] - c[0]) / sx)],
    });
  }

  /**
   * Embeddings of each box occluded in each of `sequences`. Each (sequence, box) runs once per study: findings whose
   * searches meet the same boxes (several flags around one lesion, the finer level of diffuse findings) share them.
   */
  const seen = new Map<string, Float32Array>();
  const keyOf = (s: Sequence, b: Box) => `${s}:${b.lo.join(',')}:${b.hi.join(',')}`;
  const runBoxes = async (boxes: Box[], sequences: Sequence[]): Promise<Map<Sequence, Float32Array[]>> => {
    const out = new Map<Sequence, Float32Array[]>();
    await Promise.all(
      sequences.map(async (s) => {
        const g = grids.get(s)!;
        const todo = [...new Map(boxes.filter((b) => !seen.has(keyOf(s, b))).map((b) => [keyOf(s, b), b])).values()];
        for (let i = 0; i < todo.length; i += options.batch) {
          const batch = todo.slice(i, i + options.batch);
          encoderRuns += batch.length;
          const vectors = await deps.image.embed(s, batch.map((b) => occluded(g, b, shape)));
          batch.forEach((b, k) => seen.set(keyOf(s, b), vectors[k]));
        }
        out.set(s, boxes.map((b) => seen.get(keyOf(s, b))!));
      }),
    );
    return out;
  };

  // Targets share the first level (same boxes, same occluded volumes); finer levels follow each target's best box.
  const needed = [...new Set(targets.flatMap((t) => t.sequences))].sort();
  const refMask = grids.get(reference)!.mask;
  const voxels = (mm: number) => spec.spacingMm.map((sp) => Math.max(1, Math.round(mm / sp)));
  const [first, ...finer] = options.levels;
  const whole: Box = { lo: [0, 0, 0], hi: [shape[0], shape[1], shape[2]] };
  const level1 = boxesIn(whole, voxels(first.sizeMm), voxels(first.strideMm), shape).filter((b) => foregroundFraction(refMask, b, shape) >= options.minForeground);
  if (level1.length === 0) return { locations, encoderRuns };
  const emb1 = await runBoxes(level1, needed);

  const drops = (t: (typeof targets)[number], boxes: Box[], emb: Map<Sequence, Float32Array[]>, base: number): number[] =>
    boxes.map((_, i) => {
      const images = { ...usable };
      for (const s of t.sequences) images[s] = emb.get(s)![i];
      return base - score(t, images);
    });

  // The most urgent findings get the finer levels first (a stable sort keeps the caller's order within a class).
  const ordered = [...targets].sort((a, b) => PRIORITIES.indexOf(a.vectors.query.priority) - PRIORITIES.indexOf(b.vectors.query.priority));
  for (const t of ordered) {
    const base = score(t, usable);
    let boxes = level1;
    let d = drops(t, boxes, emb1, base);
    for (const level of finer) {
      const best = boxes[argmax(d)];
      const margin = voxels(level.marginMm);
      const region: Box = {
        lo: [best.lo[0] - margin[0], best.lo[1] - margin[1], best.lo[2] - margin[2]],
        hi: [best.hi[0] + margin[0], best.hi[1] + margin[1], best.hi[2] + margin[2]],
      };
      const next = boxesIn(region, voxels(level.sizeMm), voxels(level.strideMm), shape).filter((b) => foregroundFraction(refMask, b, shape) >= options.minForeground);
      const cost = t.sequences.reduce((n, s) => n + next.filter((b) => !seen.has(keyOf(s, b))).length, 0);
      if (next.length === 0 || encoderRuns + cost > options.maxRuns) break;
      boxes = next;
      d = drops(t, boxes, await runBoxes(boxes, t.sequences), base);
    }
    const top = d[argmax(d)];
    if (!(top > 0)) continue;
    // Drop-weighted centre of the strongest boxes: between block centres, finer than the last level's stride.
    let w = 0;
    const c: Vec3 = [0, 0, 0];
    boxes.forEach((b, i) => {
      if (d[i] < options.topFraction * top) return;
      const bc = centreOf(b);
      for (let a = 0; a < 3; a++) c[a] += d[i] * bc[a];
      w += d[i];
    });
    const voxel: Vec3 = [c[0] / w, c[1] / w, c[2] / w];
    const searchMm = canonicalToPatient(spec, refCentre, voxel[0], voxel[1], voxel[2]);
    const bestBox = boxes[argmax(d)];
    const radiusMm = (Math.max(...[0, 1, 2].map((a) => (bestBox.hi[a] - bestBox.lo[a]) * spec.spacingMm[a])) / 2);

    // The key image comes from the sequence whose own occlusion of the best box lowers the score most.
    const sequence = t.sequences.length === 1 ? t.sequences[0] : await strongestSequence(t.sequences, bestBox);
    const geometry = input.geometry[sequence]!.source;
    const at = locateInSource(geometry, searchMm);
    // The key point as the reader sees it: on the key slice (the search point projected onto its plane).
    const keyMm = imageToPatient(geometry, at.sliceIndex, at.point);
    const round = (x: number, k = 2) => Math.round(x * 10 ** k) / 10 ** k;
    locations.set(t.queryId, {
      method: 'occlusion',
      sequence,
      SeriesInstanceUID: geometry.SeriesInstanceUID,
      SOPInstanceUID: at.slice.SOPInstanceUID,
      ...(geometry.SOPClassUID ? { SOPClassUID: geometry.SOPClassUID } : {}),
      ...(at.slice.frame !== undefined ? { frame: at.slice.frame } : {}),
      ...(geometry.FrameOfReferenceUID ? { FrameOfReferenceUID: geometry.FrameOfReferenceUID } : {}),
      ImageOrientationPatient: [...geometry.rowDirection, ...geometry.columnDirection].map((v) => round(v, 6)) as FindingLocation['ImageOrientationPatient'],
      point: [round(at.point[0]), round(at.point[1])],
      radiusPx: round(radiusMm / geometry.pixelSpacing[1]),
      radiusMm: round(radiusMm, 1),
      patientMm: [round(keyMm[0], 1), round(keyMm[1], 1), round(keyMm[2], 1)],
      sliceIndex: at.sliceIndex,
      sliceCount: geometry.slices.length,
      scoreDrop: round(top, 4),
    });

    async function strongestSequence(sequences: Sequence[], box: Box): Promise<Sequence> {
      const emb = await runBoxes([box], sequences);
      let best = sequences[0];
      let bestDrop = -Infinity;
      for (const s of sequences) {
        const drop = base - score(t, { ...usable, [s]: emb.get(s)![0] });
        if (drop > bestDrop) {
          bestDrop = drop;
          best = s;
        }
      }
      return best;
    }
  }
  return { locations, encoderRuns };
}

function argmax(xs: number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}
