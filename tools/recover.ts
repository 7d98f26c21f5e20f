// Recovering what Redis lost from the instance store. After Redis is restored from an older backup, or its volume
// is lost, the instances under DATA_DIR/store that Redis has no record of were acknowledged to the PACS (it will not
// send them again), yet nothing lists, scores or purges them: the worklist, the worker and retention all start from
// Redis. This records each such instance as the listener did when it arrived (the file's modification time stands
// in for the arrival time), then queues each study that gained one to be scored, behind new arrivals, as
// tools/rescore.ts does. Instances Redis knows are left as they are, so a run can be stopped and repeated, and it
// may run beside the listener. Run where the services' Redis and DATA_DIR are both reachable:
//   node dist/tools/recover.js [--limit 1000] [--dry-run]
// UIDs and paths under DATA_DIR reach the output, never anything of the patient.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { dataDir } from '../shared/config';
import { failCli, parseOptions, UsageError } from '../shared/cli-args';
import { fileSource, readInstanceHeader } from '../shared/imaging/dicom-header';
import type { Logger } from '../shared/logger';
import { createRescorer, type RescoreOutcome } from '../shared/rescore';
import { instanceStorageKey, isUid, keys, PURGE_FENCE_MS, PURGING_FIELD, STORE_DIR, studyStorageKey, type StudyJobData } from '../shared/studies';
import { exitOnToolFailure, withStudyQueue } from '../shared/tool-redis';
import { BULK_PRIORITY } from './rescore';

/**
 * Records one instance as the listener's arrival does (services/listener/study-assembler.ts), from the file:
 * instance hash, study hash counters and times, 'received' unless a job holds the study, the pending set (so a job
 * lost before this tool queues one is re-queued at the listener's next start). The arrival time is the file's
 * modification time, so the times only widen. Returns 1 when recorded, 0 when Redis knows the instance already,
 * -1 while retention is deleting the study. KEYS: instances hash, study hash, pending set. ARGV: SOPInstanceUID,
 * storage key, arrival (ms), bytes, StudyInstanceUID, study storage key, now (ms), purging field, purge fence (ms),
 * AccessionNumber (may be empty).
 */
const RECORD_FROM_STORE = `
local purging = tonumber(redis.call('HGET', KEYS[2], ARGV[8]))
if purging and tonumber(ARGV[7]) - purging < tonumber(ARGV[9]) then return -1 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], 'instances', 1)
redis.call('HINCRBY', KEYS[2], 'bytes', ARGV[4])
local at = tonumber(ARGV[3])
local first = tonumber(redis.call('HGET', KEYS[2], 'firstReceivedAt'))
if not first or at < first then redis.call('HSET', KEYS[2], 'firstReceivedAt', ARGV[3]) end
local last = tonumber(redis.call('HGET', KEYS[2], 'lastReceivedAt'))
if not last or at > last then redis.call('HSET', KEYS[2], 'lastReceivedAt', ARGV[3]) end
redis.call('HSET', KEYS[2], 'StudyInstanceUID', ARGV[5], 'storageKey', ARGV[6])
if redis.call('HGET', KEYS[2], 'status') ~= 'queued' then redis.call('HSET', KEYS[2], 'status', 'received') end
if ARGV[10] ~= '' and not redis.call('HGET', KEYS[2], 'AccessionNumber') then redis.call('HSET', KEYS[2], 'AccessionNumber', ARGV[10]) end
redis.call('SADD', KEYS[3], ARGV[5])
return 1
`;

/**
 * 'still-arriving': files written within the quiet period (and this slack) of now, left to the listener; a later run
 * records what it did not.
 */
export type RecoverOutcome = RescoreOutcome['outcome'] | 'would-queue' | 'still-arriving';

/** Beyond the quiet period, how recent a study's newest file may be for the study to count as still arriving. */
export const ARRIVING_SLACK_MS = 30_000;

export interface RecoverSummary {
  /** Study folders in the store. */
  studies: number;
  /** Studies with instances Redis had no record of (recorded now, or that would be in a dry run). */
  recovered: number;
  /** Instances recorded (or that would be). */
  instances: number;
  /** Files left unrecorded: not a readable DICOM instance, or not the instance their path names. */
  unreadable: number;
  /** Per study recovered: how its re-score went (shared/rescore.ts); 'would-queue' in a dry run. */
  outcomes: Record<string, number>;
  /** Stopped at the limit: more studies may have instances to recover. */
  limited: boolean;
  dryRun: boolean;
}

export interface RecoverDeps {
  redis: Redis;
  queue: Queue<StudyJobData>;
  log: Logger;
  /** Absolute DATA_DIR. */
  dataDir: string;
  /** Studies to recover at most in this run. */
  limit: number;
  /** STUDY_QUIET_SECONDS in ms: a study with a file newer than this (plus ARRIVING_SLACK_MS) is still arriving. */
  quietMs?: number;
  dryRun?: boolean;
  now?: () => number;
  /** Each study recovered, with its re-score outcome and how many instances it gained. */
  onStudy?: (StudyInstanceUID: string, outcome: RecoverOutcome, instances: number) => void;
  /** Each file left unrecorded (its path relative to DATA_DIR) and why. */
  onUnreadable?: (storageKey: string, reason: string) => void;
}

interface StoredFile {
  SeriesInstanceUID: string;
  SOPInstanceUID: string;
  storageKey: string;
}

type RedisWithRecord = Redis & {
  ntRecordFromStore(instances: string, study: string, pending: string, ...args: (string | number)[]): Promise<number>;
};

async function entries(dir: string) {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Study folders, the most recently changed first: the studies likeliest still waiting to be read are queued first. */
async function studyFolders(storeRoot: string, unreadable: (key: string, reason: string) => void): Promise<string[]> {
  const dated: Array<{ uid: string; mtimeMs: number }> = [];
  for (const e of await entries(storeRoot)) {
    if (!e.isDirectory() || !isUid(e.name)) {
      unreadable(path.posix.join(STORE_DIR, e.name), 'not a study folder (named by a StudyInstanceUID)');
      continue;
    }
    dated.push({ uid: e.name, mtimeMs: (await stat(path.join(storeRoot, e.name))).mtimeMs });
  }
  return dated.sort((a, b) => b.mtimeMs - a.mtimeMs).map((d) => d.uid);
}

/** The files of one study folder laid out as the listener stores them; anything else is reported. */
async function studyFiles(root: string, uid: string, unreadable: (key: string, reason: string) => void): Promise<StoredFile[]> {
  const files: StoredFile[] = [];
  const studyKey = studyStorageKey(uid);
  for (const series of await entries(path.join(root, studyKey))) {
    if (!series.isDirectory() || !isUid(series.name)) {
      unreadable(path.posix.join(studyKey, series.name), 'not a series folder (named by a SeriesInstanceUID)');
      continue;
    }
    for (const f of await entries(path.join(root, studyKey, series.name))) {
      const sop = f.name.endsWith('.dcm') ? f.name.slice(0, -4) : '';
      if (!f.isFile() || !isUid(sop)) {
        unreadable(path.posix.join(studyKey, series.name, f.name), 'not an instance file (named <SOPInstanceUID>.dcm)');
        continue;
      }
      files.push({ SeriesInstanceUID: series.name, SOPInstanceUID: sop, storageKey: instanceStorageKey(uid, series.name, sop) });
    }
  }
  return files;
}

/** The files of the study Redis has no instance record of. */
async function unrecorded(redis: Redis, uid: string, files: StoredFile[]): Promise<StoredFile[]> {
  const out: StoredFile[] = [];
  for (let i = 0; i < files.length; i += 1000) {
    const chunk = files.slice(i, i + 1000);
    const known = await redis.hmget(keys.studyInstances(uid), ...chunk.map((f) => f.SOPInstanceUID));
    chunk.forEach((f, k) => known[k] === null && out.push(f));
  }
  return out;
}

/** What the arrival record needs from the file, or why it cannot be recorded. */
async function readStored(root: string, uid: string, file: StoredFile): Promise<{ bytes: number; at: number; AccessionNumber: string } | string> {
  const full = path.join(root, file.storageKey);
  try {
    const s = await stat(full);
    const { header } = await readInstanceHeader(fileSource(full, s.size), file.storageKey);
    if (header.StudyInstanceUID !== uid || header.SeriesInstanceUID !== file.SeriesInstanceUID || header.SOPInstanceUID !== file.SOPInstanceUID) {
      return 'its UIDs are not those its path names';
    }
    return { bytes: s.size, at: Math.round(s.mtimeMs), AccessionNumber: header.AccessionNumber ?? '' };
  } catch (err) {
    return `not a readable DICOM instance (${(err as Error).message.replace(full, file.storageKey)})`;
  }
}

export async function runRecover(deps: RecoverDeps): Promise<RecoverSummary> {
  const now = deps.now ?? Date.now;
  const redis = deps.redis as RedisWithRecord;
  if (!redis.ntRecordFromStore) redis.defineCommand('ntRecordFromStore', { numberOfKeys: 3, lua: RECORD_FROM_STORE });
  const rescorer = createRescorer({ redis: deps.redis, queue: deps.queue, clock: now });
  const summary: RecoverSummary = { studies: 0, recovered: 0, instances: 0, unreadable: 0, outcomes: {}, limited: false, dryRun: deps.dryRun ?? false };
  const unreadable = (key: string, reason: string) => {
    summary.unreadable += 1;
    deps.onUnreadable?.(key, reason);
  };
  const count = (uid: string, outcome: RecoverOutcome, instances: number) => {
    summary.outcomes[outcome] = (summary.outcomes[outcome] ?? 0) + 1;
    deps.onStudy?.(uid, outcome, instances);
  };

  for (const uid of await studyFolders(path.join(deps.dataDir, STORE_DIR), unreadable)) {
    summary.studies += 1;
    const missing = await unrecorded(deps.redis, uid, await studyFiles(deps.dataDir, uid, unreadable));
    if (missing.length === 0) continue;
    if (summary.recovered >= deps.limit) {
      summary.limited = true;
      break;
    }
    const readable: Array<{ file: StoredFile; read: Exclude<Awaited<ReturnType<typeof readStored>>, string> }> = [];
    for (const file of missing) {
      const read = await readStored(deps.dataDir, uid, file);
      if (typeof read === 'string') unreadable(file.storageKey, read);
      else readable.push({ file, read });
    }
    // A study whose files are still arriving is the listener's: it records each instance as it stores it. Taken
    // here between a file's rename and its record, the study was queued at once and could be scored before its last
    // series arrived.
    const newest = Math.max(...readable.map((r) => r.read.at));
    if (readable.length > 0 && now() - newest < (deps.quietMs ?? 0) + ARRIVING_SLACK_MS) {
      count(uid, 'still-arriving', 0);
      continue;
    }
    let recorded = 0;
    let purging = false;
    for (const { file, read } of readable) {
      if (summary.dryRun) {
        recorded += 1;
        continue;
      }
      const done = await redis.ntRecordFromStore(
        keys.studyInstances(uid), keys.study(uid), keys.pendingStudies(),
        file.SOPInstanceUID, file.storageKey, read.at, read.bytes, uid, studyStorageKey(uid), now(), PURGING_FIELD, PURGE_FENCE_MS, read.AccessionNumber,
      );
      if (done === -1) {
        purging = true;
        break;
      }
      recorded += done;
    }
    // A dry run asks what the real run would meet (retention deleting the study, a job holding it), records taken as made.
    const check = summary.dryRun && recorded > 0 ? await rescorer.check(uid, { instancesRecorded: true }) : undefined;
    if (purging || check?.outcome === 'purging') {
      count(uid, 'purging', purging ? recorded : 0); // the real run records nothing of a study being purged
      continue;
    }
    if (recorded === 0) continue; // every file unreadable, or the listener recorded them meanwhile
    summary.recovered += 1;
    summary.instances += recorded;
    count(uid, check ? check.outcome : (await rescorer.rescore(uid, { priority: BULK_PRIORITY, followActive: true })).outcome, recorded);
  }
  deps.log.info({ ...summary }, summary.dryRun ? 'recover dry run finished' : 'recover finished');
  return summary;
}

const OPTIONS = {
  limit: { type: 'string', default: '1000' },
  'dry-run': { type: 'boolean', default: false },
} as const;

const ABOUT = `Records the instances under DATA_DIR/store that Redis has no record of (after Redis was restored from an
older backup, or lost), as the listener did when they arrived, and queues their studies to be scored behind new
arrivals. --limit stops after that many studies (run again to go on); --dry-run lists, records and queues nothing.
Reads REDIS_URL and DATA_DIR like the services (without REDIS_URL, the private Redis of npm start under DATA_DIR).`;

/** The command line as options; a UsageError (exit 2) for anything it cannot mean. */
export function recoverOptionsFrom(argv: string[]): { limit: number; dryRun: boolean } {
  const v = parseOptions(OPTIONS, argv, { about: ABOUT });
  const limit = Number(v.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit: expected a whole number of studies, at least 1 (got ${v.limit})`, ABOUT);
  return { limit, dryRun: v['dry-run'] };
}

async function main(): Promise<void> {
  const { limit, dryRun } = recoverOptionsFrom(process.argv.slice(2));
  await withStudyQueue('recover', 'nothing recorded', async ({ config, redis, queue, log }) => {
    const summary = await runRecover({
      redis, queue, log, dataDir: dataDir(config), limit, dryRun, quietMs: config.STUDY_QUIET_SECONDS * 1000,
      onStudy: (uid, outcome, n) => console.log(`${uid}\t${outcome}\t${n} instances`),
      onUnreadable: (key, reason) => console.log(`${key}\tleft as it is: ${reason}`),
    });
    const counts = Object.entries(summary.outcomes).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
    console.log(
      `${dryRun ? 'dry run: ' : ''}${summary.studies} study folders; ${summary.recovered} studies with ${summary.instances} instances Redis had no record of (${counts}); ` +
        `${summary.unreadable} files left as they are${summary.limited ? `; stopped at --limit ${limit}, run again for the rest` : ''}`,
    );
  });
}

if (require.main === module) main().catch((err: unknown) => (err instanceof UsageError ? failCli(err) : exitOnToolFailure(err)));
