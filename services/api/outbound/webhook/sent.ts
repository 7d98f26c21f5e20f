// Which result versions of a study the webhook receiver was sent (answered 2xx), and at which priority. A later
// version's `corrects` names only one of these (a version below WEBHOOK_MIN_PRIORITY was never posted, and one whose
// delivery failed never arrived, so the receiver cannot look either up), and a version that drops below the minimum
// is posted when the one the receiver last got was at or above it: the withdrawal of an alert it holds.
import type { Redis } from 'ioredis';
import { PRIORITIES, type Priority } from '../../../../shared/model-manifest';
import { KEY_PREFIX } from '../../../../shared/studies';
import { highestVersionBelow } from '../versions-below';

export const webhookKeys = {
  /** Hash: result version -> priority of that version, for every version the receiver answered 2xx. */
  sent: (uid: string) => `${KEY_PREFIX}:study:${uid}:webhook`,
};

export async function recordSent(redis: Redis, StudyInstanceUID: string, version: number, priority: Priority): Promise<void> {
  await redis.hset(webhookKeys.sent(StudyInstanceUID), String(version), priority);
}

const isPriority = (value: string): value is Priority => (PRIORITIES as readonly string[]).includes(value);

/** The highest version below `version` the receiver was sent, if any (a version whose value is not a priority is left out). */
export async function sentBefore(redis: Redis, StudyInstanceUID: string, version: number): Promise<{ version: number; priority: Priority } | undefined> {
  const sent = await highestVersionBelow(redis, webhookKeys.sent(StudyInstanceUID), version, isPriority);
  return sent && { version: sent.version, priority: sent.value };
}
