// The scored-study contract between the worker (writer) and the API and outbound adapters (readers).
// One result per study, overwritten by key, so a re-delivered job never duplicates it.
import type { Priority, Sequence } from './model-manifest';
import { KEY_PREFIX } from './studies';

export interface FindingScore {
  /** TriageQuery.id, e.g. "acute_infarct". */
  queryId: string;
  text: string;
  priority: Priority;
  /** Combined similarity across the sequences used (see docs/worker.md for the rule). */
  similarity: number;
  /** Calibrated probability in [0, 1]; null when the query has no calibration. */
  probability: number | null;
  flagged: boolean;
  /** Per-sequence similarity for the radiologist's view. */
  bySequence: Partial<Record<Sequence, number>>;
}

export interface SeriesOutcome {
  SeriesInstanceUID: string;
  SeriesNumber?: number;
  sequence: string;
  used: boolean;
  reason?: string;
}

export interface StudyResult {
  StudyInstanceUID: string;
  /** Not patient-identifying; the RIS keys its worklist on it. */
  AccessionNumber?: string;
  priority: Priority;
  findings: FindingScore[];
  /** Probability that the study is abnormal, from the manifest's normalQuery; null when absent. */
  abnormalProbability: number | null;
  sequencesUsed: Sequence[];
  sequencesMissing: Sequence[];
  series: SeriesOutcome[];
  /** Lower when sequences are missing: the fraction of the model's sequences that were available. */
  confidence: number;
  model: { bundleId: string; version: string };
  provider: string;
  timingsMs: { decode: number; preprocess: number; inference: number; scoring: number; total: number };
  receivedAt: number;
  scoredAt: number;
}

export const resultKeys = {
  /** String: JSON StudyResult. */
  result: (uid: string) => `${KEY_PREFIX}:study:${uid}:result`,
  /** Hash: sequence name (or "combined") -> little-endian Float32 image embedding bytes. */
  vectors: (uid: string) => `${KEY_PREFIX}:study:${uid}:vectors`,
  /** Sorted set of scored StudyInstanceUIDs; score = worklist rank (priority class, then arrival). */
  worklist: () => `${KEY_PREFIX}:worklist`,
  /** Pub/sub channel: a StudyInstanceUID each time a result is written (live worklist, outbound adapters). */
  scoredChannel: () => `${KEY_PREFIX}:events:scored`,
};

const PRIORITY_RANK: Record<Priority, number> = { STAT: 0, URGENT: 1, ROUTINE: 2 };

/** Worklist order: priority class first, then arrival (earliest first). Fits in a double exactly until year 2255. */
export function worklistScore(priority: Priority, receivedAt: number): number {
  return PRIORITY_RANK[priority] * 1e13 + receivedAt;
}
