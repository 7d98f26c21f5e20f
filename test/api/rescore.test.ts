// An administrator has a study scored again (POST /api/v1/studies/:uid/rescore), end to end: the real API, a real
// Redis, the real worker (startWorker, in-process, a tiny untrained bundle) and real DICOM files. A study that failed
// because its files were missing is scored once they are back; a scored study gets its next result version; every
// refusal (unknown, purged, being purged, nothing stored, a job already holding it, not an admin) says why.
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Queue } from 'bullmq';
import { connectRedis } from '../../shared/redis';
import { resultKeys } from '../../shared/results';
import { keys, instanceStorageKey, PURGED_FIELD, PURGING_FIELD, SCORE_STUDY_JOB, STUDY_DEAD_LETTER_QUEUE, studyStorageKey } from '../../shared/studies';
import { auditFileFor } from '../../services/api/plugins/audit';
import { startWorker, type RunningWorker } from '../../services/worker/main';
import { startRedis, type TestRedis } from '../helpers/redis';
import { makeTinyBundle } from '../worker/bundle';
import { enqueueStudy, requireBuild, storeInstances, studyQueue, waitFor, workerEnv } from '../worker/helpers';
import { synthStudy } from '../worker/studies';
import { ADMIN, READER, buildTestApp, testDeps } from './helpers';
import { createRescorer } from '../../shared/rescore';

let redis: TestRedis;
let client: ReturnType<typeof connectRedis>;
let dataDir: string;
let modelsDir: string;
let worker: RunningWorker;
let app: FastifyInstance;
let queue: Queue;

beforeAll(async () => {
  requireBuild();
  redis = await startRedis();
  client = connectRedis(redis.url, 'producer');
  await new Promise((r) => client.once('ready', r));
  const deps = testDeps(client);
  dataDir = deps.config.DATA_DIR;
  modelsDir = makeTinyBundle();
  worker = await startWorker({ env: workerEnv({ redisUrl: redis.url, dataDir, modelsDir }) });
  app = await buildTestApp(client, deps);
  await app.ready();
  queue = studyQueue(client);
});
afterAll(async () => {
  await queue?.close();
  await app?.close();
  await worker?.close();
  client?.disconnect();
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(modelsDir, { recursive: true, force: true });
});

const rescore = (uid: string, headers = ADMIN) => app.inject({ method: 'POST', url: `/api/v1/studies/${uid}/rescore`, headers });
const auditLines = () =>
  readFileSync(auditFileFor(path.join(dataDir, 'audit', 'api-audit.jsonl')), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

/** Records the study's instances as the listener does (instance hash, study hash), files written by the caller. */
async function recordInstances(uid: string, files: { SeriesInstanceUID: string; SOPInstanceUID: string }[]): Promise<void> {
  const now = Date.now();
  await client.hset(keys.studyInstances(uid), Object.fromEntries(files.map((f) => [f.SOPInstanceUID, instanceStorageKey(uid, f.SeriesInstanceUID, f.SOPInstanceUID)])));
  await client.hset(keys.study(uid), { StudyInstanceUID: uid, storageKey: studyStorageKey(uid), firstReceivedAt: now, lastReceivedAt: now, instances: files.length });
}

test('a study that failed is scored again once its cause is fixed; a scored one gets its next result version', async () => {
  const study = synthStudy(23, 1, { fast: true });
  const uid = study.StudyInstanceUID;
  await recordInstances(uid, study.files);
  // Its files are not there yet (a volume not mounted): the job fails permanently as study-missing.
  const dlq = new Queue(STUDY_DEAD_LETTER_QUEUE, { connection: client });
  try {
    const first = await enqueueStudy(client, queue, uid);
    await waitFor('the dead-letter copy', () => dlq.getJob(`dead-${first}`));
    // The worker writes the dead-letter copy, then the study's status: wait for the second too.
    await waitFor('the study marked failed', async () => (await client.hget(keys.study(uid), 'status')) === 'failed');
    const untriaged = await app.inject({ url: '/api/v1/studies?status=failed', headers: READER });
    expect(untriaged.json().items.map((i: { StudyInstanceUID: string }) => i.StudyInstanceUID)).toEqual([uid]);
  } finally {
    await dlq.close();
  }

  // The cause fixed, an admin asks for it to be scored again.
  storeInstances(dataDir, uid, study.files);
  const res = await rescore(uid);
  expect(res.statusCode).toBe(202);
  const body = res.json();
  expect(body).toEqual({ StudyInstanceUID: uid, status: 'queued', jobId: expect.stringMatching(/^study-/), previousStatus: 'failed' });
  const job = (await queue.getJob(body.jobId))!;
  expect(job.name).toBe(SCORE_STUDY_JOB);
  expect(job.data).toMatchObject({ StudyInstanceUID: uid, storageKey: studyStorageKey(uid) });
  expect(job.opts.attempts).toBe(3); // the listener's retries
  await waitFor('the study to be scored', async () => (await client.hget(keys.study(uid), 'status')) === 'scored', 60_000, 50);
  const result = JSON.parse((await client.get(resultKeys.result(uid)))!);
  expect(result.resultVersion).toBe(1);
  expect(await client.zscore(resultKeys.worklist(), uid)).not.toBeNull();
  expect(await client.sismember(keys.pendingStudies(), uid)).toBe(0);
  expect((await app.inject({ url: '/api/v1/studies?status=failed', headers: READER })).json().items).toEqual([]);

  // Scored already (an earlier model bundle, say): scored again, as the next result version.
  const again = await rescore(uid);
  expect(again.statusCode).toBe(202);
  expect(again.json().previousStatus).toBe('scored');
  await waitFor('result version 2', async () => JSON.parse((await client.get(resultKeys.result(uid)))!).resultVersion === 2, 60_000, 50);
  expect(await client.hget(keys.study(uid), 'status')).toBe('scored');

  const audited = auditLines().filter((l) => l.action === 'study.rescore');
  expect(audited).toEqual([
    expect.objectContaining({ user: 'pacs-admin', StudyInstanceUID: uid, outcome: 'failed' }),
    expect.objectContaining({ user: 'pacs-admin', StudyInstanceUID: uid, outcome: 'scored' }),
  ]);
});

test('a study a job already holds is not queued twice: 409 naming the job', async () => {
  const uid = '1.2.826.0.1.3680043.8.498.8101';
  await recordInstances(uid, [{ SeriesInstanceUID: '1.2.3.9', SOPInstanceUID: '1.2.3.9.1' }]);
  // The listener's job for a study still arriving: delayed by the quiet period, deduplicated on the UID.
  const held = await queue.add(SCORE_STUDY_JOB, { StudyInstanceUID: uid, storageKey: studyStorageKey(uid), traceId: 't' }, { jobId: 'study-held', delay: 600_000, deduplication: { id: uid } });
  await client.hset(keys.study(uid), 'status', 'queued');
  try {
    const res = await rescore(uid);
    expect(res.statusCode).toBe(409);
    expect(res.json().detail).toBe(`study ${uid} already has a job (study-held, study status queued): it is scored when that job runs`);
    const jobsOfStudy = (await queue.getJobs(['delayed', 'waiting', 'active'])).filter((j) => j.data.StudyInstanceUID === uid);
    expect(jobsOfStudy.map((j) => j.id)).toEqual(['study-held']);
  } finally {
    await held.remove();
  }
});

test('what cannot be scored again says why: unknown, nothing stored, being purged, purged, and not for a reader', async () => {
  const unknown = '1.2.826.0.1.3680043.8.498.8201';
  expect(await rescore(unknown).then((r) => [r.statusCode, r.json().detail])).toEqual([404, `no study ${unknown} has been received`]);

  const empty = '1.2.826.0.1.3680043.8.498.8202';
  await client.hset(keys.study(empty), { status: 'failed', failureReason: 'study-empty: no instances' });
  const none = await rescore(empty);
  expect(none.statusCode).toBe(409);
  expect(none.json().detail).toMatch(/has no stored instances to score .*send the study again from the PACS/);

  const purging = '1.2.826.0.1.3680043.8.498.8203';
  await recordInstances(purging, [{ SeriesInstanceUID: '1.2.3.8', SOPInstanceUID: '1.2.3.8.1' }]);
  await client.hset(keys.study(purging), { status: 'scored', [PURGING_FIELD]: Date.now() });
  expect(await rescore(purging).then((r) => [r.statusCode, r.json().detail])).toEqual([409, expect.stringMatching(/^retention is deleting the stored instances/)]);

  const purged = '1.2.826.0.1.3680043.8.498.8204';
  const at = Date.UTC(2026, 10, 2, 3, 4, 5);
  await client.hset(keys.study(purged), { status: 'scored', [PURGED_FIELD]: at });
  const gone = await rescore(purged);
  expect(gone.statusCode).toBe(410);
  expect(gone.json().detail).toContain('retention deleted them on 2026-11-02T03:04:05.000Z');

  const readerTry = await rescore(purging, READER);
  expect(readerTry.statusCode).toBe(403);
  // None of these queued anything or joined the pending set.
  expect(await queue.getWaitingCount()).toBe(0);
  for (const uid of [unknown, empty, purging, purged]) expect(await client.sismember(keys.pendingStudies(), uid)).toBe(0);
});

test('a study the PACS sent again after retention purged it is scored again: 202, not 410', async () => {
  const study = synthStudy(24, 1, { fast: true });
  const uid = study.StudyInstanceUID;
  // Purged by retention long ago (the mark stays on the study hash), then sent again from the PACS as the 410 says:
  // the listener stored and recorded the instances anew, and the study was scored.
  await client.hset(keys.study(uid), { status: 'scored', [PURGED_FIELD]: Date.UTC(2026, 9, 1) });
  storeInstances(dataDir, uid, study.files);
  await recordInstances(uid, study.files);
  const res = await rescore(uid);
  expect([res.statusCode, res.json().detail]).toEqual([202, undefined]);
  await waitFor('the study to be scored', async () => (await client.hget(keys.study(uid), 'status')) === 'scored' && (await client.exists(resultKeys.result(uid))) === 1, 60_000, 50);
});

test('a job the worker ends before the rescorer marks the study queued keeps the status the worker set', async () => {
  const uid = '1.2.826.0.1.3680043.8.498.8301';
  // Recorded, but its files are not there: the worker fails the job at once (study-missing).
  await recordInstances(uid, [{ SeriesInstanceUID: '1.2.3.7', SOPInstanceUID: '1.2.3.7.1' }]);
  await client.hset(keys.study(uid), 'status', 'failed');
  // The API's event loop is held up between its add and its status write, long enough for the worker to finish.
  const slow = {
    add: async (...args: Parameters<Queue['add']>) => {
      const job = await queue.add(...args);
      await waitFor('the job to end', async () => ['failed', 'completed'].includes(await job.getState()), 60_000, 50);
      return job;
    },
    toKey: (type: string) => queue.toKey(type),
  } as unknown as Queue;
  const out = await createRescorer({ redis: client, queue: slow }).rescore(uid);
  expect(out.outcome).toBe('queued');
  // Not 'queued' forever with no job: the worker's outcome stands.
  expect(await client.hget(keys.study(uid), 'status')).toBe('failed');
  expect(await client.sismember(keys.pendingStudies(), uid)).toBe(0);
});
