// The triage-query contract between the API (edits queries) and the worker (embeds and scores them).
// The query set a study is judged with is two layers:
//   - the RUNNING bundle's default queries, always read from its manifest (so a new bundle brings its own
//     sentences, contrast sentences and calibration, and no Redis state can leave a worker with zero queries);
//   - the site layer in Redis: queries a site made, a site's edits of bundle queries (stored whole, origin 'site',
//     they replace the default of the same id) and the ids of bundle queries the site turned off.
// The API writes the site layer, bumps the version and publishes; workers re-read on the message and compare the
// version before each study. Site queries' calibrations name the bundle they were fitted on: another bundle never
// applies them (shared/models/calibration.ts calibrationState).
import { Value } from '@sinclair/typebox/value';
import type { Redis } from 'ioredis';
import { TriageQuerySchema, type TriageQuery } from './model-manifest';
import { KEY_PREFIX } from './studies';

export const queryKeys = {
  /** Hash: query id -> JSON TriageQuery of the site layer (origin 'site'). */
  queries: () => `${KEY_PREFIX}:queries`,
  /** Set: ids of bundle default queries the site turned off. */
  disabled: () => `${KEY_PREFIX}:queries:disabled`,
  /** Integer, incremented on every change of the site layer. */
  version: () => `${KEY_PREFIX}:queries:version`,
  /** Pub/sub channel: the new version number after each change. */
  changedChannel: () => `${KEY_PREFIX}:events:queries`,
  /** "2" once the hash holds only the site layer (query-migration.ts moved older contents). */
  schema: () => `${KEY_PREFIX}:queries:schema`,
  /**
   * Hash: query id -> JSON CalibrationAttempt, the outcome of the service's last attempt to calibrate a site query
   * from reports (why it is still uncalibrated, with the counts), for the page's warning.
   */
  calibrationAttempts: () => `${KEY_PREFIX}:queries:calibration-attempts`,
  /** Hash: "bundleId@version" -> JSON JudgingInUse: what the workers running that bundle judge studies with. */
  judging: () => `${KEY_PREFIX}:decision:in-use`,
};

export const QUERY_SCHEMA_VERSION = '2';

/** Used for a site query that names none (the bundle's defaults were calibrated for 0.95). */
export const DEFAULT_TARGET_SENSITIVITY = 0.95;

export interface CalibrationAttempt {
  /** ISO time of the attempt. */
  at: string;
  ok: boolean;
  /** Why it could not be calibrated (not enough reported studies, no report mentions it, ...), or how it was. */
  detail: string;
  studies: number;
  positives: number;
  /** The query fingerprint and bundle it was attempted for: an attempt for other text says nothing of this one. */
  fittedFor: string;
  bundleVersion: string;
}

/** What the workers of one bundle judge with (written by each worker at start; the API shows it). */
export interface JudgingInUse {
  classThresholds: Partial<Record<'STAT' | 'URGENT', number>>;
  /** The site's chosen study-level sensitivities (TRIAGE_STAT_SENSITIVITY, ...), when set. */
  sensitivity: Partial<Record<'STAT' | 'URGENT', number>>;
  at: string;
}

export interface SiteLayer {
  queries: TriageQuery[];
  disabled: string[];
  version: number;
  /** Stored entries that no longer validate: skipped, never thrown. */
  problems: string[];
  /** Each entry's JSON as read, by id: what a later write compares with (changeQueryIf). */
  stored: Record<string, string>;
}

/** Reads the site layer; entries that no longer validate are skipped and returned as problems. */
export async function readSiteLayer(redis: Redis): Promise<SiteLayer> {
  const [raw, disabled, version] = await Promise.all([
    redis.hgetall(queryKeys.queries()),
    redis.smembers(queryKeys.disabled()),
    redis.get(queryKeys.version()),
  ]);
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
    if (Value.Check(TriageQuerySchema, parsed)) queries.push({ ...parsed, origin: 'site' });
    else problems.push(`query ${id}: does not match the TriageQuery schema`);
  }
  queries.sort((a, b) => a.id.localeCompare(b.id));
  return { queries, disabled: disabled.sort(), version: Number(version ?? 0), problems, stored: raw };
}

export interface QuerySet {
  /** What studies are judged with: bundle defaults (origin 'bundle') not turned off or replaced, and site queries. */
  queries: TriageQuery[];
  /** Bundle defaults the site turned off (shown, not scored). */
  disabled: TriageQuery[];
  version: number;
  problems: string[];
}

/** The effective set: every bundle default, replaced by a site query of the same id or left out when turned off. */
export function effectiveQueries(defaults: readonly TriageQuery[], site: Pick<SiteLayer, 'queries' | 'disabled'>): { queries: TriageQuery[]; disabled: TriageQuery[] } {
  const bySite = new Map(site.queries.map((q) => [q.id, q]));
  const off = new Set(site.disabled);
  const queries: TriageQuery[] = [];
  const disabled: TriageQuery[] = [];
  for (const d of defaults) {
    const own = bySite.get(d.id);
    if (own) continue; // added below with the site's queries
    if (off.has(d.id)) disabled.push({ ...d, origin: 'bundle' });
    else queries.push({ ...d, origin: 'bundle' });
  }
  queries.push(...site.queries.map((q) => ({ ...q, origin: 'site' as const })));
  queries.sort((a, b) => a.id.localeCompare(b.id));
  return { queries, disabled };
}

/** The running bundle's defaults layered with the site's queries (see the module header). */
export async function readQuerySet(redis: Redis, defaults: readonly TriageQuery[]): Promise<QuerySet> {
  const site = await readSiteLayer(redis);
  return { ...effectiveQueries(defaults, site), version: site.version, problems: site.problems };
}

async function bump(redis: Redis, tx: ReturnType<Redis['multi']>): Promise<number> {
  tx.incr(queryKeys.version());
  const res = await tx.exec();
  const failed = res?.find(([err]) => err);
  if (!res || failed) throw new Error(`changing the triage queries failed: ${failed?.[0]?.message ?? 'transaction aborted'}`);
  const version = Number(res[res.length - 1][1]);
  await redis.publish(queryKeys.changedChannel(), String(version));
  return version;
}

/**
 * Writes (creates or replaces) or deletes one site query, bumps the version and tells the workers. Writing a query
 * turns its id back on if it was a turned-off bundle default; deleting a site query that replaced a bundle default
 * brings the default back.
 */
export async function changeQuery(redis: Redis, change: { put: TriageQuery } | { delete: string }): Promise<number> {
  const tx = redis.multi();
  if ('put' in change) {
    tx.hset(queryKeys.queries(), change.put.id, JSON.stringify({ ...change.put, origin: 'site' }));
    tx.srem(queryKeys.disabled(), change.put.id);
  } else {
    // The query's last calibration attempt goes with it: a query re-created under its id showed the old one's. One
    // a calibration still running records later is refused (recordCalibrationAttempt compares the entry first).
    tx.hdel(queryKeys.queries(), change.delete).hdel(queryKeys.calibrationAttempts(), change.delete);
  }
  return bump(redis, tx);
}

/**
 * KEYS: hash, disabled set, version, calibration attempts. ARGV: id, the entry's JSON as read ('' when there was
 * none), the new JSON ('' deletes, and the query's last calibration attempt with it), the calibration attempt made
 * for the new JSON ('' none: the stored one is left). Writes only when the entry still holds what was read, so the
 * change, the attempt and the check are one step.
 */
const CHANGE_IF = `
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return false end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  redis.call('SREM', KEYS[2], ARGV[1])
  if ARGV[4] ~= '' then redis.call('HSET', KEYS[4], ARGV[1], ARGV[4]) end
end
return redis.call('INCR', KEYS[3])
`;

/**
 * changeQuery, but only if the site entry of that id still holds `expected` (its JSON as read; null: there was none).
 * A calibration takes seconds on a large site; what was computed for the query as read must never replace an edit
 * or a delete made meanwhile, nor revive a deleted query. `attempt`: the calibration attempt made for the query
 * written, recorded with it in the same step (so only the saved edit's attempt is ever recorded: two edits compared
 * with the same entry each recorded theirs before either was saved, and the refused one's could be left over the
 * saved one). Null when the entry changed (nothing written, the attempt dropped).
 */
export async function changeQueryIf(
  redis: Redis, id: string, expected: string | null, change: { put: TriageQuery } | { delete: true }, attempt?: CalibrationAttempt,
): Promise<number | null> {
  if ('put' in change && change.put.id !== id) throw new Error(`changeQueryIf: query ${change.put.id} written under id ${id}`);
  const next = 'put' in change ? JSON.stringify({ ...change.put, origin: 'site' }) : '';
  const res = await redis.eval(
    CHANGE_IF, 4, queryKeys.queries(), queryKeys.disabled(), queryKeys.version(), queryKeys.calibrationAttempts(),
    id, expected ?? '', next, 'put' in change && attempt ? JSON.stringify(attempt) : '',
  );
  if (res === null) return null;
  const version = Number(res);
  await redis.publish(queryKeys.changedChannel(), String(version));
  return version;
}

/**
 * Drops a site query's stored calibration (one that flags nearly every study and cannot be redone: the query is then
 * not calibrated, with the reason on the page, rather than judged with it), if the entry still holds `expected` (its
 * JSON as read), with the attempt that could not redo it. Used by the background calibration pass and by "Calibrate
 * now". Null when it changed meanwhile.
 */
export async function dropCalibration(redis: Redis, q: TriageQuery, expected: string, attempt?: CalibrationAttempt): Promise<number | null> {
  const { calibration: _dropped, ...uncalibrated } = q;
  return changeQueryIf(redis, q.id, expected, { put: uncalibrated }, attempt);
}

/** Turns a bundle default off (true) or on again (false). */
export async function setDefaultDisabled(redis: Redis, id: string, disabled: boolean): Promise<number> {
  const tx = redis.multi();
  if (disabled) tx.sadd(queryKeys.disabled(), id);
  else tx.srem(queryKeys.disabled(), id);
  return bump(redis, tx);
}

/** Back to a bundle default: the site's copy of it (and the copy's last calibration attempt) removed, the default turned on again. */
export async function restoreDefault(redis: Redis, id: string): Promise<number> {
  return bump(redis, redis.multi().hdel(queryKeys.queries(), id).hdel(queryKeys.calibrationAttempts(), id).srem(queryKeys.disabled(), id));
}

/** KEYS: query hash, attempts hash. ARGV: id, the entry's JSON as read ('' when there was none), the attempt's JSON. */
const RECORD_ATTEMPT_IF = `
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
`;

/**
 * Records the outcome of an attempt to calibrate a site query (the page's warning reads it) when nothing else is
 * written (the calibration failed and the query stays as it is), only if the site entry of that id still holds
 * `expected` (its JSON as the calibration read it; null: there was none), compared and written in one step: the
 * attempt is then for the entry as stored. A calibration takes seconds: written unconditionally, the attempt of one
 * that a delete overtook stayed in Redis for a query that no longer existed (the delete had already removed the
 * query's attempt), and was shown for a query created again under that id with that text. An attempt whose query is
 * written (an edit, a calibration, a dropped one) is recorded by changeQueryIf in the write's own step instead.
 * False when the entry changed (nothing written).
 */
export async function recordCalibrationAttempt(redis: Redis, id: string, expected: string | null, attempt: CalibrationAttempt): Promise<boolean> {
  return Number(await redis.eval(RECORD_ATTEMPT_IF, 2, queryKeys.queries(), queryKeys.calibrationAttempts(), id, expected ?? '', JSON.stringify(attempt))) === 1;
}

export async function readCalibrationAttempts(redis: Redis): Promise<Map<string, CalibrationAttempt>> {
  const raw = await redis.hgetall(queryKeys.calibrationAttempts());
  const out = new Map<string, CalibrationAttempt>();
  for (const [id, json] of Object.entries(raw)) {
    try {
      out.set(id, JSON.parse(json) as CalibrationAttempt);
    } catch {
      // an unreadable entry is as good as none: the next attempt rewrites it
    }
  }
  return out;
}

export const judgingKey = (bundle: { bundleId: string; version: string }): string => `${bundle.bundleId}@${bundle.version}`;

export async function publishJudging(redis: Redis, bundle: { bundleId: string; version: string }, judging: JudgingInUse): Promise<void> {
  await redis.hset(queryKeys.judging(), judgingKey(bundle), JSON.stringify(judging));
}

export async function readJudging(redis: Redis, bundle: { bundleId: string; version: string }): Promise<JudgingInUse | null> {
  const raw = await redis.hget(queryKeys.judging(), judgingKey(bundle));
  return raw ? (JSON.parse(raw) as JudgingInUse) : null;
}
