// Study folder -> the worker's LoadedStudy, via shared/imaging (the same series classification, decoding and
// canonical resampling the training recipe uses). Runs inside a load-pool thread, or inline for offline scoring.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Preprocessing, Sequence } from '../../shared/model-manifest';
import { PermanentStudyError } from './errors';
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

export async function loadStudyFolder(studyDir: string, preprocessing: Preprocessing, sequences: Sequence[]): Promise<LoadedStudy> {
  const files = studyFiles(studyDir);
  void preprocessing;
  void sequences;
  throw new Error(`shared/imaging study loading not wired yet (${files.length} files)`);
}
