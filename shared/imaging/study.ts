// The top-level pipeline the worker and the volumes CLI both call: files of one study -> parsed instances ->
// series (split by b-value) -> classification and usability -> stacks -> the best series per sequence ->
// decoded, resampled onto the canonical grid and normalised. Every series is reported with what happened to it;
// a study with nothing usable returns no volumes and lists every sequence as missing, it does not throw.
import { readFile as fsReadFile } from 'node:fs/promises';
import { SEQUENCES, type Preprocessing, type Sequence } from '../model-manifest';
import { classifySeries, isEncoderSequence, unusableReason, type Classification } from './classifier';
import type { SeriesSequence } from './classifier-rules';
import { readInstance, type DicomInstance, type Vec3 } from './dicom-header';
import { DicomParseError, UnusableSeriesError, type UnusableReason } from './errors';
import { buildStack, DEFAULT_STACK_OPTIONS, type Stack, type StackNotes, type StackOptions } from './geometry';
import { percentileScale, zscoreForeground } from './intensity';
import { createPixelDecoder, isCompressed, type PixelDecoder } from './pixels';
import { foregroundCentroid, resampleToCanonical, volumeCentre, type SourceVolume } from './resample';
import { sourceGeometry, type SourceGeometry } from './locate';
import { groupSeries, type SeriesFrame, type SeriesGroup } from './series';

/** A file path, or bytes already in memory (name used in messages only). */
export type InstanceSource = string | { name: string; data: Uint8Array | ArrayBuffer };

export type Plane = 'axial' | 'sagittal' | 'coronal' | 'oblique';

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
  used: boolean;
  reason?: UnusableReason;
  detail?: string;
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
  unreadable: { file: string; detail: string }[];
  /** Instances of other studies mixed into the input, ignored. */
  otherStudyInstances: number;
  timings: { readMs: number; parseMs: number; decodeMs: number; preprocessMs: number };
}

export interface LoadOptions {
  /** Reuse one decoder per thread; created on demand otherwise. */
  decoder?: PixelDecoder;
  stack?: StackOptions;
  /** Sequences to produce (default: every sequence an encoder exists for). */
  sequences?: readonly Sequence[];
  readFile?: (path: string) => Promise<Uint8Array>;
}

interface Candidate {
  group: SeriesGroup;
  report: SeriesReport;
  cls: Classification;
  stack: Stack<SeriesFrame>;
}

export function planeOf(normal: Vec3): Plane {
  const a = normal.map(Math.abs);
  const m = Math.max(...a);
  if (m < 0.9) return 'oblique';
  return a[2] === m ? 'axial' : a[0] === m ? 'sagittal' : 'coronal';
}

/**
 * The preference among usable series of one sequence, best first (documented in docs/imaging.md):
 * pre-contrast, original (not derived, except ADC which always is), axial or thin-slice 3D, for DWI the b-value
 * nearest 1000, most slices, fewest gaps, the later series (a repeat usually replaces a degraded first try), key.
 */
export function compareCandidates(a: Candidate, b: Candidate): number {
  const derived = (c: Candidate) => (c.report.sequence !== 'ADC' && (c.group.header.ImageType[0] ?? '').toUpperCase() === 'DERIVED' ? 1 : 0);
  const planeRank = (c: Candidate) => (planeOf(c.stack.normal) === 'axial' || c.stack.sliceSpacing <= 1.5 ? 0 : 1);
  const bRank = (c: Candidate) => (c.report.sequence === 'DWI' ? Math.abs((c.report.bValue ?? 1000) - 1000) : 0);
  return (
    Number(a.cls.contrastEnhanced) - Number(b.cls.contrastEnhanced) ||
    derived(a) - derived(b) ||
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

/** Decodes the stack's frames into one float32 [slices, rows, columns] volume. */
export async function decodeStack(stack: Stack<SeriesFrame>, decoder: PixelDecoder): Promise<SourceVolume> {
  if (stack.items.some((f) => isCompressed(f.instance.header.TransferSyntaxUID))) await decoder.ready();
  const plane = stack.rows * stack.columns;
  const data = new Float32Array(plane * stack.items.length);
  stack.items.forEach((f, k) => {
    if (f.instance.header.Rows !== stack.rows || f.instance.header.Columns !== stack.columns) {
      throw new UnusableSeriesError('inconsistent-geometry', `${f.instance.file}: matrix differs from the stack`);
    }
    decoder.decodeFrameInto(f.instance, f.frame, data, k * plane);
  });
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

/** Files read at once per study. */
const READ_CONCURRENCY = 32;

async function readSources(files: readonly InstanceSource[], readFile: (p: string) => Promise<Uint8Array>) {
  const instances: DicomInstance[] = [];
  const unreadable: StudyVolumes['unreadable'] = [];
  let readMs = 0;
  let parseMs = 0;
  const t0 = performance.now();
  // A study can hold thousands of instances: read through a bounded pool (no EMFILE), in input order.
  const loaded: ({ name: string; data: Uint8Array | ArrayBuffer } | { name: string; error: string })[] = new Array(files.length);
  let next = 0;
  const readOne = async (): Promise<void> => {
    for (let i = next++; i < files.length; i = next++) {
      const f = files[i];
      if (typeof f !== 'string') loaded[i] = { name: f.name, data: f.data };
      else {
        try {
          loaded[i] = { name: f, data: await readFile(f) };
        } catch (e) {
          loaded[i] = { name: f, error: e instanceof Error ? e.message : String(e) };
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, files.length) }, readOne));
  readMs = performance.now() - t0;
  const t1 = performance.now();
  for (const l of loaded) {
    if ('error' in l) {
      unreadable.push({ file: l.name, detail: l.error });
      continue;
    }
    try {
      instances.push(readInstance(l.data, l.name));
    } catch (e) {
      unreadable.push({ file: l.name, detail: e instanceof DicomParseError ? e.message : String(e) });
    }
  }
  parseMs = performance.now() - t1;
  return { instances, unreadable, readMs, parseMs };
}

/**
 * Loads one study's canonical volumes. Never throws for bad data: unusable series carry a reason, unreadable
 * files are listed, and sequences without a usable series are `missing`.
 */
export async function loadStudyVolumes(files: readonly InstanceSource[], spec: Preprocessing, options: LoadOptions = {}): Promise<StudyVolumes> {
  const wanted = options.sequences ?? SEQUENCES;
  const decoder = options.decoder ?? createPixelDecoder();
  const stackOptions = options.stack ?? DEFAULT_STACK_OPTIONS;
  const { instances: all, unreadable, readMs, parseMs } = await readSources(files, options.readFile ?? ((p) => fsReadFile(p)));

  const studyCounts = new Map<string, number>();
  for (const i of all) if (i.header.StudyInstanceUID) studyCounts.set(i.header.StudyInstanceUID, (studyCounts.get(i.header.StudyInstanceUID) ?? 0) + 1);
  const StudyInstanceUID = [...studyCounts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]?.[0];
  const instances = all.filter((i) => i.header.StudyInstanceUID === StudyInstanceUID || (StudyInstanceUID === undefined && !i.header.StudyInstanceUID));

  const reports: SeriesReport[] = [];
  const candidates = new Map<Sequence, Candidate[]>();
  for (const group of groupSeries(instances)) {
    const h = group.header;
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
      used: false,
    };
    reports.push(report);
    const reason = unusableReason(
      { ...h, hasPixelData: group.frames.some((f) => f.instance.pixelData !== undefined) },
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
    try {
      const stack = stackOfSeries(group, stackOptions, bLessDwi);
      report.geometry = {
        plane: planeOf(stack.normal),
        slices: stack.items.length,
        rows: stack.rows,
        columns: stack.columns,
        sliceSpacingMm: stack.sliceSpacing,
        pixelSpacingMm: stack.pixelSpacing,
        notes: stack.notes,
      };
      const list = candidates.get(cls.sequence) ?? [];
      list.push({ group, report, cls, stack });
      candidates.set(cls.sequence, list);
    } catch (e) {
      const u = asUnusable(e);
      report.reason = u.reason;
      report.detail = u.message;
    }
  }

  const volumes: StudyVolumes['volumes'] = {};
  const volumeInfo: StudyVolumes['volumeInfo'] = {};
  let decodeMs = 0;
  let preprocessMs = 0;
  for (const seq of wanted) {
    const list = (candidates.get(seq) ?? []).sort(compareCandidates);
    for (const c of list) {
      if (volumes[seq]) {
        c.report.reason = 'not-selected';
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
        c.report.used = true;
      } catch (e) {
        const u = asUnusable(e);
        c.report.reason = u.reason;
        c.report.detail = u.message;
      }
    }
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
