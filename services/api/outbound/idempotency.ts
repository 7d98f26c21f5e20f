// One delivery identity per (study, result version), shared by every adapter: the BullMQ jobId (so a duplicate
// enqueue is a no-op), the HL7 MSH-10 message control id, the webhook delivery id and the SR's instance UIDs
// (so a retried C-STORE overwrites the same instance instead of adding a second report).
import { createHash } from 'node:crypto';
import { assertUid, KEY_PREFIX } from '../../../shared/studies';
import type { StudyResult } from '../../../shared/results';
import type { Adapter } from './errors';

export interface DeliveryKey {
  StudyInstanceUID: string;
  /** Result version: the worker's scoredAt (ms epoch); a re-scored study gets a new one. */
  version: number;
  /** BullMQ custom job id: no ':' (BullMQ reserves it) and not an integer. */
  jobId: string;
  /** MSH-10 is ST(20) in v2.5.1, so the key is hashed down to 20 characters. */
  hl7ControlId: string;
}

export function deliveryKey(StudyInstanceUID: string, version: number): DeliveryKey {
  assertUid(StudyInstanceUID, 'StudyInstanceUID');
  if (!Number.isSafeInteger(version) || version < 0) throw new Error('result version must be a non-negative integer');
  const jobId = `${StudyInstanceUID}-v${version}`;
  return {
    StudyInstanceUID,
    version,
    jobId,
    hl7ControlId: createHash('sha256').update(`hl7|${jobId}`).digest('hex').slice(0, 20).toUpperCase(),
  };
}

export function resultKey(result: Pick<StudyResult, 'StudyInstanceUID' | 'scoredAt'>): DeliveryKey {
  return deliveryKey(result.StudyInstanceUID, Math.trunc(result.scoredAt));
}

/**
 * A deterministic DICOM UID under the 2.25 root (PS3.5 B.2): the 128-bit integer is taken from a SHA-256 of the
 * inputs instead of a random UUID, so the same delivery always yields the same UID (name-based, like UUID v5/v8).
 */
export function derivedUid(...parts: string[]): string {
  const digest = createHash('sha256').update(parts.join('|')).digest();
  const bytes = Buffer.from(digest.subarray(0, 16));
  bytes[6] = (bytes[6] & 0x0f) | 0x80; // UUID version 8 (custom), variant RFC 4122: keeps it a valid UUID value
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  return `2.25.${BigInt(`0x${bytes.toString('hex')}`).toString(10)}`;
}

/**
 * String: the newest result version (scoredAt) of a study the adapter's peer acknowledged, for ordered adapters
 * (outbound.ts). Kept 8 days: longer than a failed job stays retryable (removeOnFail, 7 days), after which no older
 * version of the study can be sent any more.
 */
export const sentVersionKey = (adapter: Adapter, StudyInstanceUID: string): string => `${KEY_PREFIX}:outbound:${adapter}:sent:${StudyInstanceUID}`;

/** The watermark is kept 8 days: longer than a failed job stays retryable. */
export const SENT_VERSION_TTL_MS = 8 * 24 * 3600 * 1000;
