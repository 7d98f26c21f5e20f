// Pure scoring maths shared by the worker and the evaluation: cosine similarity, combination of per-sequence
// image vectors (manifest.combination, over the query's own sequences when it names them), query scores (cos(image, text) - cos(image, negativeText)) and Platt
// calibration into a probability and a flag (probability >= the calibrated probability threshold).
import type { Manifest, Sequence, TriageQuery } from '../model-manifest';
import { deniesOnly, reportSentences } from '../language/sentences';
import { plattProbability } from './calibration';

export function l2normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const n = Math.sqrt(s) || 1;
  return v.map((x) => x / n);
}

export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / (Math.sqrt(na * nb) || 1);
}

export interface QueryVectors {
  query: TriageQuery;
  text: Float32Array;
  negative?: Float32Array;
}

/**
 * The two sentences a query is scored with: score = cos(image, positive) - cos(image, contrast). A query that only
 * states absence ("No haemorrhage.") asks for the studies without the finding it names, so its contrast sentence
 * (the normal-study sentence by default) is the positive side and the finding, without the denial, the contrast:
 * a mean-pooled sentence vector carries the finding's words, not the "no" before them. Without a contrast the
 * sentence is scored as written.
 */
export function scoredSentences(q: Pick<TriageQuery, 'text' | 'negativeText'>): { positive: string; contrast?: string } {
  if (q.negativeText && deniesOnly(q.text)) return { positive: q.negativeText, contrast: reportSentences(q.text).map((c) => c.about).join('. ') };
  return { positive: q.text, ...(q.negativeText ? { contrast: q.negativeText } : {}) };
}

export interface QueryScore {
  id: string;
  priority: TriageQuery['priority'];
  /** Raw score: cosine, or cosine difference when the query has negativeText. */
  score: number;
  /** Calibrated probability, when the query has calibration. */
  probability?: number;
  /** probability >= calibration.threshold (a probability). The worker judges with decision.ts instead, which also
   *  knows class thresholds and stale calibrations; this is the bundle-only view the evaluation uses. */
  flagged?: boolean;
}

/** A query's raw score on one image vector: cos(image, text) - cos(image, negativeText) (second term when it has one). */
export function rawScore(image: Float32Array, q: Pick<QueryVectors, 'text' | 'negative'>): number {
  return cosine(image, q.text) - (q.negative ? cosine(image, q.negative) : 0);
}

function combinedScore(combination: Manifest['combination'], vectors: Float32Array[], q: QueryVectors): number {
  if (combination === 'mean-score') return vectors.reduce((s, v) => s + rawScore(v, q), 0) / vectors.length;
  const mean = new Float32Array(vectors[0].length);
  for (const v of vectors) for (let i = 0; i < v.length; i++) mean[i] += v[i] / vectors.length;
  return rawScore(mean, q);
}

/**
 * The vectors a query is scored on: those of its `sequences` the study has, else every sequence present (a study
 * without DWI still gets an infarct score, from what it has; its confidence already says sequences are missing).
 */
export function vectorsFor(images: Partial<Record<Sequence, Float32Array>>, query: Pick<TriageQuery, 'sequences'>): Float32Array[] {
  const present = (Object.entries(images) as [Sequence, Float32Array | undefined][]).filter((e): e is [Sequence, Float32Array] => e[1] !== undefined);
  const wanted = query.sequences ? present.filter(([s]) => query.sequences!.includes(s)) : [];
  return (wanted.length > 0 ? wanted : present).map(([, v]) => v);
}

/** Scores one study: `images` holds one vector per sequence present (at least one). */
export function scoreStudy(
  combination: Manifest['combination'],
  images: Partial<Record<Sequence, Float32Array>>,
  queries: QueryVectors[],
): QueryScore[] {
  if (!Object.values(images).some((v) => v !== undefined)) throw new Error('scoreStudy: no image vectors');
  return queries.map((q) => {
    const s = combinedScore(combination, vectorsFor(images, q.query), q);
    const c = q.query.calibration;
    const probability = c ? plattProbability(c, s) : undefined;
    return {
      id: q.query.id,
      priority: q.query.priority,
      score: s,
      ...(c && probability !== undefined ? { probability, flagged: probability >= c.threshold } : {}),
    };
  });
}
