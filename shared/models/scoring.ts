// Pure scoring maths shared by the worker and the evaluation: cosine similarity, combination of per-sequence
// image vectors (manifest.combination), query scores (cos(image, text) - cos(image, negativeText)) and Platt
// calibration into a probability and a flag.
import type { Manifest, Sequence, TriageQuery } from '../model-manifest';

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

export interface QueryScore {
  id: string;
  priority: TriageQuery['priority'];
  /** Raw score: cosine, or cosine difference when the query has negativeText. */
  score: number;
  /** Calibrated probability, when the query has calibration. */
  probability?: number;
  flagged?: boolean;
}

function rawScore(image: Float32Array, q: QueryVectors): number {
  return cosine(image, q.text) - (q.negative ? cosine(image, q.negative) : 0);
}

/** Scores one study: `images` holds one vector per sequence present (at least one). */
export function scoreStudy(
  combination: Manifest['combination'],
  images: Partial<Record<Sequence, Float32Array>>,
  queries: QueryVectors[],
): QueryScore[] {
  const vectors = Object.values(images).filter((v): v is Float32Array => v !== undefined);
  if (vectors.length === 0) throw new Error('scoreStudy: no image vectors');
  let score: (q: QueryVectors) => number;
  if (combination === 'mean-embedding') {
    const mean = new Float32Array(vectors[0].length);
    for (const v of vectors) for (let i = 0; i < v.length; i++) mean[i] += v[i] / vectors.length;
    score = (q) => rawScore(mean, q);
  } else {
    score = (q) => vectors.reduce((s, v) => s + rawScore(v, q), 0) / vectors.length;
  }
  return queries.map((q) => {
    const s = score(q);
    const c = q.query.calibration;
    return {
      id: q.query.id,
      priority: q.query.priority,
      score: s,
      ...(c ? { probability: 1 / (1 + Math.exp(-(c.a * s + c.b))), flagged: s >= c.threshold } : {}),
    };
  });
}
