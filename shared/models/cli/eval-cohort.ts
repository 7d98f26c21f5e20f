// A synthetic cohort as the evaluation reads it: made once (npm run synth + npm run volumes, reused when present),
// then every study's image vectors by sequence from the bundle's encoders (as the worker computes them), its
// ground-truth labels (read here, on the evaluation side only) and its report text.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Sequence } from '../../model-manifest';
import type { Models } from '../index';
import { readLabels, type Label } from './calibrate';
import { listStudies, readStudy } from './volumes';

export interface CohortStudy {
  StudyInstanceUID: string;
  images: Partial<Record<Sequence, Float32Array>>;
  label: Label;
  report: string;
  /** Image-encoder time for the study (all its sequences), ms. */
  ms: number;
}

export interface CohortSpec {
  dir: string;
  n: number;
  seed: number;
  phrasing: 'train' | 'heldout';
  scanners: 'train' | 'heldout';
  synthArgs: string[];
  /** Preprocessing spec for the volumes CLI (the bundle's manifest.json). */
  spec: string;
}

function run(cmd: string, args: string[]): void {
  console.log(`$ ${cmd} ${args.join(' ')}`);
  execFileSync(cmd, args, { stdio: 'inherit' });
}

/** Generates the cohort's DICOM, reports, labels and canonical volumes unless they are there already. */
export function makeCohort(c: CohortSpec): void {
  if (existsSync(path.join(c.dir, 'vol')) && existsSync(path.join(c.dir, 'labels.jsonl'))) {
    console.log(`reusing cohort ${c.dir}`);
    return;
  }
  run('npm', ['run', '--silent', 'synth', '--', '--n', String(c.n), '--seed', String(c.seed), '--out', c.dir, '--phrasing-set', c.phrasing, '--scanner-set', c.scanners, ...c.synthArgs]);
  run('npm', ['run', '--silent', 'volumes', '--', path.join(c.dir, 'dicom'), '--out', path.join(c.dir, 'vol'), '--spec', c.spec]);
}

/** Every study of the cohort with labels and a report, embedded by the bundle's image encoders. */
export async function embedCohort(models: Models, dir: string, progress = 'studies'): Promise<CohortStudy[]> {
  const labels = readLabels(path.join(dir, 'labels.jsonl'));
  const reports = new Map<string, string>(
    readFileSync(path.join(dir, 'reports.jsonl'), 'utf8').split('\n').filter(Boolean)
      .map((l) => JSON.parse(l) as { StudyInstanceUID: string; text: string })
      .map((r) => [r.StudyInstanceUID, r.text]),
  );
  const studies = await listStudies(path.join(dir, 'vol'));
  const out: CohortStudy[] = [];
  for (const [i, s] of studies.entries()) {
    const label = labels.get(s.StudyInstanceUID);
    const volumes = await readStudy(s, models.sequences);
    if (!label || Object.keys(volumes).length === 0) continue;
    const t0 = performance.now();
    const images = await models.embedStudy(volumes);
    out.push({ StudyInstanceUID: s.StudyInstanceUID, images, label, report: reports.get(s.StudyInstanceUID) ?? '', ms: performance.now() - t0 });
    if ((i + 1) % 100 === 0 || i + 1 === studies.length) console.log(`embedded ${i + 1}/${studies.length} ${progress}`);
  }
  return out;
}
