// Retention: deletes the stored DICOM instances of studies that finished (scored, failed or unsupported) more than
// RETENTION_DAYS ago. Results, vectors and the study's status stay, so the worklist, search and report check keep
// working; the images themselves are the PACS's to keep. Run daily (k8s CronJob, or cron with docker-compose run):
//   node dist/tools/retention.js [--dry-run]
// A study that received an instance or went back to the queue after finishing is left alone, and so is anything
// in the pending set: only studies idle on both counts since the cutoff are touched. While a study's folder is
// deleted it carries a purge mark (PURGING_FIELD) that makes the listener refuse its C-STOREs with A700, so an
// instance sent meanwhile is never acknowledged and then deleted; the PACS sends it again after the run.
import { rm, stat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Type, type Static } from '@sinclair/typebox';
import type { Redis } from 'ioredis';
import { dataDir, loadConfig, loadSection, settingsSource } from '../shared/config';
import { createLogger, type Logger } from '../shared/logger';
import { connectToolRedis, exitOnToolFailure } from '../shared/tool-redis';
import { parseResult, UNREADABLE } from '../shared/result-schema';
import { resultKeys } from '../shared/results';
import { keys, PURGE_FENCE_MS, PURGED_FIELD, PURGING_FIELD, scanStudyUids, studyStorageKey, type StudyStatus } from '../shared/studies';

export const RetentionSettingsSchema = Type.Object({
  /** Stored instances are deleted this many days after their study finished scoring. */
  RETENTION_DAYS: Type.Number({ exclusiveMinimum: 0, maximum: 36500 }),
});
export type RetentionSettings = Static<typeof RetentionSettingsSchema>;
export const RETENTION_DEFAULTS: RetentionSettings = { RETENTION_DAYS: 30 };

/** Statuses after which the worker will not read the instances again unless new ones arrive. */
const FINISHED: ReadonlySet<StudyStatus> = new Set<StudyStatus>(['scored', 'failed', 'unsupported']);

/**
 * Marks a study as being purged, atomically with the checks that it may be: still finished, not pending, nothing
 * received since the run read it, and no live purge mark. 1 when marked. KEYS: study hash, pending set. ARGV:
 * uid, lastReceivedAt as read ('' when none), now, purging field, fence ms, finished statuses...
 */
const BEGIN_PURGE = `
local status = redis.call('HGET', KEYS[1], 'status')
local finished = false
for i = 6, #ARGV do if status == ARGV[i] then finished = true end end
if not finished then return 0 end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
if (redis.call('HGET', KEYS[1], 'lastReceivedAt') or '') ~= ARGV[2] then return 0 end
local purging = tonumber(redis.call('HGET', KEYS[1], ARGV[4]))
if purging and tonumber(ARGV[3]) - purging < tonumber(ARGV[5]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[4], ARGV[3])
return 1
`;

/** After the folder is gone: forget the instances, note the purge, lift the mark. KEYS: study, instances. */
const FINISH_PURGE = `
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[3])
return 1
`;

type RedisWithPurge = Redis & {
  ntBeginPurge(study: string, pending: string, ...args: (string | number)[]): Promise<number>;
  ntFinishPurge(study: string, instances: string, purgedField: string, now: number, purgingField: string): Promise<number>;
};

function withPurgeScripts(redis: Redis): RedisWithPurge {
  const r = redis as RedisWithPurge;
  if (typeof r.ntBeginPurge !== 'function') {
    r.defineCommand('ntBeginPurge', { numberOfKeys: 2, lua: BEGIN_PURGE });
    r.defineCommand('ntFinishPurge', { numberOfKeys: 2, lua: FINISH_PURGE });
  }
  return r;
}

export interface RetentionDeps {
  redis: Redis;
  /** Absolute DATA_DIR. */
  dataDir: string;
  retentionDays: number;
  log: Logger;
  now?: () => number;
  dryRun?: boolean;
  /** Called with the purge mark set, before the folder is deleted (tests send an instance here). */
  beforeRemove?: (StudyInstanceUID: string) => Promise<void>;
}

export interface RetentionSummary {
  examined: number;
  purged: number;
  bytesFreed: number;
  /** Finished before the cutoff but left alone: pending, re-received, or without a finish time. */
  kept: number;
  dryRun: boolean;
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += await folderBytes(p);
    else if (e.isFile()) total += (await stat(p)).size;
  }
  return total;
}

/**
 * When the study finished: the result's scoredAt for scored studies (the contract), statusAt otherwise, and for a
 * scored study whose stored result cannot be read (one such study must not stop the run for all the others).
 */
async function finishedAt(redis: Redis, uid: string, status: StudyStatus, statusAt: number): Promise<number | undefined> {
  if (status === 'scored') {
    const json = await redis.get(resultKeys.result(uid));
    const result = json === null ? null : parseResult(json);
    if (result && result !== UNREADABLE && Number.isFinite(result.scoredAt)) return result.scoredAt;
  }
  return Number.isFinite(statusAt) && statusAt > 0 ? statusAt : undefined;
}

export async function runRetention(deps: RetentionDeps): Promise<RetentionSummary> {
  const now = (deps.now ?? Date.now)();
  const cutoff = now - deps.retentionDays * 86_400_000;
  const summary: RetentionSummary = { examined: 0, purged: 0, bytesFreed: 0, kept: 0, dryRun: deps.dryRun ?? false };
  const storeRoot = path.join(deps.dataDir, 'store');
  const redis = withPurgeScripts(deps.redis);
  for await (const uids of scanStudyUids(deps.redis, 500)) {
    for (const uid of uids) {
      const key = keys.study(uid);
      const study = await deps.redis.hmget(key, 'status', 'statusAt', 'lastReceivedAt', PURGED_FIELD);
      const [status, statusAt, lastReceivedAt, purgedAt] = study as [StudyStatus | null, string | null, string | null, string | null];
      if (!status || !FINISHED.has(status)) continue;
      summary.examined++;
      const done = await finishedAt(deps.redis, uid, status, Number(statusAt));
      if (done === undefined || done >= cutoff) {
        if (done === undefined) summary.kept++;
        continue;
      }
      // New instances after the finish, or a job still owed: the worker may read these files again soon.
      const received = Number(lastReceivedAt);
      const pending = (await deps.redis.sismember(keys.pendingStudies(), uid)) === 1;
      if (pending || (Number.isFinite(received) && received >= cutoff)) {
        summary.kept++;
        continue;
      }
      const folder = path.join(deps.dataDir, studyStorageKey(uid));
      // studyStorageKey validated the UID; this is the second fence against deleting outside the store.
      if (path.dirname(folder) !== storeRoot) throw new Error(`refusing to delete outside ${storeRoot}`);
      const bytes = await folderBytes(folder);
      if (purgedAt && bytes === 0) continue; // already done on an earlier run
      if (!deps.dryRun) {
        // The mark first, so the listener refuses this study's instances until the folder and its records are
        // gone; if we stop half-way the mark goes stale after PURGE_FENCE_MS and the next run finishes the job.
        const marked = await redis.ntBeginPurge(key, keys.pendingStudies(), uid, lastReceivedAt ?? '', Date.now(), PURGING_FIELD, PURGE_FENCE_MS, ...FINISHED);
        if (marked !== 1) {
          summary.kept++;
          continue;
        }
        await deps.beforeRemove?.(uid);
        await rm(folder, { recursive: true, force: true });
        await redis.ntFinishPurge(key, keys.studyInstances(uid), PURGED_FIELD, now, PURGING_FIELD);
      }
      summary.purged++;
      summary.bytesFreed += bytes;
      // UIDs and sizes only: never a patient identifier.
      deps.log.info({ StudyInstanceUID: uid, bytes, status, dryRun: summary.dryRun }, summary.dryRun ? 'stored instances would be purged (dry run)' : 'stored instances purged');
    }
  }
  deps.log.info({ ...summary, retentionDays: deps.retentionDays }, 'retention run finished');
  return summary;
}

const USAGE = `Usage: node dist/tools/retention.js [--dry-run]
Deletes the stored DICOM instances of studies that finished more than RETENTION_DAYS ago (results stay).
Reads REDIS_URL, DATA_DIR and RETENTION_DAYS from the environment or NEUROTRIAGE_CONFIG_FILE, like the services;
without REDIS_URL it uses the private Redis of npm start under DATA_DIR.
  --dry-run   list what would be deleted, delete nothing`;

async function main(): Promise<void> {
  let values: { 'dry-run': boolean; help: boolean };
  try {
    ({ values } = parseArgs({ options: { 'dry-run': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } } }));
  } catch (err) {
    // A mistyped option in a crontab (--dryrun) was a TypeError stack; say what was wrong and how to call it.
    console.error(`retention: ${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const config = loadConfig();
  const settings = loadSection(RetentionSettingsSchema, RETENTION_DEFAULTS, settingsSource(process.env));
  const log = createLogger('retention', config.LOG_LEVEL);
  const redis = await connectToolRedis(config, 'retention', log, 'nothing deleted');
  try {
    await runRetention({ redis, dataDir: dataDir(config), retentionDays: settings.RETENTION_DAYS, log, dryRun: values['dry-run'] });
  } finally {
    redis.disconnect();
  }
}

if (require.main === module) main().catch(exitOnToolFailure);
