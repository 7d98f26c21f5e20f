// The score search ranks past studies by: the study scored like a triage query whose contrast sentence is the
// bundle's normal-study sentence, cos(image, text) - cos(image, normal) (shared/models/scoring.ts rawScore), so a
// search for "hydrocephalus" ranks by how much more a study looks like hydrocephalus than like a normal brain,
// not by how much it looks like a brain MRI at all. One pure function for the API and the evaluation (precision of
// the top results is measured with it).
import { rawScore } from './scoring';

/** Search score of one study's image vector (the worker's stored combined vector) for a text. */
export function searchScore(image: Float32Array, text: Float32Array, normal: Float32Array | null): number {
  return rawScore(image, { text, ...(normal ? { negative: normal } : {}) });
}

export interface Ranked<T> {
  item: T;
  score: number;
}

/** Items ranked by searchScore, highest first; ties keep the given order (callers pass most recent first). */
export function rankBySearch<T>(items: readonly T[], image: (item: T) => Float32Array, text: Float32Array, normal: Float32Array | null): Ranked<T>[] {
  return items
    .map((item, i) => ({ item, score: searchScore(image(item), text, normal), i }))
    .sort((a, b) => b.score - a.score || a.i - b.i)
    .map(({ item, score }) => ({ item, score }));
}
