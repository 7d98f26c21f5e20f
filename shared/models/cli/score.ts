// Scores every study of a volumes folder with a bundle through the service's own model layer (shared/models):
// one JSON line per study, {StudyInstanceUID, scores: {queryId: raw score}, ms}. Used by calibration (training
// recipe) and evaluation. Usage: node dist/shared/models/cli/score.js --bundle DIR --volumes VOLDIR --out FILE
import { createWriteStream } from 'node:fs';
import { loadModels, type Models } from '../index';
import type { Sequence, TriageQuery } from '../../model-manifest';
import { scoreStudy } from '../scoring';
import { parseOptions, runCli } from '../../cli-args';
import { listStudies, readStudy } from './volumes';

export interface StudyScores {
  StudyInstanceUID: string;
  scores: Record<string, number>;
  /** Image-encoder time for the study (all sequences), ms. */
  ms: number;
  /** Diagnostics: each sequence scored alone. */
  perSequence: Partial<Record<Sequence, Record<string, number>>>;
}

export function allQueries(models: Models): TriageQuery[] {
  const m = models.manifest;
  return m.normalQuery ? [...m.queries, m.normalQuery] : m.queries;
}

export async function scoreVolumes(models: Models, voldir: string, onStudy?: (s: StudyScores, i: number, n: number) => void): Promise<StudyScores[]> {
  const queries = await models.embedQueries(allQueries(models));
  const studies = await listStudies(voldir);
  const out: StudyScores[] = [];
  for (const [i, study] of studies.entries()) {
    const volumes = await readStudy(study, models.sequences);
    if (Object.keys(volumes).length === 0) continue;
    const t0 = performance.now();
    const images = await models.embedStudy(volumes);
    const ms = performance.now() - t0;
    const scores = Object.fromEntries(models.score(images, queries).map((s) => [s.id, s.score]));
    const perSequence = Object.fromEntries(
      Object.entries(images).map(([seq, v]) => [seq, Object.fromEntries(scoreStudy('mean-score', { [seq]: v }, queries).map((s) => [s.id, s.score]))]),
    );
    const row = { StudyInstanceUID: study.StudyInstanceUID, scores, ms, perSequence };
    out.push(row);
    onStudy?.(row, i, studies.length);
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseOptions({ bundle: { type: 'string', required: true }, volumes: { type: 'string', required: true }, out: { type: 'string', required: true }, threads: { type: 'string', default: '2' } });
  const models = await loadModels(args.bundle, { executionProviders: ['cpu'], threads: Number(args.threads) });
  const out = createWriteStream(args.out);
  const rows = await scoreVolumes(models, args.volumes, (row, i, n) => {
    out.write(JSON.stringify(row) + '\n');
    if ((i + 1) % 50 === 0 || i + 1 === n) console.log(`scored ${i + 1}/${n} studies`);
  });
  await new Promise<void>((resolve) => out.end(resolve));
  await models.close();
  console.log(`wrote ${rows.length} studies to ${args.out}`);
}

if (require.main === module) runCli(main);
