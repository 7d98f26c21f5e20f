// Which result version of a study the RIS has accepted (AA/CA). A later version is sent as a correction (OBR-25 C)
// only of a result the RIS holds: when the first versions never reached it (an outage, a version superseded before
// it went out), the first message it gets is a first result, not a correction of one it never saw.
import type { Redis } from 'ioredis';
import { KEY_PREFIX } from '../../../../shared/studies';

export const hl7Keys = {
  /** String: the highest result version of the study the RIS acknowledged. */
  accepted: (uid: string) => `${KEY_PREFIX}:study:${uid}:hl7`,
};

/** Raises the record to `version`, never lowers it (versions of a study may be acknowledged out of order on retries). */
const RECORD = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
`;

export async function recordAccepted(redis: Redis, StudyInstanceUID: string, version: number): Promise<void> {
  await redis.eval(RECORD, 1, hl7Keys.accepted(StudyInstanceUID), String(version));
}

/** The highest version below `version` the RIS accepted, if any: the one a message for `version` corrects. */
export async function acceptedBefore(redis: Redis, StudyInstanceUID: string, version: number): Promise<number | undefined> {
  const v = Number(await redis.get(hl7Keys.accepted(StudyInstanceUID)));
  return Number.isInteger(v) && v > 0 && v < version ? v : undefined;
}
