// The scored-study contract between the worker (writer) and the API and outbound adapters (readers).
// One result per study, overwritten by key, so a re-delivered job never duplicates it.
import type { Priority, Sequence } from './model-manifest';
import type { CalibrationState } from './models/calibration';
import type { RefusalCode } from './refusals';
import { KEY_PREFIX } from './studies';

export interface FindingScore {
  /** TriageQuery.id, e.g. "acute_infarct". */
  queryId: string;
  text: string;
  priority: Priority;
  /** Combined similarity across the sequences used (see docs/worker.md for the rule). */
  similarity: number;
  /** Calibrated probability in [0, 1]; null when the query has no calibration that may be applied. */
  probability: number | null;
  /** The probability threshold it was judged with (shared/models/decision.ts); null: it could not be flagged. */
  threshold: number | null;
  /** probability >= threshold: the one rule, so a flag and the number shown beside it always agree. */
  flagged: boolean;
  /**
   * Flagged, not held, and its priority is the study's STAT or URGENT priority: one of the reasons the study sits
   * where it does (a ROUTINE study has none: no finding sets ROUTINE).
   */
  triggered: boolean;
  /** calibrated, or why not (uncalibrated, stale-text, stale-bundle): only a calibrated query can flag. */
  calibration: CalibrationState;
  /** Per-sequence similarity for the radiologist's view. */
  bySequence: Partial<Record<Sequence, number>>;
  /**
   * STAT/URGENT queries only: the bundle's sequences this query reads on (its `sequences`, else all) that the study
   * lacks. Absent when none is missing. A result with any is provisional until they arrive or the wait expires.
   */
  waitingFor?: Sequence[];
  /** Scored on other sequences than the query reads on, because the study has none of them (docs/worker.md). */
  fallback?: boolean;
  /** Flagged or not, held back from setting the priority: a fallback finding of a provisional result. */
  held?: boolean;
  /** Flagged findings only: the region of the source images that drives the score; absent when none was found. */
  location?: FindingLocation;
}

/** A result that may still change: the study lacks sequences that STAT/URGENT queries read on (docs/worker.md). */
export interface Provisional {
  /** The missing sequences, over all findings. */
  waitingFor: Sequence[];
  /** When the result becomes final if they have not arrived (ms epoch): the study's last arrival + the wait. */
  until: number;
}

/**
 * Where in the source images a flagged finding's score comes from (services/worker/localise.ts, occlusion
 * sensitivity of the study's departures from the bundle atlas, or of blocks): the key slice of one source series, a
 * point and radius in its pixels, and the point in patient coordinates. Read by the page (key image), the SR
 * (SCOORD / SCOORD3D) and the HL7 message (key image OBX).
 */
export interface FindingLocation {
  method: 'occlusion';
  /** The sequence whose series holds the key slice: the one where occluding the region lowered the score most. */
  sequence: Sequence;
  SeriesInstanceUID: string;
  SOPInstanceUID: string;
  SOPClassUID?: string;
  /** 1-based frame number for a multi-frame instance; absent for single-frame images. */
  frame?: number;
  /** Frame of reference of patientMm (absent when the source instances carry none). */
  FrameOfReferenceUID?: string;
  /** The key slice's row then column direction cosines (patient LPS), as its ImageOrientationPatient. */
  ImageOrientationPatient: [number, number, number, number, number, number];
  /**
   * Key point in the key slice, DICOM image coordinates [column, row] as SR SCOORD uses them: 0,0 is the top left
   * corner of the first pixel, so the centre of pixel (c, r) is at c + 0.5, r + 0.5.
   */
  point: [number, number];
  /** Radius of the region around the point, in pixel columns of the key slice and in mm. */
  radiusPx: number;
  /**
   * The same radius in pixel rows, where the key slice's rows are spaced differently from its columns (PixelSpacing
   * unequal): the region, round in mm, is then an ellipse in pixels. Absent where they are equal.
   */
  radiusRowsPx?: number;
  radiusMm: number;
  /** The key point in patient coordinates (DICOM LPS, mm): `point` on the key slice, so SCOORD and SCOORD3D agree. */
  patientMm: [number, number, number];
  /** Position of the key slice in the series, ordered along the slice normal (0-based), and the series' slices. */
  sliceIndex: number;
  sliceCount: number;
  /** How much the finding's score fell when the region was occluded (score units, > 0): the share of the score it explains. */
  scoreDrop: number;
}

/** One reason images of a series were left out (SeriesOutcome.dropped). */
export interface DroppedImages {
  images: number;
  reason: string;
  /** reason "refused-at-intake" only: the listener's refusal code (shared/refusals.ts), e.g. "invalid-image". */
  refusal?: RefusalCode;
  /** reason "refused-at-intake" only: the C-STORE status the listener answered, four hex digits, e.g. "A900". */
  status?: string;
}

/** SeriesOutcome.reason and DroppedImages.reason of instances the listener refused at C-STORE. */
export const REFUSED_AT_INTAKE = 'refused-at-intake';

export interface SeriesOutcome {
  SeriesInstanceUID: string;
  SeriesNumber?: number;
  /** The sequence the series was classified as; "unknown" for a series refused whole at intake (never read). */
  sequence: string;
  used: boolean;
  /**
   * Why the series was not used (e.g. "not-selected", "too-few-slices: 4 distinct slices (minimum 8)",
   * "refused-at-intake": every instance of it that reached the listener was refused at C-STORE).
   */
  reason?: string;
  /**
   * Images of the series left out of its volume, by why: unreadable, no-geometry, other-stack (another orientation
   * or matrix size), duplicate-position, missing-slices (positions inside the stack with no image), unjoined-part
   * (slices of another series of the same acquisition beyond this volume that could not be joined to it) (these six
   * lower the confidence), other-echo, b-value-unknown, directional (by design), refused-at-intake (the listener
   * refused the instances at C-STORE, so they were never stored: see DroppedImages). Absent when none.
   */
  dropped?: DroppedImages[];
  /**
   * One acquisition split across series (two packages, a PACS that gave part of it a new UID): the other series
   * whose slices were joined with this one's into one volume. Absent when none.
   */
  joinedWith?: string[];
  /** Post-contrast (ContrastBolusAgent set, or named so); present only when true. Used only when no pre-contrast series of the sequence exists. */
  contrastEnhanced?: true;
  /**
   * Lossy history: some image of the series (of its volume, for a used series) was lossy-compressed at some time,
   * Lossy Image Compression (0028,2110) "01" (e.g. sent on decompressed in a lossless syntax) or a lossy transfer
   * syntax. Present only when true. Marked, not scored differently: the confidence and scores are unchanged (no
   * measurement says by how much lossy pixels change them; the models are trained on lossless pixel data).
   */
  lossyCompressed?: true;
}

export interface StudyResult {
  StudyInstanceUID: string;
  /** Not patient-identifying; the RIS keys its worklist on it. */
  AccessionNumber?: string;
  priority: Priority;
  /** Highest probability among the findings that set the priority (decision.ts): the order within a priority. */
  priorityProbability: number | null;
  findings: FindingScore[];
  /** Probability that the study is abnormal, from the manifest's normalQuery; null when absent. */
  abnormalProbability: number | null;
  sequencesUsed: Sequence[];
  sequencesMissing: Sequence[];
  series: SeriesOutcome[];
  /**
   * Lower when sequences are missing or images were left out: the fraction of the model's sequences that were
   * available, times the fraction of the used series' images that made it into their volumes (images of a used
   * series refused at intake count as left out, as far as its missing-slices do not already count them).
   */
  confidence: number;
  /** Present while the result may still change (partial study); absent on a final result. */
  provisional?: Provisional;
  /**
   * Set on the final result of a study whose missing sequences never arrived: judged on what it has after the wait,
   * fallback findings counting; `missing` lists what it still lacks (its confidence already says how much).
   */
  incomplete?: { missing: Sequence[]; waitedUntil: number };
  model: { bundleId: string; version: string };
  /** Exactly what the study was judged with: the query set (decision.ts querySetVersion) and the class thresholds. */
  judgedWith: { querySetVersion: string; classThresholds: Partial<Record<'STAT' | 'URGENT', number>> };
  provider: string;
  /** localise: occlusion search for the flagged findings' locations (absent when nothing was flagged). */
  timingsMs: { decode: number; preprocess: number; inference: number; scoring: number; localise?: number; total: number };
  receivedAt: number;
  scoredAt: number;
  /**
   * 1 for a study's first result, then +1 for every later one (more instances arrived, a bundle changed): outbound
   * messages for a version above 1 correct the previous version's (HL7 order change, SR predecessor). Set by the
   * worker's store when it writes the result; absent only in results written before it existed.
   */
  resultVersion?: number;
  /**
   * The trace id of the job that scored the study (from the DICOM association that completed it, or a re-score's):
   * the outbound deliveries queued on its scored event log under it too. Absent in results written before it was
   * recorded.
   */
  traceId?: string;
}

export const resultKeys = {
  /** String: JSON StudyResult. */
  result: (uid: string) => `${KEY_PREFIX}:study:${uid}:result`,
  /**
   * Hash: sequence name (or "combined") -> little-endian Float32 image embedding bytes, unit length; field "norms":
   * JSON { sequence: length of the encoder's raw output }, so a reader can rebuild exactly the vectors the worker
   * scored with (mean-embedding averages raw outputs). Results written before "norms" existed lack it.
   */
  vectors: (uid: string) => `${KEY_PREFIX}:study:${uid}:vectors`,
  /** Sorted set of scored StudyInstanceUIDs; score = worklist rank (priority class, then probability, then arrival). */
  worklist: () => `${KEY_PREFIX}:worklist`,
  /**
   * Sorted set StudyInstanceUID -> scoredAt of the latest result, the last RECENT_RESULTS_MS only (older entries are
   * trimmed on write): outbound catch-up reads the results of a time window from it instead of the whole worklist.
   */
  recent: () => `${KEY_PREFIX}:results:recent`,
  /** Pub/sub channel: a StudyInstanceUID each time a result is written (live worklist, outbound adapters). */
  scoredChannel: () => `${KEY_PREFIX}:events:scored`,
};

/** How long a result stays in resultKeys.recent(). */
export const RECENT_RESULTS_MS = 7 * 24 * 3600 * 1000;

const PRIORITY_RANK: Record<Priority, number> = { STAT: 0, URGENT: 1, ROUTINE: 2 };

/**
 * Worklist order as one sorted-set score: priority class first, then probability (highest first, in steps of
 * 0.01), then arrival (earliest first, ms). rank * 1e15 + (100 - round(p * 100)) * 5e12 + ms is exact in a double
 * until 2128 (5e12 ms). A null probability sorts after every probability of its class.
 */
export function worklistScore(priority: Priority, receivedAt: number, probability: number | null = null): number {
  const step = probability === null ? 101 : 100 - Math.round(Math.min(1, Math.max(0, probability)) * 100);
  return PRIORITY_RANK[priority] * 1e15 + step * 5e12 + receivedAt;
}

/** The [min, max] worklistScore range of one priority class. */
export function worklistClassRange(priority: Priority): [number, number] {
  return [PRIORITY_RANK[priority] * 1e15, (PRIORITY_RANK[priority] + 1) * 1e15 - 1];
}
