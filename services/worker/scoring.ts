// The worker's study-level rules, as pure functions: per-query findings (combined and per sequence), study priority
// (the one decision rule of shared/models/decision.ts),
// confidence when sequences are missing, abnormal probability and the vector kept for retrieval. The similarity
// maths itself (cosine, negativeText contrast, manifest.combination, Platt calibration, threshold) is
// shared/models/scoring.ts, the same code the evaluation calibrated with. docs/worker.md states the rules.
import { l2normalize, scoredSentences } from '../../shared/models/scoring';
import { scoreStudy as scoreQueries, type QueryScore, type QueryVectors } from '../../shared/models';
import type { Manifest, Priority, Sequence, TriageQuery } from '../../shared/model-manifest';
import { decideStudy, findingProbability, queryThreshold, querySetVersion, type ClassThresholds } from '../../shared/models/decision';
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
  return queries.map((query) => {
    const { positive, contrast } = scoredSentences(query);
    return { query, text: get(positive), ...(contrast ? { negative: get(contrast) } : {}) };
  });
}

/** What a study is judged with beyond the queries: the image model's version and the class thresholds. */
export interface Judging {
  bundleVersion: string;
  classThresholds: ClassThresholds;
  /** The bundle's sequences; with them, findings say which missing sequences they wait for (partial studies). */
  modelSequences?: readonly Sequence[];
  /** Judge as final: nothing is held back for missing sequences (no wait configured, or the wait expired). */
  final?: boolean;
}

/**
 * The bundle's sequences a query reads on: those of its `sequences` the bundle has an encoder for, else all (the
 * scoring rule: a query naming only sequences the bundle cannot read is scored on every sequence present).
 */
export function readsOn(query: Pick<TriageQuery, 'sequences'>, modelSequences: readonly Sequence[]): Sequence[] {
  const own = query.sequences ? modelSequences.filter((s) => query.sequences!.includes(s)) : [];
  return own.length > 0 ? own : [...modelSequences];
}

/**
 * Partial-study facts of one query on this study: the sequences it reads on that the study lacks (STAT/URGENT
 * queries only: they are what could raise the priority later), whether it was scored on other sequences because
 * the study has none of its own (fallback), and whether it is held back from setting the priority (a fallback
 * finding of a result that is not final).
 */
export function partialFacts(query: TriageQuery, present: readonly Sequence[], judging: Pick<Judging, 'modelSequences' | 'final'>): { waitingFor: Sequence[]; fallback: boolean; held: boolean } {
  const fallback = query.sequences !== undefined && !query.sequences.some((s) => present.includes(s));
  const waitingFor = query.priority === 'ROUTINE' || !judging.modelSequences ? [] : readsOn(query, judging.modelSequences).filter((s) => !present.includes(s));
  return { waitingFor, fallback, held: !judging.final && fallback && waitingFor.length > 0 };
}

/**
 * One finding per query: the combined score (manifest.combination over the query's sequences present), its
 * calibrated probability, the threshold it is judged with and the flag (shared/models/decision.ts), and the same
 * query's score on each sequence alone for the radiologist's view. A query whose calibration is missing or stale
 * gets probability null and is never flagged; `calibration` says why.
 */
export function findings(embeddings: SequenceEmbeddings, qvs: QueryVectors[], combination: Combination, judging: Judging): FindingScore[] {
  const seqs = availableSequences(embeddings);
  const combined = scoreQueries(combination, embeddings, qvs);
  const perSequence = seqs.map((s) => [s, scoreQueries(combination, { [s]: embeddings[s] }, qvs)] as const);
  const judged = qvs.map((qv, i) => {
    const t = queryThreshold(qv.query, judging.bundleVersion, judging.classThresholds);
    return { t, probability: findingProbability(qv.query, combined[i].score, t), partial: partialFacts(qv.query, seqs, judging) };
  });
  const decision = decideStudy(
    qvs.map((qv, i) => ({ priority: qv.query.priority, probability: judged[i].probability, threshold: judged[i].t.threshold, held: judged[i].partial.held })),
  );
  return qvs.map((qv, i) => {
    const c: QueryScore = combined[i];
    const bySequence: Partial<Record<Sequence, number>> = {};
    for (const [s, scores] of perSequence) bySequence[s] = scores[i].score;
    return {
      queryId: qv.query.id,
      text: qv.query.text,
      priority: qv.query.priority,
      similarity: c.score,
      probability: judged[i].probability,
      threshold: judged[i].t.threshold,
      flagged: decision.flagged[i],
      triggered: decision.triggered[i],
      calibration: judged[i].t.state,
      bySequence,
      ...(judged[i].partial.waitingFor.length > 0 ? { waitingFor: judged[i].partial.waitingFor } : {}),
      ...(judged[i].partial.fallback ? { fallback: true } : {}),
      ...(judged[i].partial.held ? { held: true } : {}),
    };
  });
}

/** Study priority and the order within it, from judged findings (decision.ts). */
export function studyPriority(fs: Pick<FindingScore, 'priority' | 'probability' | 'threshold' | 'held'>[]): { priority: Priority; priorityProbability: number | null } {
  const d = decideStudy(fs);
  return { priority: d.priority, priorityProbability: d.priorityProbability };
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
  priorityProbability: number | null;
  querySetVersion: string;
  findings: FindingScore[];
  abnormalProbability: number | null;
  confidence: number;
  sequencesUsed: Sequence[];
  sequencesMissing: Sequence[];
  combined: Float32Array;
  /** STAT/URGENT findings wait for these missing sequences (empty: the result is final). */
  waitingFor: Sequence[];
}

/**
 * Scores a study against the queries. The normal-study query (manifest.normalQuery, a sentence describing a
 * normal examination) gives abnormalProbability = 1 - P(normal); it never sets priority.
 */
export function scoreStudy(
  embeddings: SequenceEmbeddings,
  queries: readonly TriageQuery[],
  vectors: TextVectors,
  opts: { combination: Combination; modelSequences: readonly Sequence[]; normalQuery?: TriageQuery } & Judging,
): StudyScore {
  const sequencesUsed = availableSequences(embeddings);
  if (sequencesUsed.length === 0) throw new Error('scoreStudy needs at least one sequence');
  const fs = queries.length > 0 ? findings(embeddings, queryVectors(queries, vectors), opts.combination, opts) : [];
  const waitingFor = opts.final ? [] : opts.modelSequences.filter((s) => fs.some((f) => f.waitingFor?.includes(s)));
  const decided = studyPriority(fs);
  let abnormalProbability: number | null = null;
  if (opts.normalQuery?.calibration) {
    const [normal] = scoreQueries(opts.combination, embeddings, queryVectors([opts.normalQuery], vectors));
    abnormalProbability = normal.probability === undefined ? null : 1 - normal.probability;
  }
  return {
    priority: decided.priority,
    priorityProbability: decided.priorityProbability,
    querySetVersion: querySetVersion(opts.bundleVersion, queries, new Map(fs.map((f) => [f.queryId, f.threshold]))),
    findings: fs,
    abnormalProbability,
    confidence: confidence(sequencesUsed, opts.modelSequences),
    sequencesUsed,
    sequencesMissing: opts.modelSequences.filter((s) => !sequencesUsed.includes(s)),
    combined: combinedVector(embeddings),
    waitingFor,
  };
}

/** Every sentence scoring needs embedded: query texts, contrast texts and the normal query's. */
export function sentencesOf(queries: readonly TriageQuery[], normalQuery?: TriageQuery): string[] {
  const all = [...queries, ...(normalQuery ? [normalQuery] : [])].flatMap((q) => {
    const { positive, contrast } = scoredSentences(q);
    return [positive, ...(contrast ? [contrast] : [])];
  });
  return [...new Set(all)];
}
