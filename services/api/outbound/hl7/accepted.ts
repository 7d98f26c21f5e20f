// Which result version of a study the RIS has accepted (AA/CA). A later version is sent as a correction (OBR-25 C)
// only of a result the RIS holds: when the first versions never reached it (an outage, a version superseded before
// it went out), the first message it gets is a first result, not a correction of one it never saw. The record starts
// (at 0, nothing accepted) when a study's first result is queued for the RIS; a study whose first result went out
// before this record existed has none but the ordering watermark, and keeps the rule of that time: every later
// version corrects the one before. A study with neither never had a version accepted: nothing to correct.
import type { Redis } from 'ioredis';
import { KEY_PREFIX } from '../../../../shared/studies';
import { SENT_VERSION_TTL_MS, sentVersionKey } from '../idempotency';

export const hl7Keys = {
  /** String: the highest result version of the study the RIS acknowledged; 0 while none. */
  accepted: (uid: string) => `${KEY_PREFIX}:study:${uid}:hl7`,
};

/**
 * Raises the record to ARGV[1] and the ordering watermark (idempotency.ts sentVersionKey) to ARGV[2], renewing its
 * TTL (ARGV[3]); neither is ever lowered (versions may be acknowledged out of order on retries). One script, so both
 * are written or neither: as two writes, a process killed between them left the record raised and the watermark
 * not, and the job, retried after the restart, sent the same MSH-10 again, now as a first result (the record said
 * the RIS held this very version, so there was nothing below it to correct). KEYS: record, watermark.
 */
const RECORD = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
local sent = tonumber(redis.call('GET', KEYS[2]) or '-1')
if tonumber(ARGV[2]) > sent then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
else
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
`;

/**
 * Records an acknowledged message: result `version` of the study (the record) and its delivery key's `scoredAt`
 * (the ordering watermark), in one write.
 */
export async function recordAccepted(redis: Redis, StudyInstanceUID: string, version: number, scoredAt: number): Promise<void> {
  await redis.eval(RECORD, 2, hl7Keys.accepted(StudyInstanceUID), sentVersionKey('hl7', StudyInstanceUID), String(version), String(scoredAt), String(SENT_VERSION_TTL_MS));
}

/** Starts the record for a study whose first result is queued for the RIS (later versions find it there). */
export async function startRecord(redis: Redis, StudyInstanceUID: string, version: number | undefined): Promise<void> {
  if (version === 1) await redis.set(hl7Keys.accepted(StudyInstanceUID), '0', 'NX');
}

/**
 * The version a message for `version` corrects: the highest below it the RIS accepted, if any. Without a record,
 * either the study's first result went out before records were kept (an earlier release), which then left the
 * ordering watermark of the version the RIS acknowledged: the version before it, as the rule was then; or no earlier
 * version was ever queued for the RIS (scored while no API ran, catch-up queuing only the latest; or scored again
 * before the first one's event was read), and nothing is corrected.
 */
export async function acceptedBefore(redis: Redis, StudyInstanceUID: string, version: number): Promise<number | undefined> {
  const raw = await redis.get(hl7Keys.accepted(StudyInstanceUID));
  if (raw === null) return version > 1 && (await redis.exists(sentVersionKey('hl7', StudyInstanceUID))) === 1 ? version - 1 : undefined;
  const v = Number(raw);
  return Number.isInteger(v) && v > 0 && v < version ? v : undefined;
}
