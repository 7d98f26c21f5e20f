// The worker's study-level rules, as pure functions: per-query findings (combined and per sequence), study priority,
// confidence when sequences are missing, abnormal probability and the vector kept for retrieval. The similarity
// maths itself (cosine, negativeText contrast, manifest.combination, Platt calibration, threshold) is
// shared/models/scoring.ts, the same code the evaluation calibrated with. docs/worker.md states the rules.
import { l2normalize } from '../../shared/models/scoring';
import { scoreStudy as scoreQueries, type QueryScore, type QueryVectors } from '../../shared/models';
import { PRIORITIES, type Manifest, type Priority, type Sequence, type TriageQuery } from '../../shared/model-manifest';
import type { FindingScore } from '../../shared/results';

export type Combination = Manifest['combination'];
export type SequenceEmbeddings = Partial<Record<Sequence, Float32Array>>;
/** Text vectors by sentence (from the text encoder, cached by query-vectors.ts). */
export type TextVectors = ReadonlyMap<string, Float32Array>;

export function availableSequences(embeddings: SequenceEmbeddings): Sequence[] {
  return (Object.keys(embeddings) as Sequence[]).filter((s) => embeddings[s] !== undefined).sort();
}

/** Pairs each query with its sentence vectors; throws when a sentence was not embedded (a programming error). */
export function queryVectors(queries: readonly TriageQuery[], vectors: TextVectors): QueryVectors[] {
  const get = (text: string) => {
    const v = vectors.get(text);
    if (!v) throw new Error('a query sentence has no text vector (embed queries before scoring)');
    return v;
  };
  return queries.map((query) => ({ query, text: get(query.text), ...(query.negativeText ? { negative: get(query.negativeText) } : {}) }));
}

/**
 * One finding per query: the combined score (manifest.combination over the sequences present), its calibrated
 * probability and flag, and the same query's score on each sequence alone for the radiologist's view.
 * Uncalibrated queries (no threshold) get probability null and are never flagged.
 */
export function findings(embeddings: SequenceEmbeddings, qvs: QueryVectors[], combination: Combination): FindingScore[] {
  const seqs = availableSequences(embeddings);
  const combined = scoreQueries(combination, embeddings, qvs);
  const perSequence = seqs.map((s) => [s, scoreQueries(combination, { [s]: embeddings[s] }, qvs)] as const);
  return qvs.map((qv, i) => {
    const c: QueryScore = combined[i];
    const bySequence: Partial<Record<Sequence, number>> = {};
    for (const [s, scores] of perSequence) bySequence[s] = scores[i].score;
    return {
      queryId: qv.query.id,
      text: qv.query.text,
      priority: qv.query.priority,
      similarity: c.score,
      probability: c.probability ?? null,
      flagged: c.flagged ?? false,
      bySequence,
    };
  });
}

/** Study priority: the most urgent class among flagged findings (STAT > URGENT > ROUTINE), else ROUTINE. */
export function studyPriority(fs: Pick<FindingScore, 'priority' | 'flagged'>[]): Priority {
  let best = PRIORITIES.indexOf('ROUTINE');
  for (const f of fs) if (f.flagged) best = Math.min(best, PRIORITIES.indexOf(f.priority));
  return PRIORITIES[best];
}

/** Fraction of the bundle's sequences the study supplied: 1 when all were there. */
export function confidence(used: readonly Sequence[], modelSequences: readonly Sequence[]): number {
  if (modelSequences.length === 0) return 0;
  return used.filter((s) => modelSequences.includes(s)).length / modelSequences.length;
}

/** Unit-length mean of the sequences' vectors, what shared/models' "mean-embedding" compares (cosine ignores scale). */
export function combinedVector(embeddings: SequenceEmbeddings): Float32Array {
  const vs = availableSequences(embeddings).map((s) => embeddings[s]!);
  if (vs.length === 0) throw new Error('combinedVector of no sequences');
  const mean = new Float32Array(vs[0].length);
  for (const v of vs) for (let i = 0; i < v.length; i++) mean[i] += v[i] / vs.length;
  return l2normalize(mean);
}

export interface StudyScore {
  priority: Priority;
  findings: FindingScore[];
  abnormalProbability: number | null;
  confidence: number;
  sequencesUsed: Sequence[];
  sequencesMissing: Sequence[];
  combined: Float32Array;
}

/**
 * Scores a study against the queries. The normal-study query (manifest.normalQuery, a sentence describing a
 * normal examination) gives abnormalProbability = 1 - P(normal); it never sets priority.
 */
export function scoreStudy(
  embeddings: SequenceEmbeddings,
  queries: readonly TriageQuery[],
  vectors: TextVectors,
  opts: { combination: Combination; modelSequences: readonly Sequence[]; normalQuery?: TriageQuery },
): StudyScore {
  const sequencesUsed = availableSequences(embeddings);
  if (sequencesUsed.length === 0) throw new Error('scoreStudy needs at least one sequence');
  const fs = queries.length > 0 ? findings(embeddings, queryVectors(queries, vectors), opts.combination) : [];
  let abnormalProbability: number | null = null;
  if (opts.normalQuery?.calibration) {
    const [normal] = scoreQueries(opts.combination, embeddings, queryVectors([opts.normalQuery], vectors));
    abnormalProbability = normal.probability === undefined ? null : 1 - normal.probability;
  }
  return {
    priority: studyPriority(fs),
    findings: fs,
    abnormalProbability,
    confidence: confidence(sequencesUsed, opts.modelSequences),
    sequencesUsed,
    sequencesMissing: opts.modelSequences.filter((s) => !sequencesUsed.includes(s)),
    combined: combinedVector(embeddings),
  };
}

/** Every sentence scoring needs embedded: query texts, contrast texts and the normal query's. */
export function sentencesOf(queries: readonly TriageQuery[], normalQuery?: TriageQuery): string[] {
  const all = [...queries, ...(normalQuery ? [normalQuery] : [])].flatMap((q) => [q.text, ...(q.negativeText ? [q.negativeText] : [])]);
  return [...new Set(all)];
}
