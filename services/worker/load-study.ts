// Study folder -> the worker's LoadedStudy, via shared/imaging's loadStudyVolumes (the same series
// classification, decoding and canonical resampling the training recipe uses). Runs inside a loader process
// (load-pool.ts), or inline for tests. shared/imaging never throws for bad data; the worker's policy is here:
// a study with no usable volume is a permanent failure ('failed') or not something we score ('unsupported'); an
// instance that cannot be read or decoded fails its study when the volume it belongs to would be scored (or its
// series cannot be told); images left out of a scored volume are listed and lower the study's completeness.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  createPixelDecoder, INCOMPLETE_DROP_REASONS, isEncoderSequence, loadStudyVolumes,
  type PixelDecoder, type SeriesReport, type StudyVolumes, type UnreadableFile,
} from '../../shared/imaging';
import type { Preprocessing, Sequence } from '../../shared/model-manifest';
import type { DroppedImages, SeriesOutcome } from '../../shared/results';
import { outcomeFor, PermanentStudyError } from './errors';
import type { LoadedStudy } from './ports';

/** Every regular file below the study folder (the listener stores <Series>/<SOP>.dcm; offline folders vary). */
export function studyFiles(studyDir: string): string[] {
  if (!existsSync(studyDir) || !statSync(studyDir).isDirectory()) {
    throw new PermanentStudyError('the study folder does not exist (instances deleted before scoring?)', 'study-missing');
  }
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && !e.name.startsWith('.')) out.push(p);
    }
  };
  walk(studyDir);
  return out.sort();
}

/** One series' line in the result: its sequence, whether used, why not, images left out, the series joined with it, post-contrast, lossy history. */
export function seriesOutcome(r: SeriesReport, unreadable: number): SeriesOutcome {
  const label = r.bValue !== undefined && r.sequence === 'DWI' ? `${r.sequence} b=${r.bValue}` : r.sequence;
  const dropped: DroppedImages[] = [...(r.dropped ?? []), ...(unreadable > 0 ? [{ images: unreadable, reason: 'unreadable' as const }] : [])];
  return {
    SeriesInstanceUID: r.SeriesInstanceUID,
    ...(r.SeriesNumber !== undefined ? { SeriesNumber: r.SeriesNumber } : {}),
    sequence: label,
    used: r.used,
    ...(r.reason ? { reason: r.detail ? `${r.reason}: ${r.detail}`.slice(0, 300) : r.reason } : {}),
    ...(dropped.length > 0 ? { dropped } : {}),
    ...(r.joinedWith?.length ? { joinedWith: [...r.joinedWith] } : {}),
    ...(r.contrastEnhanced ? { contrastEnhanced: true as const } : {}),
    ...(r.lossyCompressed ? { lossyCompressed: true as const } : {}),
  };
}

const UID = /^[0-9]+(\.[0-9]+)*$/;

/** The listener stores <study>/<SeriesInstanceUID>/<SOP>.dcm: a file's series is its folder's name. */
function seriesOfFile(studyDir: string, file: string): string | undefined {
  const parts = path.relative(studyDir, file).split(path.sep);
  return parts.length === 2 && UID.test(parts[0]) ? parts[0] : undefined;
}

/**
 * Unreadable DICOM files that stop the study: those in a series whose volume is used, or in a series that cannot
 * be told (no readable sibling, or not in the listener's layout). The others are counted on their series.
 * Files that are not DICOM at all (a stray file in an offline folder) are ignored.
 */
function triageUnreadable(studyDir: string, unreadable: readonly UnreadableFile[], series: readonly SeriesReport[]) {
  const blocking: (UnreadableFile & { series?: SeriesReport })[] = [];
  const counted = new Map<string, number>();
  for (const u of unreadable) {
    if (u.kind === 'not-dicom') continue;
    const uid = seriesOfFile(studyDir, u.file);
    const reports = uid ? series.filter((r) => r.SeriesInstanceUID === uid) : [];
    if (reports.length === 0 || reports.some((r) => r.used)) blocking.push({ ...u, series: reports.find((r) => r.used) });
    else counted.set(uid!, (counted.get(uid!) ?? 0) + 1);
  }
  return { blocking, counted };
}

/** Images in the used series' volumes, and images left out of them that the series did not mean to leave out. */
export function imageCounts(outcomes: readonly SeriesOutcome[], reports: readonly SeriesReport[]): { kept: number; missing: number } {
  let kept = 0;
  let missing = 0;
  for (const r of reports) {
    if (!r.used) continue;
    kept += r.geometry?.slices ?? 0;
    const o = outcomes.find((x) => x.SeriesInstanceUID === r.SeriesInstanceUID && x.used);
    for (const d of o?.dropped ?? []) if ((INCOMPLETE_DROP_REASONS as readonly string[]).includes(d.reason)) missing += d.images;
  }
  return { kept, missing };
}

/** Kept images / (kept + images left out that the series did not mean to leave out), over the used series. */
export function completeness(outcomes: readonly SeriesOutcome[], reports: readonly SeriesReport[]): number {
  return completenessOf(imageCounts(outcomes, reports));
}

function completenessOf({ kept, missing }: { kept: number; missing: number }): number {
  return kept + missing === 0 ? 1 : kept / (kept + missing);
}

/** Why a study gave no volume for any of the bundle's sequences, as a permanent error. */
export function noVolumeError(v: Pick<StudyVolumes, 'series' | 'unreadable'>, sequences: readonly Sequence[], files: number): PermanentStudyError {
  if (files === 0) return new PermanentStudyError('the study folder holds no files', 'study-empty');
  if (v.series.length === 0) {
    const reason = v.unreadable.some((u) => u.kind === 'too-large') ? 'too-large' : 'corrupt';
    const first = v.unreadable[0];
    return new PermanentStudyError(`none of the ${v.unreadable.length} files is readable DICOM${first ? ` (${path.basename(first.file)}: ${first.detail})` : ''}`.slice(0, 500), reason);
  }
  // A series of a sequence we score that could not be used: its reason says whether the data is broken
  // (corrupt, geometry) or out of scope (not MR, not head).
  const broken = v.series.find((s) => isEncoderSequence(s.sequence) && sequences.includes(s.sequence) && s.reason && s.reason !== 'not-selected');
  if (broken) {
    return new PermanentStudyError(`no usable volume: ${broken.sequence} series ${broken.SeriesNumber ?? ''} is ${broken.reason}${broken.detail ? ` (${broken.detail})` : ''}`, broken.reason!, outcomeFor(broken.reason!));
  }
  const seen = [...new Set(v.series.map((s) => s.sequence))].join(', ');
  return new PermanentStudyError(`no scorable sequence: the models take ${sequences.join(', ')}; the study has ${seen}`, 'no-scorable-sequence', 'unsupported');
}

function describe(r: SeriesReport | undefined): string {
  return r ? ` in series ${r.SeriesNumber ?? '?'} (${r.sequence})` : '';
}

/** A loader with its own pixel decoder (codec WebAssembly is loaded once per process, on first use). */
export function createFolderLoader(): (studyDir: string, preprocessing: Preprocessing, sequences: Sequence[]) => Promise<LoadedStudy> {
  let decoder: PixelDecoder | undefined;
  return async (studyDir, preprocessing, sequences) => {
    const files = studyFiles(studyDir);
    decoder ??= createPixelDecoder();
    const v = await loadStudyVolumes(files, preprocessing, { decoder, sequences });
    const { blocking, counted } = triageUnreadable(studyDir, v.unreadable, v.series);
    if (blocking.length > 0 && v.series.length > 0) {
      const first = blocking[0];
      throw new PermanentStudyError(
        `${blocking.length} instance(s) cannot be read${describe(first.series)}: ${path.basename(first.file)}: ${first.detail}`.slice(0, 500),
        first.kind === 'too-large' ? 'too-large' : 'corrupt',
      );
    }
    // A scored sequence whose series would not decode and that got no volume from another series of it (the loader
    // tries the next one, docs/imaging.md): its instances are damaged, the study is not scored. A damaged repeat
    // beside an intact series that was used is listed with its reason instead.
    const undecodable = v.series.find((r) => r.reason === 'corrupt' && isEncoderSequence(r.sequence) && sequences.includes(r.sequence) && !v.volumes[r.sequence]);
    if (undecodable) {
      throw new PermanentStudyError(`an instance cannot be decoded${describe(undecodable)}: ${undecodable.detail ?? ''}`.slice(0, 500), 'corrupt');
    }
    if (Object.keys(v.volumes).length === 0) throw noVolumeError(v, sequences, files.length);
    const firstOfSeries = new Set<string>();
    const series = v.series.map((r) => {
      const first = !firstOfSeries.has(r.SeriesInstanceUID);
      firstOfSeries.add(r.SeriesInstanceUID);
      return seriesOutcome(r, first ? counted.get(r.SeriesInstanceUID) ?? 0 : 0);
    });
    const counts = imageCounts(series, v.series);
    return {
      StudyInstanceUID: v.StudyInstanceUID,
      volumes: v.volumes,
      series,
      completeness: completenessOf(counts),
      keptImages: counts.kept,
      geometry: Object.fromEntries(Object.entries(v.volumeInfo).map(([seq, info]) => [seq, { centreMm: info!.centreMm, source: info!.source }])),
      timingsMs: { decode: v.timings.readMs + v.timings.parseMs + v.timings.decodeMs, preprocess: v.timings.preprocessMs },
    };
  };
}
