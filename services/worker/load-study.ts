// Study folder -> the worker's LoadedStudy, via shared/imaging's loadStudyVolumes (the same series
// classification, decoding and canonical resampling the training recipe uses). Runs inside a load-pool thread,
// or inline for offline scoring. shared/imaging never throws for bad data; deciding that a study with no usable
// volume is a permanent failure ('failed') or simply not something we score ('unsupported') happens here.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { createPixelDecoder, isEncoderSequence, loadStudyVolumes, type PixelDecoder, type SeriesReport, type StudyVolumes } from '../../shared/imaging';
import type { Preprocessing, Sequence } from '../../shared/model-manifest';
import type { SeriesOutcome } from '../../shared/results';
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

function seriesOutcome(r: SeriesReport): SeriesOutcome {
  const label = r.bValue !== undefined && r.sequence === 'DWI' ? `${r.sequence} b=${r.bValue}` : r.sequence;
  return {
    SeriesInstanceUID: r.SeriesInstanceUID,
    ...(r.SeriesNumber !== undefined ? { SeriesNumber: r.SeriesNumber } : {}),
    sequence: label,
    used: r.used,
    ...(r.reason ? { reason: r.detail ? `${r.reason}: ${r.detail}`.slice(0, 300) : r.reason } : {}),
  };
}

/** Why a study gave no volume for any of the bundle's sequences, as a permanent error. */
export function noVolumeError(v: Pick<StudyVolumes, 'series' | 'unreadable'>, sequences: readonly Sequence[], files: number): PermanentStudyError {
  if (files === 0) return new PermanentStudyError('the study folder holds no files', 'study-empty');
  if (v.series.length === 0) {
    return new PermanentStudyError(`none of the ${v.unreadable.length} files is readable DICOM: ${v.unreadable[0]?.detail ?? ''}`.trim(), 'corrupt');
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

/** A loader with its own pixel decoder (codec WebAssembly is loaded once per thread, on first use). */
export function createFolderLoader(): (studyDir: string, preprocessing: Preprocessing, sequences: Sequence[]) => Promise<LoadedStudy> {
  let decoder: PixelDecoder | undefined;
  return async (studyDir, preprocessing, sequences) => {
    const files = studyFiles(studyDir);
    decoder ??= createPixelDecoder();
    const v = await loadStudyVolumes(files, preprocessing, { decoder, sequences });
    if (Object.keys(v.volumes).length === 0) throw noVolumeError(v, sequences, files.length);
    return {
      StudyInstanceUID: v.StudyInstanceUID,
      volumes: v.volumes,
      series: v.series.map(seriesOutcome),
      geometry: Object.fromEntries(Object.entries(v.volumeInfo).map(([seq, info]) => [seq, { centreMm: info!.centreMm, source: info!.source }])),
      timingsMs: { decode: v.timings.readMs + v.timings.parseMs + v.timings.decodeMs, preprocess: v.timings.preprocessMs },
    };
  };
}
