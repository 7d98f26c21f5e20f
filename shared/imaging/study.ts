// The top-level pipeline the worker and the volumes CLI both call: files of one study -> headers (pixel bytes stay
// on disk) -> series (split by b-value) -> classification and usability -> stacks -> the best series per sequence
// -> only its frames read, decoded, resampled onto the canonical grid and normalised. Every series is reported
// with what happened to it and which images were left out; a study with nothing usable returns no volumes and
// lists every sequence as missing, it does not throw. Parts of one acquisition split across series (join.ts) are
// one candidate, their stacks joined.
import { stat } from 'node:fs/promises';
import { SEQUENCES, type Preprocessing, type Sequence } from '../model-manifest';
import { classifySeries, examLevelProtocols, isEncoderSequence, normaliseText, unusableReason, type Classification } from './classifier';
import type { SeriesSequence } from './classifier-rules';
import { fileSource, hasLossyHistory, readInstance, readInstanceHeader, type ByteSource, type DicomInstance, type Vec3 } from './dicom-header';
import { DicomParseError, UnusableSeriesError, type UnusableReason } from './errors';
import { buildStack, DEFAULT_STACK_OPTIONS, type Stack, type StackNotes, type StackOptions } from './geometry';
import { percentileScale, zscoreForeground } from './intensity';
import { createPixelDecoder, isCompressed, readFrameBytes, type PixelDecoder } from './pixels';
import { foregroundCentroid, resampleToCanonical, volumeCentre, type SourceVolume } from './resample';
import { sourceGeometry, type SourceGeometry } from './locate';
import { groupSeries, type SeriesFrame, type SeriesGroup } from './series';
import { acquisitionDifference, joinProblem, partChains, unjoinedPart } from './join';

/** A file path, or bytes already in memory (name used in messages only). */
export type InstanceSource = string | { name: string; data: Uint8Array | ArrayBuffer };

export type Plane = 'axial' | 'sagittal' | 'coronal' | 'oblique';

/**
 * Why images of a series were left out of its volume. Those in INCOMPLETE_DROP_REASONS mean the volume is less
 * complete than the series was meant to be (the worker lowers its confidence); the others are by design.
 */
export const DROP_REASONS = [
  'unreadable', // the file could not be read or parsed (set by the caller, which knows the storage layout)
  'no-geometry', // no usable position, orientation or pixel spacing
  'other-stack', // another orientation or matrix size than the stack kept (mixed orientations, 3-plane series)
  'duplicate-position', // a second image at a position already filled
  'position-outlier', // a position far beyond either end of the stack (geometry.ts POSITION_OUTLIER_GAP): corrupt
  'other-echo', // multi-echo series: the first echo is kept
  'b-value-unknown', // diffusion series without b-values: the earlier image at each position (the b=0) is left
  'directional', // diffusion: the isotropic (trace) image is used, the per-direction images are not
  'missing-slices', // positions inside the stack with no image (a gap > 1.5x the slice spacing): interpolated across
  // slices of another series of the same acquisition beyond this stack that could not be joined to it (join.ts)
  'unjoined-part',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];
export const INCOMPLETE_DROP_REASONS: readonly DropReason[] = [
  'unreadable', 'no-geometry', 'other-stack', 'duplicate-position', 'position-outlier', 'missing-slices', 'unjoined-part',
];

export interface DroppedImages {
  images: number;
  reason: DropReason;
}

export interface SeriesReport {
  SeriesInstanceUID: string;
  /** SeriesInstanceUID, or SeriesInstanceUID#b<value> for a part of a diffusion series. */
  key: string;
  SeriesNumber?: number;
  SeriesDescription?: string;
  bValue?: number;
  frames: number;
  sequence: SeriesSequence;
  /** Classifier rule that decided the sequence. */
  rule: string;
  contrastEnhanced: boolean;
  /**
   * Some image of the series has lossy history (hasLossyHistory: (0028,2110) "01", or a lossy transfer syntax); for
   * a used series, some image of its stack. Present only when true: marked, not scored differently.
   */
  lossyCompressed?: true;
  used: boolean;
  reason?: UnusableReason;
  detail?: string;
  /** Images of this series not in its stack, by why (absent when none). */
  dropped?: DroppedImages[];
  /** The other series (SeriesInstanceUIDs) of one acquisition whose slices were joined with this one's into one stack. */
  joinedWith?: string[];
  geometry?: { plane: Plane; slices: number; rows: number; columns: number; sliceSpacingMm: number; pixelSpacingMm: [number, number]; notes: StackNotes };
}

export interface VolumeInfo {
  key: string;
  SeriesInstanceUID: string;
  /** Patient (LPS mm) position of the canonical grid's centre. */
  centreMm: Vec3;
  /** Decoded stack size [slices, rows, columns]. */
  sourceShape: [number, number, number];
  /** The stack's geometry and slices, to map a canonical voxel back to a slice of the series (locate.ts). */
  source: SourceGeometry;
}

export interface StudyVolumes {
  /** The study of most instances (undefined when nothing was readable). */
  StudyInstanceUID?: string;
  /** Canonical volumes, float32 [D, H, W] per the spec. */
  volumes: Partial<Record<Sequence, Float32Array>>;
  volumeInfo: Partial<Record<Sequence, VolumeInfo>>;
  series: SeriesReport[];
  /** Requested sequences with no volume. */
  missing: Sequence[];
  shape: [number, number, number];
  spacingMm: [number, number, number];
  /** Files that are not readable DICOM (e.g. a stray non-DICOM file); the study goes on without them. */
  unreadable: UnreadableFile[];
  /** Instances of other studies mixed into the input, ignored. */
  otherStudyInstances: number;
  /**
   * parseMs: reading and parsing every header (one pass); readMs: 0, kept for callers that add it (pixel bytes
   * are read frame by frame inside decodeMs); preprocessMs: resampling and normalising.
   */
  timings: { readMs: number; parseMs: number; decodeMs: number; preprocessMs: number };
}

export interface UnreadableFile {
  file: string;
  detail: string;
  /** not-dicom: no DICOM preamble at all (a stray file); corrupt / too-large: a DICOM file that cannot be used; io: could not be read. */
  kind: 'not-dicom' | 'corrupt' | 'too-large' | 'io';
}

/** Size limits checked before a stack's volume is allocated. */
export interface StackLimits {
  maxSlices: number;
  /** Rows x Columns x slices of the decoded (float32) source volume. */
  maxVoxels: number;
}

/**
 * No brain MR stack has more than 1024 slices (a 0.5 mm 3D acquisition covers 250 mm in 500); 64 Mi voxels
 * (256 MB as float32) take 512x512x256. Beyond either, the series is `too-large` rather than a memory hazard.
 */
export const DEFAULT_STACK_LIMITS: StackLimits = Object.freeze({ maxSlices: 1024, maxVoxels: 64 * 1024 * 1024 });

export interface LoadOptions {
  /** Reuse one decoder per thread; created on demand otherwise. */
  decoder?: PixelDecoder;
  stack?: StackOptions;
  limits?: StackLimits;
  /** Sequences to produce (default: every sequence an encoder exists for). */
  sequences?: readonly Sequence[];
  /** Opens a file for positioned reads (default: the file system); tests wrap it to see what is read. */
  openFile?: (path: string) => Promise<ByteSource>;
}

interface Candidate {
  group: SeriesGroup;
  report: SeriesReport;
  cls: Classification;
  stack: Stack<SeriesFrame>;
  /** The frames the stack was built from (framesForStack), and whether they are a diffusion series without b-values. */
  frames: SeriesFrame[];
  bLessDwi: boolean;
  /** A joined candidate: the series of one acquisition whose slices `stack` holds (this one's group is the first's). */
  parts?: Candidate[];
  /**
   * A part with fewer slices than a series needs (too-few-slices): usable only joined to other parts of its
   * acquisition (the last few slices of a series given a new UID); alone it stays refused.
   */
  fragment?: boolean;
  /** The chain of parts this one is in that was not joined, and why (join.ts joinProblem), for the other part's detail. */
  notJoined?: { chain: readonly Candidate[]; why: string };
}

export function planeOf(normal: Vec3): Plane {
  const a = normal.map(Math.abs);
  const m = Math.max(...a);
  if (m < 0.9) return 'oblique';
  return a[2] === m ? 'axial' : a[0] === m ? 'sagittal' : 'coronal';
}

/**
 * A stack shorter than this along its normal is a slab (an IAC CISS/DRIVE/FIESTA, a pituitary block, one part of a
 * split series), not a brain: a whole-brain series of the sequence is preferred to it, however many slices it has.
 */
export const BRAIN_COVERAGE_MM = 90;

/** Extent of a stack along its normal, first to last slice plus one spacing (mm). */
export function stackCoverageMm(stack: Pick<Stack<unknown>, 'sliceOffsets' | 'sliceSpacing'>): number {
  return stack.sliceOffsets[stack.sliceOffsets.length - 1] + stack.sliceSpacing;
}

/** A diffusion trace image: ImageType TRACEW / ISOTROPIC, or DiffusionDirectionality ISOTROPIC. */
function isTraceFrame(f: SeriesFrame): boolean {
  return f.frame.DiffusionDirectionality === 'ISOTROPIC' || f.frame.ImageType.some((t) => /^(?:TRACEW|ISOTROPIC)$/i.test(t.trim()));
}

/**
 * The preference among usable series of one sequence, best first (documented in docs/imaging.md):
 * pre-contrast, for DWI a trace (TRACEW / ISOTROPIC) before directional images, original (not derived, except ADC which always is), covering the brain (BRAIN_COVERAGE_MM), axial
 * or thin-slice 3D, for DWI the b-value nearest 1000 (known before unknown), most slices, fewest gaps, the later series (a repeat usually
 * replaces a degraded first try), key.
 */
export function compareCandidates(a: Candidate, b: Candidate): number {
  const derived = (c: Candidate) => (c.report.sequence !== 'ADC' && (c.group.header.ImageType[0] ?? '').toUpperCase() === 'DERIVED' ? 1 : 0);
  const slab = (c: Candidate) => (stackCoverageMm(c.stack) < BRAIN_COVERAGE_MM ? 1 : 0);
  // DWI: a trace before per-direction images, whatever ORIGINAL/DERIVED says (Siemens writes its TRACEW DERIVED and
  // the directional images of the same acquisition ORIGINAL; one direction is not a trace).
  const notTrace = (c: Candidate) => (c.report.sequence === 'DWI' && !c.stack.items.some(isTraceFrame) ? 1 : 0);
  const planeRank = (c: Candidate) => (planeOf(c.stack.normal) === 'axial' || c.stack.sliceSpacing <= 1.5 ? 0 : 1);
  // a DWI part with a known b-value before one without (a b-less "DWI" may be something else named so)
  const bRank = (c: Candidate) => (c.report.sequence === 'DWI' ? (c.report.bValue === undefined ? 1e6 : Math.abs(c.report.bValue - 1000)) : 0);
  return (
    Number(a.cls.contrastEnhanced) - Number(b.cls.contrastEnhanced) ||
    notTrace(a) - notTrace(b) ||
    derived(a) - derived(b) ||
    slab(a) - slab(b) ||
    planeRank(a) - planeRank(b) ||
    bRank(a) - bRank(b) ||
    b.stack.items.length - a.stack.items.length ||
    a.stack.notes.gaps - b.stack.notes.gaps ||
    (b.group.header.SeriesNumber ?? 0) - (a.group.header.SeriesNumber ?? 0) ||
    a.report.key.localeCompare(b.report.key)
  );
}

/**
 * The stack of a series (or of one b-value of it), keeping among frames at one position the first by echo, then
 * InstanceNumber. `bLessDiffusion`: a diffusion series without b-values holds b=0 and b=1000 at the same positions;
 * scanners number the diffusion-weighted image after the b=0 one, so there the last InstanceNumber wins.
 */
export function stackOfSeries(group: SeriesGroup, options: StackOptions = DEFAULT_STACK_OPTIONS, bLessDiffusion = false): Stack<SeriesFrame> {
  const sign = bLessDiffusion ? -1 : 1;
  return buildStack(
    group.frames.map((sf) => ({
      item: sf,
      ImagePositionPatient: sf.frame.ImagePositionPatient,
      ImageOrientationPatient: sf.frame.ImageOrientationPatient,
      PixelSpacing: sf.frame.PixelSpacing,
      Rows: sf.instance.header.Rows ?? 0,
      Columns: sf.instance.header.Columns ?? 0,
      order: [sf.frame.EchoNumbers ?? 0, sign * (sf.instance.header.InstanceNumber ?? 0), sign * sf.frame.index, sf.instance.header.SOPInstanceUID ?? sf.instance.file],
    })),
    options,
  );
}

function asUnusable(e: unknown): UnusableSeriesError {
  if (e instanceof UnusableSeriesError) return e;
  return new UnusableSeriesError('corrupt', e instanceof Error ? e.message : String(e));
}

/**
 * Decodes the stack's frames into one float32 [slices, rows, columns] volume. Instances read header first have
 * their frames read now, one at a time, so only this stack's pixel bytes are ever read from disk.
 */
export async function decodeStack(stack: Stack<SeriesFrame>, decoder: PixelDecoder): Promise<SourceVolume> {
  if (stack.items.some((f) => isCompressed(f.instance.header.TransferSyntaxUID))) await decoder.ready();
  const plane = stack.rows * stack.columns;
  const data = new Float32Array(plane * stack.items.length);
  const encapsulated = new Map<DicomInstance, Uint8Array[]>();
  for (let k = 0; k < stack.items.length; k++) {
    const f = stack.items[k];
    if (f.instance.header.Rows !== stack.rows || f.instance.header.Columns !== stack.columns) {
      throw new UnusableSeriesError('inconsistent-geometry', `${f.instance.file}: matrix differs from the stack`);
    }
    if (f.instance.pixelData) decoder.decodeFrameInto(f.instance, f.frame, data, k * plane);
    else decoder.decodeFrameBytesInto(f.instance, f.frame, await readFrameBytes(f.instance, f.frame.index, encapsulated), data, k * plane);
  }
  return { data, columns: stack.columns, rows: stack.rows, slices: stack.items.length };
}

/** Source volume -> canonical, normalised float32 [D, H, W] per spec. */
export function preprocessVolume(vol: SourceVolume, stack: Stack<unknown>, spec: Preprocessing): { volume: Float32Array; centreMm: Vec3 } {
  const centreMm = spec.centre === 'foreground-centroid' ? foregroundCentroid(stack, vol) : volumeCentre(stack, vol);
  const volume = resampleToCanonical(vol, stack, spec, centreMm);
  if (spec.intensity.method === 'zscore-foreground') zscoreForeground(volume, spec.intensity.clip);
  else percentileScale(volume, spec.intensity.clip);
  return { volume, centreMm };
}

/** Files whose headers are read at once per study. */
const READ_CONCURRENCY = 32;

async function openFromDisk(file: string): Promise<ByteSource> {
  return fileSource(file, (await stat(file)).size);
}

function unreadableOf(name: string, e: unknown): UnreadableFile {
  if (e instanceof DicomParseError) return { file: name, detail: e.detail, kind: e.reason };
  return { file: name, detail: e instanceof Error ? e.message : String(e), kind: 'io' };
}

/** Headers of every source (files: the header only; bytes in memory: whole), in input order. */
async function readHeaders(files: readonly InstanceSource[], openFile: (path: string) => Promise<ByteSource>) {
  const t0 = performance.now();
  // A study can hold thousands of instances: read through a bounded pool (no EMFILE), in input order.
  const read: (DicomInstance | UnreadableFile)[] = new Array(files.length);
  let next = 0;
  const readOne = async (): Promise<void> => {
    for (let i = next++; i < files.length; i = next++) {
      const f = files[i];
      const name = typeof f === 'string' ? f : f.name;
      try {
        read[i] = typeof f === 'string' ? await readInstanceHeader(await openFile(f), f) : readInstance(f.data, f.name);
      } catch (e) {
        read[i] = unreadableOf(name, e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, files.length) }, readOne));
  const instances = read.filter((r): r is DicomInstance => 'header' in r);
  const unreadable = read.filter((r): r is UnreadableFile => !('header' in r));
  return { instances, unreadable, readMs: performance.now() - t0 };
}

/**
 * The frames a series' stack is built from. A diffusion series holding both the isotropic (trace) image and the
 * per-direction images at one b-value (Philips) keeps the isotropic ones, by DiffusionDirectionality; anything
 * else keeps every frame.
 */
function framesForStack(group: SeriesGroup, sequence: SeriesSequence): { frames: SeriesFrame[]; dropped: DroppedImages[] } {
  if (sequence === 'DWI') {
    const isotropic = group.frames.filter((f) => f.frame.DiffusionDirectionality === 'ISOTROPIC');
    if (isotropic.length > 0 && isotropic.length < group.frames.length) {
      return { frames: isotropic, dropped: [{ images: group.frames.length - isotropic.length, reason: 'directional' }] };
    }
  }
  return { frames: group.frames, dropped: [] };
}

/** Slice positions inside the stack that hold no image: each gap (> 1.5x the median spacing) of n spacings lacks n - 1. */
export function missingSlices(stack: Pick<Stack<unknown>, 'sliceOffsets' | 'sliceSpacing'>): number {
  let missing = 0;
  for (let k = 1; k < stack.sliceOffsets.length; k++) {
    const d = stack.sliceOffsets[k] - stack.sliceOffsets[k - 1];
    if (d > 1.5 * stack.sliceSpacing) missing += Math.max(1, Math.round(d / stack.sliceSpacing) - 1);
  }
  return missing;
}

/** The geometry notes as dropped images, duplicates split by whether the series explains them; holes in the stack. */
function stackDrops(stack: Stack<SeriesFrame>, frames: readonly SeriesFrame[], bLessDwi: boolean): DroppedImages[] {
  const notes = stack.notes;
  const out: DroppedImages[] = [];
  if (notes.framesWithoutGeometry > 0) out.push({ images: notes.framesWithoutGeometry, reason: 'no-geometry' });
  if (notes.framesInDroppedStacks > 0) out.push({ images: notes.framesInDroppedStacks, reason: 'other-stack' });
  if (notes.positionOutliers > 0) out.push({ images: notes.positionOutliers, reason: 'position-outlier' });
  if (notes.duplicatesDropped > 0) {
    const echoes = new Set(frames.map((f) => f.frame.EchoNumbers ?? 0)).size;
    const reason: DropReason = bLessDwi ? 'b-value-unknown' : echoes > 1 ? 'other-echo' : 'duplicate-position';
    out.push({ images: notes.duplicatesDropped, reason });
  }
  const missing = missingSlices(stack);
  if (missing > 0) out.push({ images: missing, reason: 'missing-slices' });
  return out;
}

/** Why a stack is too large to decode (undefined when it fits): checked before its volume is allocated. */
function overLimits(stack: Stack<unknown>, limits: StackLimits): string | undefined {
  const slices = stack.items.length;
  const voxels = slices * stack.rows * stack.columns;
  if (slices > limits.maxSlices || voxels > limits.maxVoxels) {
    return `${slices} slices of ${stack.rows}x${stack.columns} (limits: ${limits.maxSlices} slices, ${Math.round(limits.maxVoxels / 1048576)} Mi voxels)`;
  }
  return undefined;
}

/**
 * Most series joined into one volume. Every part's report names the others (joinedWith), so the result grows with
 * the square of the parts: 400 two-slice fragments of one series made 7.5 MB of `series[]`. A chain of more parts
 * is not joined (each part stays as it was, the reason in its detail when another series is used).
 */
export const MAX_JOINED_PARTS = 32;

/**
 * The candidates of one sequence with each chain of parts of one acquisition (join.ts) replaced by one candidate
 * whose stack is built from all their frames, when that stack is the one regular stack the parts make. Its group,
 * report and classification are those of the part ranked first; every part's report names the others.
 */
function joinParts(list: readonly Candidate[], options: StackOptions): Candidate[] {
  const out = [...list];
  for (const chain of partChains(list)) {
    if (chain.length > MAX_JOINED_PARTS) {
      const why = `${chain.length} parts (at most ${MAX_JOINED_PARTS} are joined)`;
      for (const c of chain) {
        c.notJoined = { chain, why };
        if (c.fragment) c.report.detail = `${c.report.detail ?? ''}; part of one acquisition, not joined: ${why}`;
      }
      continue;
    }
    const [first] = [...chain].sort(compareCandidates);
    let stack: Stack<SeriesFrame> | undefined;
    let problem: string | undefined;
    try {
      stack = stackOfSeries({ ...first.group, frames: chain.flatMap((c) => c.frames) }, options, first.bLessDwi);
      problem = joinProblem(chain.map((c) => c.stack), stack);
    } catch {
      problem = 'the parts do not make one stack';
    }
    if (problem || !stack) {
      for (const c of chain) c.notJoined = { chain, why: problem ?? 'the parts do not make one stack' };
      continue;
    }
    for (const c of chain) {
      c.report.joinedWith = chain.filter((o) => o !== c).map((o) => o.group.SeriesInstanceUID);
      if (c.fragment) {
        delete c.report.reason;
        delete c.report.detail;
      }
      out.splice(out.indexOf(c), 1);
    }
    out.push({ ...first, stack, parts: chain, fragment: false });
  }
  return out.filter((c) => !c.fragment);
}

/**
 * A slab used while another series of its acquisition holds slices beyond it that could not be joined (they overlap
 * it, or a gap at the join): the volume evidently covers part of what was acquired. The other part's slices beyond
 * it are counted on the used series as `unjoined-part` (an incomplete volume), and the other part says why.
 */
function noteUnjoinedParts(used: Candidate, all: readonly Candidate[]): void {
  if (stackCoverageMm(used.stack) >= BRAIN_COVERAGE_MM) return;
  const parts = used.parts ?? [used];
  for (const other of all) {
    if (parts.includes(other) || acquisitionDifference(used, other)) continue;
    const problem = other.notJoined && parts.some((p) => other.notJoined!.chain.includes(p)) ? other.notJoined.why : undefined;
    const { outside, why } = unjoinedPart(used.stack, other.stack, problem);
    if (outside === 0) continue;
    used.report.dropped = [...(used.report.dropped ?? []), { images: outside, reason: 'unjoined-part' }];
    if (other.report.reason === 'not-selected' && !other.report.detail) {
      other.report.detail = `part of the same acquisition as series ${used.report.SeriesNumber ?? used.report.SeriesInstanceUID}, not joined: ${why}`;
    }
  }
}

/**
 * Loads one study's canonical volumes. Never throws for bad data: unusable series carry a reason, unreadable
 * files are listed, and sequences without a usable series are `missing`.
 */
export async function loadStudyVolumes(files: readonly InstanceSource[], spec: Preprocessing, options: LoadOptions = {}): Promise<StudyVolumes> {
  const wanted = options.sequences ?? SEQUENCES;
  const decoder = options.decoder ?? createPixelDecoder();
  const stackOptions = options.stack ?? DEFAULT_STACK_OPTIONS;
  const limits = options.limits ?? DEFAULT_STACK_LIMITS;
  const { instances: all, unreadable, readMs: parseMs } = await readHeaders(files, options.openFile ?? openFromDisk);
  const readMs = 0;

  const studyCounts = new Map<string, number>();
  for (const i of all) if (i.header.StudyInstanceUID) studyCounts.set(i.header.StudyInstanceUID, (studyCounts.get(i.header.StudyInstanceUID) ?? 0) + 1);
  const StudyInstanceUID = [...studyCounts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]?.[0];
  const instances = all.filter((i) => i.header.StudyInstanceUID === StudyInstanceUID || (StudyInstanceUID === undefined && !i.header.StudyInstanceUID));

  const reports: SeriesReport[] = [];
  const candidates = new Map<Sequence, Candidate[]>();
  const groups = groupSeries(instances);
  const examProtocols = examLevelProtocols(groups.map((g) => g.header));
  for (const group of groups) {
    // An exam-level ProtocolName (GE) says nothing about this series: the classifier and usability never see it.
    const h = examProtocols.has(normaliseText(group.header.ProtocolName)) ? { ...group.header, ProtocolName: undefined } : group.header;
    const f0 = group.frames[0].frame;
    const cls = classifySeries({
      ...h,
      ImageType: f0.ImageType,
      EchoTime: f0.EchoTime ?? h.EchoTime,
      RepetitionTime: f0.RepetitionTime ?? h.RepetitionTime,
      InversionTime: f0.InversionTime ?? h.InversionTime,
      DiffusionBValue: group.bValue,
    });
    const report: SeriesReport = {
      SeriesInstanceUID: group.SeriesInstanceUID,
      key: group.key,
      SeriesNumber: h.SeriesNumber,
      SeriesDescription: h.SeriesDescription,
      bValue: group.bValue,
      frames: group.frames.length,
      sequence: cls.sequence,
      rule: cls.rule,
      contrastEnhanced: cls.contrastEnhanced,
      ...(group.frames.some((f) => hasLossyHistory(f.instance.header)) ? { lossyCompressed: true as const } : {}),
      used: false,
    };
    reports.push(report);
    const reason = unusableReason(
      { ...h, hasPixelData: group.frames.some((f) => f.instance.pixelLocation !== undefined) },
      cls,
    );
    if (reason) {
      report.reason = reason;
      continue;
    }
    if (!isEncoderSequence(cls.sequence) || !wanted.includes(cls.sequence)) {
      report.reason = 'unsupported-sequence';
      continue;
    }
    if (group.frames.some((f) => f.frame.ImageType.some((t) => t.toUpperCase() === 'MOSAIC'))) {
      // Siemens mosaic: many slices tiled in one image; its geometry needs the CSA header, which we do not read.
      report.reason = 'inconsistent-geometry';
      report.detail = 'Siemens MOSAIC images are not supported';
      continue;
    }
    const bLessDwi = cls.sequence === 'DWI' && group.bValue === undefined;
    const { frames, dropped } = framesForStack(group, cls.sequence);
    try {
      const stack = stackOfSeries({ ...group, frames }, stackOptions, bLessDwi);
      report.geometry = {
        plane: planeOf(stack.normal),
        slices: stack.items.length,
        rows: stack.rows,
        columns: stack.columns,
        sliceSpacingMm: stack.sliceSpacing,
        pixelSpacingMm: stack.pixelSpacing,
        notes: stack.notes,
      };
      dropped.push(...stackDrops(stack, frames, bLessDwi));
      if (dropped.length > 0) report.dropped = dropped;
      const list = candidates.get(cls.sequence) ?? [];
      list.push({ group, report, cls, stack, frames, bLessDwi });
      candidates.set(cls.sequence, list);
    } catch (e) {
      const u = asUnusable(e);
      report.reason = u.reason;
      report.detail = u.detail;
      if (dropped.length > 0) report.dropped = dropped;
      // Too few slices alone may still be part of a split acquisition: kept to be joined (or counted as unjoined).
      if (u.reason === 'too-few-slices') {
        try {
          // One slice is enough: the last slice given a new UID is a part too (join.ts takes the other part's spacing).
          const stack = stackOfSeries({ ...group, frames }, { ...stackOptions, minSlices: 1, minCoverageMm: 0 }, bLessDwi);
          const list = candidates.get(cls.sequence) ?? [];
          list.push({ group, report, cls, stack, frames, bLessDwi, fragment: true });
          candidates.set(cls.sequence, list);
        } catch {
          // not a stack at all: stays refused
        }
      }
    }
  }

  const volumes: StudyVolumes['volumes'] = {};
  const volumeInfo: StudyVolumes['volumeInfo'] = {};
  let decodeMs = 0;
  let preprocessMs = 0;
  for (const seq of wanted) {
    const list = joinParts(candidates.get(seq) ?? [], stackOptions).sort(compareCandidates);
    for (const c of list) {
      const reports = c.parts?.map((p) => p.report) ?? [c.report];
      if (volumes[seq]) {
        for (const r of reports) r.reason = 'not-selected';
        continue;
      }
      const tooLarge = overLimits(c.stack, limits);
      if (tooLarge) {
        for (const r of reports) {
          r.reason = 'too-large';
          r.detail = tooLarge;
        }
        continue;
      }
      try {
        const t0 = performance.now();
        const vol = await decodeStack(c.stack, decoder);
        const t1 = performance.now();
        const { volume, centreMm } = preprocessVolume(vol, c.stack, spec);
        preprocessMs += performance.now() - t1;
        decodeMs += t1 - t0;
        volumes[seq] = volume;
        volumeInfo[seq] = {
          key: c.report.key,
          SeriesInstanceUID: c.report.SeriesInstanceUID,
          centreMm,
          sourceShape: [vol.slices, vol.rows, vol.columns],
          source: sourceGeometry(c.stack, c.report.SeriesInstanceUID),
        };
        for (const p of c.parts ?? [c]) {
          p.report.used = true;
          // A used series is marked by the images its volume was made of (a lossy image left out does not count).
          const own = new Set(p.frames);
          if (c.stack.items.some((f) => own.has(f) && hasLossyHistory(f.instance.header))) p.report.lossyCompressed = true;
          else delete p.report.lossyCompressed;
        }
      } catch (e) {
        const u = asUnusable(e);
        for (const r of reports) {
          r.reason = u.reason;
          r.detail = u.detail;
        }
      }
    }
    const used = list.find((c) => c.report.used);
    if (used) noteUnjoinedParts(used, candidates.get(seq) ?? []);
  }
  return {
    StudyInstanceUID,
    volumes,
    volumeInfo,
    series: reports,
    missing: wanted.filter((s) => !volumes[s]),
    shape: [...spec.shape],
    spacingMm: [...spec.spacingMm],
    unreadable,
    otherStudyInstances: all.length - instances.length,
    timings: { readMs, parseMs, decodeMs, preprocessMs },
  };
}
