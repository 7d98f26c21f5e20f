// Scoring many studies again from their stored instances: after a model bundle upgrade (the studies a bundle
// other than the running one scored), after an outage fixed (every failed study of the last days), or a list of
// UIDs. Each study is queued as POST /api/v1/studies/:uid/rescore queues one (shared/rescore.ts), but behind new
// arrivals (a BullMQ priority), so a bulk run never delays a study just received. Run where the services' Redis is
// reachable, like retention:
//   node dist/tools/rescore.js --status failed,unsupported --since 2026-12-01 [--dry-run]
//   node dist/tools/rescore.js --model-other-than neurotriage-synthetic-reference@2026.12.06-dwi-domain --since ...
// Criteria given together must all hold. UIDs only reach the output, never anything of the patient.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { failCli, parseOptions, UsageError } from '../shared/cli-args';
import type { Logger } from '../shared/logger';
import { createRescorer, type RescoreOutcome } from '../shared/rescore';
import { parseResult, UNREADABLE } from '../shared/result-schema';
import { resultKeys } from '../shared/results';
import { isUid, keys, scanStudyUids, type StudyJobData, type StudyStatus } from '../shared/studies';
import { exitOnToolFailure, withStudyQueue } from '../shared/tool-redis';

/** BullMQ priority of a bulk re-score: after every job without one (new arrivals, an administrator's single study). */
export const BULK_PRIORITY = 10;

const STATUSES: readonly StudyStatus[] = ['received', 'queued', 'scoring', 'scored', 'failed', 'unsupported'];

export interface RescoreCriteria {
  /** These studies only (else every study with a study hash). */
  studies?: string[];
  statuses?: StudyStatus[];
  /** `<bundleId>@<version>`: studies whose stored result another bundle made (or that cannot be read). */
  modelOtherThan?: string;
  /** Only studies whose last instance arrived at or after this (ms epoch). */
  since?: number;
}

export interface RescoreSummary {
  selected: number;
  /** Per outcome of shared/rescore.ts ('would-queue' in a dry run). */
  outcomes: Record<string, number>;
  /** Selection stopped at the limit: more studies matched. */
  limited: boolean;
  dryRun: boolean;
}

/** The model a stored result names as `bundleId@version`; null when there is no result, '' when it cannot be read. */
async function resultModels(redis: Redis, uids: string[]): Promise<(string | null)[]> {
  const raw = await redis.mget(uids.map((u) => resultKeys.result(u)));
  return raw.map((json) => {
    if (json === null) return null;
    const result = parseResult(json); // read as the API reads it: what the worklist calls unreadable is '' here too
    return result === UNREADABLE ? '' : `${result.model.bundleId}@${result.model.version}`;
  });
}

/** The UIDs of `batch` that meet every criterion. */
async function matching(redis: Redis, batch: string[], c: RescoreCriteria): Promise<string[]> {
  const read = redis.pipeline();
  for (const uid of batch) read.hmget(keys.study(uid), 'status', 'lastReceivedAt');
  const rows = ((await read.exec()) ?? []).map(([err, v]) => (err ? [null, null] : v) as (string | null)[]);
  const models = c.modelOtherThan ? await resultModels(redis, batch) : [];
  return batch.filter((_, i) => {
    const [status, last] = rows[i];
    if (status === null) return false; // no study hash: nothing was received under this UID
    if (c.statuses && !c.statuses.includes(status as StudyStatus)) return false;
    if (c.since !== undefined && !(Number(last) >= c.since)) return false;
    if (c.modelOtherThan && (models[i] === null || models[i] === c.modelOtherThan)) return false;
    return true;
  });
}

async function* candidates(redis: Redis, c: RescoreCriteria): AsyncGenerator<string[]> {
  if (c.studies) {
    for (let i = 0; i < c.studies.length; i += 500) yield c.studies.slice(i, i + 500);
    return;
  }
  yield* scanStudyUids(redis, 500);
}

export async function runRescore(deps: {
  redis: Redis;
  queue: Queue<StudyJobData>;
  log: Logger;
  criteria: RescoreCriteria;
  limit: number;
  dryRun?: boolean;
  /** Each study selected, with what happened to it ('would-queue' in a dry run). */
  onStudy?: (StudyInstanceUID: string, outcome: RescoreOutcome['outcome'] | 'would-queue') => void;
}): Promise<RescoreSummary> {
  const rescorer = createRescorer({ redis: deps.redis, queue: deps.queue });
  const summary: RescoreSummary = { selected: 0, outcomes: {}, limited: false, dryRun: deps.dryRun ?? false };
  const seen = new Set<string>();
  for await (const batch of candidates(deps.redis, deps.criteria)) {
    // SCAN may return a key twice.
    const fresh = batch.filter((u) => !seen.has(u));
    for (const uid of await matching(deps.redis, fresh, deps.criteria)) {
      if (summary.selected >= deps.limit) {
        summary.limited = true;
        break;
      }
      seen.add(uid);
      summary.selected += 1;
      // A dry run asks what the real run would answer (purged, already-queued...), not just that it was selected.
      const outcome = (summary.dryRun ? await rescorer.check(uid) : await rescorer.rescore(uid, { priority: BULK_PRIORITY })).outcome;
      summary.outcomes[outcome] = (summary.outcomes[outcome] ?? 0) + 1;
      deps.onStudy?.(uid, outcome);
    }
    if (summary.limited) break;
  }
  deps.log.info({ ...summary, criteria: { ...deps.criteria, studies: deps.criteria.studies?.length } }, summary.dryRun ? 'rescore dry run finished' : 'rescore finished');
  return summary;
}

const OPTIONS = {
  study: { type: 'string' },
  status: { type: 'string' },
  'model-other-than': { type: 'string' },
  since: { type: 'string' },
  limit: { type: 'string', default: '1000' },
  'dry-run': { type: 'boolean', default: false },
} as const;

const ABOUT = `Queues studies to be scored again from their stored instances, behind new arrivals. At least one of
--study (UIDs, comma-separated), --status (${STATUSES.join(', ')}; comma-separated) or --model-other-than
(<bundleId>@<version>: studies another bundle scored, and results that cannot be read); --since (ISO 8601) keeps
studies whose last instance arrived then or later; --limit stops after that many; --dry-run lists, queues nothing.
Reads REDIS_URL and DATA_DIR like the services (without REDIS_URL, the private Redis of npm start under DATA_DIR).`;

/** The command line as criteria; a UsageError (exit 2) for anything it cannot mean. */
export function criteriaFrom(argv: string[]): { criteria: RescoreCriteria; limit: number; dryRun: boolean } {
  const v = parseOptions(OPTIONS, argv, { about: ABOUT });
  const usage = (message: string) => new UsageError(message, ABOUT);
  const list = (s: string | undefined) => s?.split(',').map((x) => x.trim()).filter(Boolean);
  const criteria: RescoreCriteria = {};
  const studies = list(v.study);
  if (studies) {
    const bad = studies.filter((u) => !isUid(u));
    if (bad.length > 0) throw usage(`--study: ${bad.length} of ${studies.length} values are not a DICOM UID (digits and dots, at most 64 characters)`);
    criteria.studies = [...new Set(studies)];
  }
  const statuses = list(v.status);
  if (statuses) {
    const bad = statuses.filter((s) => !STATUSES.includes(s as StudyStatus));
    if (bad.length > 0) throw usage(`--status: ${bad.join(', ')} is not a study status (${STATUSES.join(', ')})`);
    criteria.statuses = statuses as StudyStatus[];
  }
  if (v['model-other-than'] !== undefined) {
    if (!/^[^@\s]+@[^@\s]+$/.test(v['model-other-than'])) throw usage('--model-other-than: expected <bundleId>@<version>, as the worker metric label model_version shows it');
    criteria.modelOtherThan = v['model-other-than'];
  }
  if (v.since !== undefined) {
    const t = Date.parse(v.since);
    if (!/^\d{4}-\d{2}-\d{2}/.test(v.since) || !Number.isFinite(t)) throw usage(`--since: expected an ISO 8601 date or time, e.g. 2026-12-01 or 2026-12-01T08:00:00Z`);
    criteria.since = t;
  }
  if (!criteria.studies && !criteria.statuses && !criteria.modelOtherThan) {
    throw usage('say which studies: --study, --status or --model-other-than (nothing is re-scored by default)');
  }
  const limit = Number(v.limit);
  if (!Number.isInteger(limit) || limit < 1) throw usage(`--limit: expected a whole number of studies, at least 1 (got ${v.limit})`);
  return { criteria, limit, dryRun: v['dry-run'] };
}

async function main(): Promise<void> {
  const { criteria, limit, dryRun } = criteriaFrom(process.argv.slice(2));
  await withStudyQueue('rescore', 'nothing queued', async ({ redis, queue, log }) => {
    const summary = await runRescore({
      redis, queue, log, criteria, limit, dryRun,
      onStudy: (uid, outcome) => console.log(`${uid}\t${outcome}`),
    });
    const counts = Object.entries(summary.outcomes).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
    console.log(`${dryRun ? 'dry run: ' : ''}${summary.selected} studies selected (${counts})${summary.limited ? `; stopped at --limit ${limit}, more match` : ''}`);
    if (summary.outcomes.purged) console.log('purged: retention deleted their instances; send those studies again from the PACS');
  });
}

if (require.main === module) main().catch((err: unknown) => (err instanceof UsageError ? failCli(err) : exitOnToolFailure(err)));
