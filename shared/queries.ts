// The triage-query contract between the API (edits queries) and the worker (embeds and scores them).
// Queries live in Redis so a change takes effect in every worker without a restart: the API writes the hash,
// bumps the version and publishes; workers re-embed changed texts (cached by model version + text).
import { Value } from '@sinclair/typebox/value';
import type { Redis } from 'ioredis';
import { TriageQuerySchema, type TriageQuery } from './model-manifest';
import { KEY_PREFIX } from './studies';

export const queryKeys = {
  /** Hash: query id -> JSON TriageQuery. Seeded from the manifest's defaults when empty. */
  queries: () => `${KEY_PREFIX}:queries`,
  /** Integer, incremented on every change. */
  version: () => `${KEY_PREFIX}:queries:version`,
  /** Pub/sub channel: the new version number after each change. */
  changedChannel: () => `${KEY_PREFIX}:events:queries`,
};

/** Reads all queries; entries that no longer validate are skipped and returned as problems, never thrown. */
export async function readQueries(redis: Redis): Promise<{ queries: TriageQuery[]; version: number; problems: string[] }> {
  const [raw, version] = await Promise.all([redis.hgetall(queryKeys.queries()), redis.get(queryKeys.version())]);
  const queries: TriageQuery[] = [];
  const problems: string[] = [];
  for (const [id, json] of Object.entries(raw)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch {
      problems.push(`query ${id}: not JSON`);
      continue;
    }
    if (Value.Check(TriageQuerySchema, parsed)) queries.push(parsed);
    else problems.push(`query ${id}: does not match the TriageQuery schema`);
  }
  queries.sort((a, b) => a.id.localeCompare(b.id));
  return { queries, version: Number(version ?? 0), problems };
}

/** Seeds the defaults once (first start with an empty hash); returns true when it wrote them. */
export async function seedQueries(redis: Redis, defaults: TriageQuery[]): Promise<boolean> {
  const key = queryKeys.queries();
  if ((await redis.hlen(key)) > 0) return false;
  const fields = defaults.flatMap((q) => [q.id, JSON.stringify(q)]);
  // HSETNX-like for a whole set: only the first process to get here seeds.
  const ok = await redis.set(`${key}:seeded`, '1', 'NX');
  if (ok !== 'OK') return false;
  await redis.multi().hset(key, ...fields).incr(queryKeys.version()).exec();
  return true;
}

/** Writes (creates or replaces) or deletes one query, bumps the version and tells the workers. */
export async function changeQuery(redis: Redis, change: { put: TriageQuery } | { delete: string }): Promise<number> {
  const tx = redis.multi();
  if ('put' in change) tx.hset(queryKeys.queries(), change.put.id, JSON.stringify(change.put));
  else tx.hdel(queryKeys.queries(), change.delete);
  tx.incr(queryKeys.version());
  const res = await tx.exec();
  const version = Number(res?.[1]?.[1] ?? 0);
  await redis.publish(queryKeys.changedChannel(), String(version));
  return version;
}
