// Reads the canonical volumes the volumes CLI writes (VOLDIR/<Study>/<SEQ>.f32, float32 [D,H,W]) for the model
// CLIs. The study folder name is the StudyInstanceUID.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { float32FromLE } from '../../float32';
import { SEQUENCES, type Sequence } from '../../model-manifest';

export interface StudyVolumes {
  StudyInstanceUID: string;
  files: Partial<Record<Sequence, string>>;
}

export async function listStudies(voldir: string): Promise<StudyVolumes[]> {
  const out: StudyVolumes[] = [];
  for (const entry of (await readdir(voldir, { withFileTypes: true })).filter((e) => e.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const names = new Set(await readdir(path.join(voldir, entry.name)));
    const files: Partial<Record<Sequence, string>> = {};
    for (const seq of SEQUENCES) if (names.has(`${seq}.f32`)) files[seq] = path.join(voldir, entry.name, `${seq}.f32`);
    out.push({ StudyInstanceUID: entry.name, files });
  }
  return out;
}

export async function readF32(file: string): Promise<Float32Array> {
  return float32FromLE(await readFile(file), file);
}

export async function readStudy(study: StudyVolumes, only: readonly Sequence[]): Promise<Partial<Record<Sequence, Float32Array>>> {
  const out: Partial<Record<Sequence, Float32Array>> = {};
  for (const seq of only) {
    const f = study.files[seq];
    if (f) out[seq] = await readF32(f);
  }
  return out;
}
