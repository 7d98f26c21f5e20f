// Parts of one acquisition split across SeriesInstanceUIDs (a long acquisition sent in two packages, a PACS that
// gives part of a series a new UID): which series are evidently one acquisition, which of them continue each
// other's stack, and whether a stack built from several of them is the one regular stack they were meant to be.
// Checks only: the stacks are built by buildStack (study.ts), as for any series. Conservative by design: anything
// that differs (frame of reference, orientation, matrix, timing, b-values, contrast, naming rule) is another
// acquisition, and a repeat (the same positions again) is never a part.
import type { Classification } from './classifier';
import { dot, type Stack } from './geometry';
import type { SeriesFrame, SeriesGroup } from './series';

export interface AcquisitionPart {
  group: SeriesGroup;
  cls: Classification;
  stack: Stack<SeriesFrame>;
}

/** The tolerances of buildStack: cosines as one stack's, 1 % for regular spacing, 0.05 mm for one position. */
const SAME_COSINE = 0.9999;
const REGULAR = 0.01;
const SAME_POSITION_MM = 0.05;

const close = (a: number | undefined, b: number | undefined, rel = 1e-3): boolean =>
  a === undefined || b === undefined ? a === b : Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1);
const sameList = (a: readonly (string | number)[], b: readonly (string | number)[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** Why two series are not parts of one acquisition; undefined when they evidently are. */
export function acquisitionDifference(a: AcquisitionPart, b: AcquisitionPart): string | undefined {
  const ha = a.group.header;
  const hb = b.group.header;
  const fa = a.group.frames[0].frame;
  const fb = b.group.frames[0].frame;
  if (a.group.SeriesInstanceUID === b.group.SeriesInstanceUID) return 'the same series';
  // Without a frame of reference, positions of two series are not known to share patient coordinates.
  if (!ha.FrameOfReferenceUID || ha.FrameOfReferenceUID !== hb.FrameOfReferenceUID) return 'another frame of reference';
  if (a.cls.sequence !== b.cls.sequence || a.cls.rule !== b.cls.rule || a.cls.contrastEnhanced !== b.cls.contrastEnhanced) return 'another sequence or contrast state';
  if (a.group.bValue !== b.group.bValue || !sameList(a.group.seriesBValues, b.group.seriesBValues)) return 'other b-values';
  if (
    !close(fa.RepetitionTime ?? ha.RepetitionTime, fb.RepetitionTime ?? hb.RepetitionTime) ||
    !close(fa.EchoTime ?? ha.EchoTime, fb.EchoTime ?? hb.EchoTime) ||
    !close(fa.InversionTime ?? ha.InversionTime, fb.InversionTime ?? hb.InversionTime) ||
    !close(ha.SliceThickness, hb.SliceThickness) ||
    !sameList(ha.ScanningSequence, hb.ScanningSequence) ||
    !sameList(ha.SequenceVariant, hb.SequenceVariant) ||
    ha.MRAcquisitionType !== hb.MRAcquisitionType ||
    !sameList(fa.ImageType, fb.ImageType)
  ) {
    return 'other acquisition parameters';
  }
  const sa = a.stack;
  const sb = b.stack;
  if (dot(sa.rowDirection, sb.rowDirection) < SAME_COSINE || dot(sa.columnDirection, sb.columnDirection) < SAME_COSINE) return 'another orientation';
  if (sa.rows !== sb.rows || sa.columns !== sb.columns || !close(sa.pixelSpacing[0], sb.pixelSpacing[0]) || !close(sa.pixelSpacing[1], sb.pixelSpacing[1])) {
    return 'another matrix or pixel spacing';
  }
  // A part of one slice has no spacing of its own (0): the other part's is the acquisition's.
  if (sa.items.length > 1 && sb.items.length > 1 && Math.abs(sa.sliceSpacing - sb.sliceSpacing) > REGULAR * sa.sliceSpacing) return 'another slice spacing';
  return undefined;
}

/** The slice spacing of the acquisition two parts belong to: a part of one slice has none, the other's counts. */
function acquisitionSpacing(a: Stack<unknown>, b: Stack<unknown>): number {
  return a.items.length > 1 ? a.sliceSpacing : b.items.length > 1 ? b.sliceSpacing : 0;
}

/** Positions of a stack's first and last slice along its normal (mm). */
function extent(s: Stack<unknown>): [number, number] {
  const first = dot(s.origin, s.normal);
  return [first, first + s.sliceOffsets[s.sliceOffsets.length - 1]];
}

/**
 * b's first slice lies one slice spacing beyond a's last (within buildStack's 1 %): b continues a's stack. Two parts
 * of one slice each have no spacing to go by: neither continues the other.
 */
function continues(a: Stack<unknown>, b: Stack<unknown>): boolean {
  const spacing = acquisitionSpacing(a, b);
  const step = extent(b)[0] - extent(a)[1];
  return spacing > 0 && Math.abs(step - spacing) <= REGULAR * spacing;
}

/**
 * Chains of two or more series of one acquisition, each continuing the previous one's stack, in order along the
 * normal. A part that two others could continue (or that could continue two others) is ambiguous, e.g. a repeat
 * of one half: it joins nothing.
 */
export function partChains<T extends AcquisitionPart>(candidates: readonly T[]): T[][] {
  const next = new Map<T, T>();
  const previous = new Map<T, T[]>();
  for (const a of candidates) {
    const after = candidates.filter((b) => b !== a && continues(a.stack, b.stack) && !acquisitionDifference(a, b));
    if (after.length !== 1) continue;
    next.set(a, after[0]);
    previous.set(after[0], [...(previous.get(after[0]) ?? []), a]);
  }
  for (const [a, b] of next) if (previous.get(b)!.length > 1) next.delete(a);
  const chains: T[][] = [];
  for (const a of candidates) {
    if (!next.has(a) || [...next.values()].includes(a)) continue;
    const chain = [a];
    for (let c = next.get(a); c; c = next.get(c)) chain.push(c);
    chains.push(chain);
  }
  return chains;
}

/**
 * Why a stack built from the frames of `parts` is not their one regular stack (undefined when it is): it must hold
 * every slice of every part's stack and nothing else, at the parts' slice spacing, without a new in-plane shift.
 */
export function joinProblem(parts: readonly Stack<SeriesFrame>[], joined: Stack<SeriesFrame>): string | undefined {
  const slices = new Set(parts.flatMap((p) => p.items));
  if (joined.items.length !== slices.size || !joined.items.every((f) => slices.has(f))) return 'the parts do not make one stack';
  if (parts.some((p) => p.items.length > 1 && Math.abs(joined.sliceSpacing - p.sliceSpacing) > REGULAR * p.sliceSpacing)) return 'the slice spacing changes at the join';
  if (joined.notes.inPlaneShiftMm > Math.max(...parts.map((p) => p.notes.inPlaneShiftMm)) + SAME_POSITION_MM) return 'the parts are shifted in plane';
  return undefined;
}

/**
 * For a used stack and another part of its acquisition that was not joined to it: how many of the other part's
 * slices lie outside the used stack along the normal (0: it adds nothing, e.g. a repeat), and why it was not joined.
 * `problem`: joinProblem's answer when the two were a chain whose joined stack was refused.
 */
export function unjoinedPart(used: Stack<unknown>, other: Stack<unknown>, problem?: string): { outside: number; why: string } {
  const [lo, hi] = extent(used);
  let outside = 0;
  for (const off of other.sliceOffsets) {
    const d = dot(other.origin, other.normal) + off;
    if (d < lo - SAME_POSITION_MM || d > hi + SAME_POSITION_MM) outside++;
  }
  const [olo, ohi] = extent(other);
  const overlap = olo <= hi + SAME_POSITION_MM && ohi >= lo - SAME_POSITION_MM;
  const step = olo > hi ? olo - hi : lo - ohi;
  // Continuing one another without a join: their joined stack was refused, or a third part continues one of them
  // as well (a repeat of a part), which partChains leaves unjoined. The distance alone would not say why.
  const inStep = continues(used, other) || continues(other, used);
  const why = overlap ? 'its slices overlap the used ones'
    : problem ? problem
      : inStep ? 'another series of the acquisition continues the same slices (a repeat of a part)'
        : `${step.toFixed(1)} mm from the used slices at the join (slice spacing ${used.sliceSpacing.toFixed(1)} mm)`;
  return { outside, why };
}
