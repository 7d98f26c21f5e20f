// Which SR stands for which result version of a study. Each version gets a deterministic SOP Instance UID (a retry
// overwrites the same instance; the next version can name it without a lookup), and every SR the PACS accepted is
// recorded in Redis so a later version's Predecessor Documents Sequence names only SRs that were really stored.
import type { Redis } from 'ioredis';
import { KEY_PREFIX } from '../../../../shared/studies';
import { derivedUid } from '../idempotency';
import { highestVersionBelow } from '../versions-below';

export const srKeys = {
  /** Hash: result version -> SOPInstanceUID of the SR stored for it. */
  delivered: (uid: string) => `${KEY_PREFIX}:study:${uid}:sr`,
};

/** One SR series per study: every version of the study's report sits in it. */
export const srSeriesUid = (StudyInstanceUID: string): string => derivedUid('neurotriage-sr-series', StudyInstanceUID);

/** The SR of one result version. */
export const srInstanceUid = (StudyInstanceUID: string, version: number): string => derivedUid('neurotriage-sr-instance', StudyInstanceUID, `v${version}`);

/** One key-object series per study, beside the SR series. */
export const kosSeriesUid = (StudyInstanceUID: string): string => derivedUid('neurotriage-kos-series', StudyInstanceUID);

/** The key object document of one result version. */
export const kosInstanceUid = (StudyInstanceUID: string, version: number): string => derivedUid('neurotriage-kos-instance', StudyInstanceUID, `v${version}`);

export async function recordDelivered(redis: Redis, StudyInstanceUID: string, version: number, SOPInstanceUID: string): Promise<void> {
  await redis.hset(srKeys.delivered(StudyInstanceUID), String(version), SOPInstanceUID);
}

/** The SR stored for the highest version below `version`, if any. */
export async function previousDelivered(redis: Redis, StudyInstanceUID: string, version: number): Promise<{ version: number; SOPInstanceUID: string } | undefined> {
  const stored = await highestVersionBelow(redis, srKeys.delivered(StudyInstanceUID), version);
  return stored && { version: stored.version, SOPInstanceUID: stored.value };
}
