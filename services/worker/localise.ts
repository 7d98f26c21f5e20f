// Localisation of flagged findings by occlusion sensitivity: parts of the canonical volumes are replaced and the
// image encoders run again (no gradients); the part whose replacement lowers the finding's score most is the region
// that drives it. With a bundle atlas (the normal appearance of each sequence, onnx-models/training/atlas.py) the
// parts tried are the study's own departures from normal (anomaly.ts: brighter and darker than normal, strongest
// first) and each is replaced by normal tissue: a few encoder runs per finding, and the point is the centre of the
// chosen abnormal region. Without an atlas, or for a sequence it lacks, blocks of the head are replaced by the
// foreground mean, coarse to fine (large blocks over the whole head, then smaller blocks inside the best one, then
// a weighted centre). Either way the cost is a bounded number of encoder calls per sequence, batched. The winning
// point goes back to patient coordinates through the canonical grid (shared/imaging canonicalToPatient) and to the
// nearest slice of the source series (locateInSource). Nothing here knows which sequences a bundle has: a finding
// is occluded in the sequences it is scored on.
import { canonicalToPatient, imageToPatient, locateInSource, otsuThreshold, type SourceSlice, type Vec3 } from '../../shared/imaging';
import { PRIORITIES, type Manifest, type Preprocessing, type Sequence } from '../../shared/model-manifest';
import { scoreStudy as scoreQueries, vectorsFor, type QueryVectors } from '../../shared/models/scoring';
import type { NormalAtlas } from '../../shared/models';
import type { FindingLocation } from '../../shared/results';
import { anomalyCandidates, voxelOf, type AnomalyOptions, type Candidate } from './anomaly';
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
   * Bound on a study's encoder runs for the block search: its first level always runs (about 45 per sequence,
   * shared by every finding); a finer level runs only while the study's total (atlas candidates included) stays
   * within this bound, for the most urgent findings first. A finding whose next level would pass it keeps its coarser
   * location. The atlas search is bounded by its own settings: at most 2 x perDirection candidates (times the
   * sequences with perSequence) per set of sequences, each run once per sequence the finding is read on.
   */
  maxRuns: number;
  /**
   * With an atlas: how candidates are found (anomaly.ts) and chosen: 'drop', the candidate whose replacement by
   * normal tissue lowers the finding's score most (the default); 'strength', the strongest departure from normal
   * (a comparison for bench:localise).
   */
  atlas: {
    /** Edge of the smoothing cube, distance between peaks, reach of a region from its peak: mm (anomaly.ts). */
    smoothMm: number;
    separationMm: number;
    regionRadiusMm: number;
  } & Pick<AnomalyOptions, 'perDirection' | 'regionFraction' | 'perSequence'> & {
    select: 'drop' | 'strength';
    /** Candidates from the finding's own sequences, or from every sequence the study and atlas have. */
    from: 'finding' | 'all';
  };
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
  // Chosen on the held-out synthetic cohort (docs/benchmarks.md): 15 mm smoothing and separation, four candidates
  // per direction, regions within 24 mm of a peak at 40 % of its strength.
  atlas: { smoothMm: 15, perDirection: 4, separationMm: 15, regionRadiusMm: 24, regionFraction: 0.4, perSequence: false, select: 'drop', from: 'finding' },
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
  /** The bundle's normal-appearance atlas; absent or null: block occlusion only. */
  atlas?: NormalAtlas | null;
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

/** A region to replace with normal tissue, and its cache key within the study. */
interface Fill {
  key: string;
  region: Int32Array;
}

/** A copy of the grid's volume with a region (reference-grid voxels) replaced by the atlas's normal tissue. */
function filledWithNormal(g: SequenceGrid, median: Float32Array, region: Int32Array, shape: readonly number[]): Float32Array {
  const [D, H, W] = shape;
  const out = g.volume.slice();
  const [oz, oy, ox] = g.offset;
  for (const i of region) {
    const [rz, ry, rx] = voxelOf(i, shape);
    const [z, y, x] = [rz + oz, ry + oy, rx + ox];
    if (z < 0 || z >= D || y < 0 || y >= H || x < 0 || x >= W) continue;
    const j = (z * H + y) * W + x;
    out[j] = median[j];
  }
  return out;
}

/**
 * Localises each target finding. Findings whose sequences have no geometry (a loader without it), or that neither
 * an atlas candidate nor a block explains, are left out of the map.
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
   * Embeddings of each item (an occluded box, a region filled with normal tissue) changed in each of `sequences`,
   * in the items' order, batched. Each (sequence, item) runs once per study: findings whose searches meet the same
   * boxes or candidates (several flags around one lesion, the finer level of diffuse findings) share them.
   */
  const seen = new Map<string, Float32Array>();
  const embedOnce = async <T>(items: T[], sequences: Sequence[], key: (s: Sequence, item: T) => string, volume: (s: Sequence, item: T) => Float32Array): Promise<Map<Sequence, Float32Array[]>> => {
    const out = new Map<Sequence, Float32Array[]>();
    await Promise.all(
      sequences.map(async (s) => {
        const todo = [...new Map(items.filter((b) => !seen.has(key(s, b))).map((b) => [key(s, b), b])).values()];
        for (let i = 0; i < todo.length; i += options.batch) {
          const batch = todo.slice(i, i + options.batch);
          encoderRuns += batch.length;
          const vectors = await deps.image.embed(s, batch.map((b) => volume(s, b)));
          batch.forEach((b, k) => seen.set(key(s, b), vectors[k]));
        }
        out.set(s, items.map((b) => seen.get(key(s, b))!));
      }),
    );
    return out;
  };
  const keyOf = (s: Sequence, b: Box) => `${s}:${b.lo.join(',')}:${b.hi.join(',')}`;
  const runBoxes = (boxes: Box[], sequences: Sequence[]) => embedOnce(boxes, sequences, keyOf, (s, b) => occluded(grids.get(s)!, b, shape));

  const refMask = grids.get(reference)!.mask;
  const voxels = (mm: number) => spec.spacingMm.map((sp) => Math.max(1, Math.round(mm / sp)));
  const [first, ...finer] = options.levels;
  const whole: Box = { lo: [0, 0, 0], hi: [shape[0], shape[1], shape[2]] };
  const level1 = boxesIn(whole, voxels(first.sizeMm), voxels(first.strideMm), shape).filter((b) => foregroundFraction(refMask, b, shape) >= options.minForeground);
  // Block targets share the first level (same boxes, same occluded volumes: each (sequence, box) runs once per
  // study); finer levels follow each target's best box. Atlas candidates are found once per set of
  // sequences (findings read on the same sequences share them).
  const atlas = deps.atlas ?? null;
  const byAtlas = (t: (typeof targets)[number]) => atlas !== null && t.sequences.every((s) => atlas[s]);
  const candidatesBy = new Map<string, Candidate[]>();
  // The atlas search's distances in voxels of this grid (odd smoothing cube).
  const voxelMm = Math.cbrt(spec.spacingMm[0] * spec.spacingMm[1] * spec.spacingMm[2]);
  const anomalyOptions: AnomalyOptions = {
    ...options.atlas,
    smoothVoxels: 2 * Math.round((options.atlas.smoothMm / voxelMm - 1) / 2) + 1,
    separationVoxels: Math.max(1, Math.round(options.atlas.separationMm / voxelMm)),
    regionRadiusVoxels: Math.max(1, Math.round(options.atlas.regionRadiusMm / voxelMm)),
  };

  /** The score drop of each of the `count` occluded versions in `emb`, all of the target's sequences replaced. */
  const drops = (t: (typeof targets)[number], count: number, emb: Map<Sequence, Float32Array[]>, base: number): number[] =>
    Array.from({ length: count }, (_, i) => {
      const images = { ...usable };
      for (const s of t.sequences) images[s] = emb.get(s)![i];
      return base - score(t, images);
    });

  /** Embeddings of each candidate region replaced by the atlas's normal tissue, in each of `sequences`. */
  const runFills = (fills: Fill[], sequences: Sequence[]) =>
    embedOnce(fills, sequences, (s, c) => `${s}:fill:${c.key}`, (s, c) => filledWithNormal(grids.get(s)!, atlas![s]!.median, c.region, shape));

  /** The location record of a point (reference-grid voxels) on the key slice of `sequence`'s source series. */
  const place = (t: (typeof targets)[number], voxel: Vec3, radiusMm: number, sequence: Sequence, drop: number): void => {
    const searchMm = canonicalToPatient(spec, refCentre, voxel[0], voxel[1], voxel[2]);
    const geometry = input.geometry[sequence]!.source;
    const at = locateInSource(geometry, searchMm);
    // The key point as the reader sees it: on the key slice (the search point projected onto its plane).
    const keyMm = imageToPatient(geometry, at.sliceIndex, at.point);
    // A volume joined from parts of one acquisition: the key slice is named, and counted, in its own series.
    const seriesOf = (s: SourceSlice) => s.SeriesInstanceUID ?? geometry.SeriesInstanceUID;
    const inSeries = geometry.slices.filter((s) => seriesOf(s) === seriesOf(at.slice));
    const round = (x: number, k = 2) => Math.round(x * 10 ** k) / 10 ** k;
    locations.set(t.queryId, {
      method: 'occlusion',
      sequence,
      SeriesInstanceUID: seriesOf(at.slice),
      SOPInstanceUID: at.slice.SOPInstanceUID,
      ...(geometry.SOPClassUID ? { SOPClassUID: geometry.SOPClassUID } : {}),
      ...(at.slice.frame !== undefined ? { frame: at.slice.frame } : {}),
      ...(geometry.FrameOfReferenceUID ? { FrameOfReferenceUID: geometry.FrameOfReferenceUID } : {}),
      ImageOrientationPatient: [...geometry.rowDirection, ...geometry.columnDirection].map((v) => round(v, 6)) as FindingLocation['ImageOrientationPatient'],
      point: [round(at.point[0]), round(at.point[1])],
      radiusPx: round(radiusMm / geometry.pixelSpacing[1]),
      ...(geometry.pixelSpacing[0] !== geometry.pixelSpacing[1] ? { radiusRowsPx: round(radiusMm / geometry.pixelSpacing[0]) } : {}),
      radiusMm: round(radiusMm, 1),
      patientMm: [round(keyMm[0], 1), round(keyMm[1], 1), round(keyMm[2], 1)],
      sliceIndex: inSeries.indexOf(at.slice),
      sliceCount: inSeries.length,
      scoreDrop: round(drop, 4),
    });
  };

  /** The sequence whose own replacement (the i-th of `emb`) lowers the score most: where the key image comes from. */
  const strongestOf = (t: (typeof targets)[number], emb: Map<Sequence, Float32Array[]>, i: number, base: number): Sequence => {
    let best = t.sequences[0];
    let bestDrop = -Infinity;
    for (const s of t.sequences) {
      const drop = base - score(t, { ...usable, [s]: emb.get(s)![i] });
      if (drop > bestDrop) {
        bestDrop = drop;
        best = s;
      }
    }
    return best;
  };

  // The most urgent findings first (a stable sort keeps the caller's order within a class): with blocks they get
  // the finer levels first.
  const ordered = [...targets].sort((a, b) => PRIORITIES.indexOf(a.vectors.query.priority) - PRIORITIES.indexOf(b.vectors.query.priority));
  for (const t of ordered) {
    const base = score(t, usable);
    if (byAtlas(t)) {
      const from = options.atlas.from === 'all' ? present.filter((s) => atlas![s]) : t.sequences;
      const seqKey = [...from].sort().join(',');
      if (!candidatesBy.has(seqKey)) {
        const bySequence = from.map((s) => ({ volume: grids.get(s)!.volume, atlas: atlas![s]!, offset: grids.get(s)!.offset }));
        candidatesBy.set(seqKey, anomalyCandidates(bySequence, shape, anomalyOptions));
      }
      const candidates = candidatesBy.get(seqKey)!;
      if (candidates.length > 0) {
        // A candidate is identified by the sequences it was found in and its rank there (found once per study).
        const fills = candidates.map((c, i) => ({ key: `${seqKey}#${i}`, region: c.region }));
        const emb = await runFills(fills, t.sequences);
        const d = drops(t, candidates.length, emb, base);
        const pick = options.atlas.select === 'drop' ? argmax(d) : 0;
        // A candidate the score does not fall for is not what drives it: the block search looks everywhere instead.
        if (d[pick] > 0) {
          const chosen = candidates[pick];
          const radiusMm = Math.max(voxelMm, Math.cbrt((3 * chosen.region.length) / (4 * Math.PI)) * voxelMm);
          place(t, chosen.centre, radiusMm, t.sequences.length === 1 ? t.sequences[0] : strongestOf(t, emb, pick, base), d[pick]);
          continue;
        }
      }
    }

    if (level1.length === 0) continue;
    const emb1 = await runBoxes(level1, t.sequences);
    let boxes = level1;
    let d = drops(t, boxes.length, emb1, base);
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
      d = drops(t, boxes.length, await runBoxes(boxes, t.sequences), base);
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
    const bestBox = boxes[argmax(d)];
    const radiusMm = Math.max(...[0, 1, 2].map((a) => (bestBox.hi[a] - bestBox.lo[a]) * spec.spacingMm[a])) / 2;
    // The key image comes from the sequence whose own occlusion of the best box lowers the score most.
    const sequence = t.sequences.length === 1 ? t.sequences[0] : strongestOf(t, await runBoxes([bestBox], t.sequences), 0, base);
    place(t, [c[0] / w, c[1] / w, c[2] / w], radiusMm, sequence, top);
  }
  return { locations, encoderRuns };
}

function argmax(xs: number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}
