// The contract for radiologists' final reports of past studies, between the report interfaces that receive them
// (an HL7 v2 ORU^R01 MLLP listener and an API endpoint, services/api) and their readers: zero-label calibration of
// new triage queries (each report's text gives its study a pseudo-label), search and the report check. A report is
// linked to its study by AccessionNumber; one that arrives before its study is held until the study is received.
// Report text is clinical free text: it lives only here, never in logs, job data or error messages.
import type { ChainableCommander, Redis } from 'ioredis';
import { KEY_PREFIX } from './studies';

export interface StoredReport {
  AccessionNumber: string;
  /** Set once the report is matched to a received study. */
  StudyInstanceUID?: string;
  /** The report text (FINDINGS / IMPRESSION sections when the RIS sends them). */
  text: string;
  /**
   * HL7 OBR-25 result status: F final, C corrected, P preliminary, X cancelled (the RIS withdrew the report; its
   * text, often empty, is what the RIS sent with the cancellation). Only F and C are used for calibration.
   */
  status: 'F' | 'C' | 'P' | 'X';
  receivedAt: number;
  /**
   * When the report says it was written (HL7 OBR-22 Results Rpt/Status Chng Date/Time, else MSH-7), as the span of
   * time its precision names; absent when the message carries none we can read (and for API reports). It orders two
   * reports of the same rank (supersedes).
   */
  reportTime?: ReportTime;
  source: 'hl7' | 'api';
  /** MSH-10 of the message that carried it (HL7 only): the same message twice is stored once. */
  messageControlId?: string;
}

/**
 * A report's own time as the span its value names, in ms since the epoch: `20261025` is that whole day in the site's
 * time zone, `20261025013000+0100` one second. Two reports are ordered by it only when one span ends before the other
 * begins: a time to the day does not order two reports of the same day, nor do two equal times.
 */
export interface ReportTime {
  /** The first millisecond of the span. */
  from: number;
  /** The first millisecond after it. */
  to: number;
  /** Where it was read. */
  field: 'OBR-22' | 'MSH-7';
}

export const reportKeys = {
  /** String: JSON StoredReport of a matched study (the latest final or corrected one). */
  report: (uid: string) => `${KEY_PREFIX}:study:${uid}:report`,
  /** Sorted set of StudyInstanceUIDs that have a report, score = report receivedAt. */
  reported: () => `${KEY_PREFIX}:reports:studies`,
  /** String: JSON StoredReport received before its study, keyed by AccessionNumber (held until the study arrives). */
  held: (accession: string) => `${KEY_PREFIX}:reports:held:${accession}`,
  /** Hash: text-model version -> JSON { sentences: string[], vectors: base64 float32 [n, dim] } of a report's sentences. */
  sentenceVectors: (uid: string) => `${KEY_PREFIX}:study:${uid}:report:sentences`,
  /** Pub/sub channel: a StudyInstanceUID each time its report is stored or replaced. */
  reportedChannel: () => `${KEY_PREFIX}:events:reported`,
  /** Set of StudyInstanceUIDs whose study hash carries this AccessionNumber (kept by the report intake). */
  accession: (accession: string) => `${KEY_PREFIX}:reports:accession:${accession}`,
  /** Sorted set of AccessionNumbers with a held report, score = when it was first held (for expiry). */
  holding: () => `${KEY_PREFIX}:reports:holding`,
  /** String with a TTL: a message id (sha256 of MSH-3/MSH-4/MSH-10, or of an API reportId) already stored. */
  seen: (messageKey: string) => `${KEY_PREFIX}:reports:seen:${messageKey}`,
  /** Sorted set of ids of rejected messages kept for replay, score = receivedAt (the files: DATA_DIR/reports/rejected). */
  rejected: () => `${KEY_PREFIX}:reports:rejected`,
  /** Hash: what is known of one rejected message (reason code and text, sizes, times); never its content. */
  rejectedEntry: (id: string) => `${KEY_PREFIX}:reports:rejected:${id}`,
  /** String: the bytes of every message kept for replay, together (for REPORTS_REJECTED_MAX_MB). */
  rejectedBytes: () => `${KEY_PREFIX}:reports:rejected-bytes`,
};

/**
 * P < F < C = X: a correction (an addendum) amends its final, so a final never replaces it, whenever it comes; a
 * cancellation withdraws what came before it and is replaced only by a later correction, not by a final resent.
 */
const RANK: Record<StoredReport['status'], number> = { P: 0, F: 1, C: 2, X: 2 };

const usable = (t: ReportTime | undefined): t is ReportTime =>
  t !== undefined && t !== null && Number.isFinite(t.from) && Number.isFinite(t.to) && t.to > t.from;

/** 1 when `a` is after `b` by the reports' own times, -1 when before; 0 when either has none or their spans overlap. */
export function reportTimeOrder(a: ReportTime | undefined, b: ReportTime | undefined): -1 | 0 | 1 {
  if (!usable(a) || !usable(b)) return 0;
  if (a.from >= b.to) return 1;
  if (b.from >= a.to) return -1;
  return 0;
}

/**
 * Which of two reports of one study is kept: the one of higher status (P preliminary < F final < C corrected or X
 * cancelled), whenever either came; between two of the same rank the newer by their own times (ReportTime: OBR-22,
 * else MSH-7), so an older correction that reaches us after a newer one (replayed from the rejected store days
 * later, resent from an engine's queue) does not replace it; and when either has no time, or the times do not tell
 * (equal, or a day-only time on the day of the other), the later received (a second correction follows the first,
 * a cancellation the correction it withdraws). A final can reach us after its correction (resent from an interface
 * engine's queue, or by a RIS that resends finals on its own schedule): it never replaces it. receivedAt and
 * reportTime travel with the report (journal, rejected store). While a study's reports all carry times that order
 * them, or none does, this is an order: any order of taking them (a journal replay) ends in the same state; where
 * some have a time and some not, the arrival order can decide between them.
 */
export function supersedes(next: StoredReport, current: StoredReport | null): boolean {
  if (!current) return true;
  if (RANK[next.status] !== RANK[current.status]) return RANK[next.status] > RANK[current.status];
  const byTime = reportTimeOrder(next.reportTime, current.reportTime);
  if (byTime !== 0) return byTime > 0;
  return next.receivedAt >= current.receivedAt;
}

export async function readReport(redis: Redis, uid: string): Promise<StoredReport | null> {
  const raw = await redis.get(reportKeys.report(uid));
  return raw ? (JSON.parse(raw) as StoredReport) : null;
}

/** StudyInstanceUIDs with a report, newest first, at most `limit`. */
export async function reportedStudies(redis: Redis, limit = 10_000): Promise<string[]> {
  return redis.zrevrange(reportKeys.reported(), 0, limit - 1);
}

/** Stores a matched report (replacing an earlier one) and announces it. */
export async function storeMatchedReport(redis: Redis, report: StoredReport & { StudyInstanceUID: string }): Promise<void> {
  await queueMatchedReport(redis.multi(), report).exec();
}

/** The commands of storeMatchedReport, added to a transaction the caller runs (the intake's, guarded by WATCH). */
export function queueMatchedReport(multi: ChainableCommander, report: StoredReport & { StudyInstanceUID: string }): ChainableCommander {
  return multi
    .set(reportKeys.report(report.StudyInstanceUID), JSON.stringify(report))
    .zadd(reportKeys.reported(), report.receivedAt, report.StudyInstanceUID)
    .del(reportKeys.sentenceVectors(report.StudyInstanceUID))
    .publish(reportKeys.reportedChannel(), report.StudyInstanceUID);
}
