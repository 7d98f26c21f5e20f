// The contract for radiologists' final reports of past studies, between the report interfaces that receive them
// (an HL7 v2 ORU^R01 MLLP listener and an API endpoint, services/api) and their readers: zero-label calibration of
// new triage queries (each report's text gives its study a pseudo-label), search and the report check. A report is
// linked to its study by AccessionNumber; one that arrives before its study is held until the study is received.
// Report text is clinical free text: it lives only here, never in logs, job data or error messages.
import type { Redis } from 'ioredis';
import { KEY_PREFIX } from './studies';

export interface StoredReport {
  AccessionNumber: string;
  /** Set once the report is matched to a received study. */
  StudyInstanceUID?: string;
  /** The report text (FINDINGS / IMPRESSION sections when the RIS sends them). */
  text: string;
  /** HL7 OBR-25 result status: F final, C corrected, P preliminary (only F and C are used for calibration). */
  status: 'F' | 'C' | 'P';
  receivedAt: number;
  source: 'hl7' | 'api';
  /** MSH-10 of the message that carried it (HL7 only): the same message twice is stored once. */
  messageControlId?: string;
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
};

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
  await redis
    .multi()
    .set(reportKeys.report(report.StudyInstanceUID), JSON.stringify(report))
    .zadd(reportKeys.reported(), report.receivedAt, report.StudyInstanceUID)
    .del(reportKeys.sentenceVectors(report.StudyInstanceUID))
    .publish(reportKeys.reportedChannel(), report.StudyInstanceUID)
    .exec();
}
