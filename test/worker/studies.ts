// Synthetic studies for the worker's tests and benchmark, made in-process with tools/synth, and compressed copies
// made with DCMTK (the transfer syntaxes the listener accepts).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { drawFindingTypes } from '../../tools/synth/anatomy';
import { Rng } from '../../tools/synth/prng';
import { generateStudy } from '../../tools/synth/study';
import type { FindingType, GeneratedStudy, SynthOptions } from '../../tools/synth/types';

/**
 * The first study index (from `from`) whose findings are exactly `want` (empty: a normal study). Uses the synth
 * library's own draw, so no study has to be rendered to find one; callers check the generated labels.
 */
export function findStudyIndex(seed: number, want: FindingType[], normalFraction = 0.5, from = 0): number {
  for (let i = from; i < from + 500; i++) {
    const types = drawFindingTypes(new Rng(seed, i, 'findings', normalFraction), normalFraction);
    if (types.length === want.length && want.every((t) => types.includes(t))) return i;
  }
  throw new Error(`no study with findings [${want.join(', ')}] in 500 draws of seed ${seed}`);
}

export function synthStudy(seed: number, index: number, options: Partial<SynthOptions> = {}): GeneratedStudy {
  return generateStudy(seed, index, { normalFraction: 0.5, ...options });
}

/** The finding types the generator's ground truth gives the study. */
export function findingTypes(study: GeneratedStudy): string[] {
  return (study.labels.findings ?? []).map((f) => f.type);
}

const CODECS: { tool: string; args: string[] }[] = [
  { tool: 'dcmcjpeg', args: ['+e1'] }, // JPEG Lossless, Process 14 SV1
  { tool: 'dcmcjpls', args: ['+el'] }, // JPEG-LS lossless
  { tool: 'dcmcrle', args: [] }, // RLE Lossless
];

/** Copies every .dcm file below `from` into `to`, compressed losslessly, cycling through the three codecs. */
export function compressStudy(from: string, to: string): void {
  let n = 0;
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(from, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else if (e.name.endsWith('.dcm')) {
        mkdirSync(path.join(to, rel), { recursive: true });
        const { tool, args } = CODECS[n++ % CODECS.length];
        execFileSync(tool, [...args, path.join(from, r), path.join(to, r)], { env: { ...process.env, TCP_NODELAY: '1' }, stdio: 'pipe' });
      }
    }
  };
  walk('');
}
