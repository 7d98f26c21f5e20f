// Vector arithmetic for ad-hoc scoring, search and report checks: decoding the worker's stored embeddings
// (little-endian Float32 bytes, see shared/results.ts) and cosine similarity. Pure functions, no I/O.
import { float32FromLE } from '../../shared/float32';
import type { Sequence } from '../../shared/model-manifest';
import { SEQUENCES } from '../../shared/model-manifest';
import { cosine as sharedCosine } from '../../shared/models/scoring';

/** A stored vector (shared/float32.ts bytes) as a fresh, aligned array. */
export const decodeVector = (bytes: Buffer): Float32Array => float32FromLE(bytes, 'stored vector');

/** The worker's cosine (shared/models/scoring.ts), refusing vectors from different models instead of misreading them. */
export function cosine(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new DimensionMismatchError(a.length, b.length);
  return sharedCosine(a, b);
}

export class DimensionMismatchError extends Error {
  override name = 'DimensionMismatchError';
  constructor(
    public readonly a: number,
    public readonly b: number,
  ) {
    super(`embedding sizes differ (${a} vs ${b}): the study was scored with a different model bundle than the text encoder loaded now`);
  }
}

export interface StudyVectors {
  /** The worker's stored "combined" vector (mean-embedding bundles); null when only sequence vectors are stored. */
  combined: Float32Array | null;
  bySequence: Partial<Record<Sequence, Float32Array>>;
}

/** Reads the vectors hash; null when it holds no vector at all. */
export function studyVectors(hash: Record<string, Buffer>): StudyVectors | null {
  const bySequence: Partial<Record<Sequence, Float32Array>> = {};
  for (const s of SEQUENCES) if (hash[s]) bySequence[s] = decodeVector(hash[s]);
  const combined = hash.combined ? decodeVector(hash.combined) : null;
  if (!combined && Object.keys(bySequence).length === 0) return null;
  return { combined, bySequence };
}

export type Combination = 'mean-embedding' | 'mean-score';

/**
 * cos(study, text) the way the worker scores a query (shared/models/scoring.ts): "mean-score" bundles average the
 * per-sequence cosines; "mean-embedding" bundles compare the combined vector (the unit mean the worker stores).
 * Search ranks by the combined vector whatever the bundle (the worker keeps it for retrieval).
 */
export function studyCosine(v: StudyVectors, text: Float32Array, combination: Combination = 'mean-embedding'): number {
  const seqs = Object.values(v.bySequence);
  if (v.combined && (combination === 'mean-embedding' || seqs.length === 0)) return cosine(v.combined, text);
  return seqs.reduce((s, x) => s + cosine(x, text), 0) / seqs.length;
}
