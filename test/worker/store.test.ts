// Results store and query vectors against a real Redis (private, AOF on): one result per study however often it is
// written, atomic status/worklist/pending updates, a study that got an instance during scoring left pending (with
// the listener's real arrival script), vectors round-tripped as float32 LE; query changes picked up without a
// restart and re-embedded only for new sentences.
import type { Redis } from 'ioredis';
import { connectRedis } from '../../shared/redis';
import { queryKeys, changeQuery } from '../../shared/queries';
import { resultKeys, type StudyResult } from '../../shared/results';
import { STUDY_QUEUE, keys, type StudyJobData } from '../../shared/studies';
import type { Manifest, TriageQuery } from '../../shared/model-manifest';
import { createLogger } from '../../shared/logger';
import { Queue } from 'bullmq';
import { float32FromLE } from '../../shared/float32';
import { backfillUntriagedIndex, markStudyFailed, setStudyStatus, studyMeta, writeResult } from '../../services/worker/store';
import { StudyAssembler } from '../../services/listener/study-assembler';
import { createQuerySource } from '../../services/worker/query-vectors';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseManifest } from '../../shared/model-manifest';
import { calibrationState } from '../../shared/models/calibration';
import { readQuerySet, readSiteLayer } from '../../shared/queries';
import { migrateEntry, migrateQueries } from '../../shared/query-migration';
import { REFERENCE_BUNDLE } from './bundle';
import { redisUrl, startRedisClient, stopRedisClient } from '../helpers/redis-client';

const UID = '1.2.826.0.1.3680043.8.498.1';

function result(priority: StudyResult['priority'], receivedAt: number): StudyResult {
  return {
    StudyInstanceUID: UID, priority, findings: [], abnormalProbability: null, sequencesUsed: ['T2'], sequencesMissing: ['FLAIR'],
    series: [], confidence: 0.5, model: { bundleId: 'b', version: '1' }, priorityProbability: null, judgedWith: { querySetVersion: 'test', classThresholds: {} }, provider: 'cpu',
    timingsMs: { decode: 1, preprocess: 1, inference: 1, scoring: 1, total: 4 }, receivedAt, scoredAt: receivedAt + 10,
  };
}

describe('worker results store (real Redis)', () => {
  let client: Redis;
  beforeAll(async () => {
    client = await startRedisClient('worker');
  });
  afterAll(() => stopRedisClient(client));

  it('writes one result per study, however often a job is re-delivered', async () => {
    await client.sadd(keys.pendingStudies(), UID);
    await client.hset(keys.study(UID), { status: 'scoring', firstReceivedAt: 1000 });
    const { receivedAt } = await studyMeta(client, UID);
    expect(receivedAt).toBe(1000);
    const v = Float32Array.from([0.5, -0.25, 1e-3]);
    await writeResult(client, result('URGENT', receivedAt), { T2: v, combined: v });
    await writeResult(client, result('STAT', receivedAt), { T2: v, combined: v });
    const stored = JSON.parse((await client.get(resultKeys.result(UID)))!);
    expect(stored.priority).toBe('STAT');
    expect(await client.zcard(resultKeys.worklist())).toBe(1);
    expect(await client.sismember(keys.pendingStudies(), UID)).toBe(0);
    expect(await client.hget(keys.study(UID), 'status')).toBe('scored');
    const vecs = await client.hgetallBuffer(resultKeys.vectors(UID));
    expect(Object.keys(vecs).sort()).toEqual(['T2', 'combined']);
    expect([...float32FromLE(vecs.T2)]).toEqual([...v]);
  });

  it('marks a failed study with its reason and takes it off the pending set', async () => {
    const uid = '1.2.3.4';
    await client.sadd(keys.pendingStudies(), uid);
    await markStudyFailed(client, uid, 'unsupported', 'no-scorable-sequence: only localisers');
    expect(await client.hmget(keys.study(uid), 'status', 'failureReason')).toEqual(['unsupported', 'no-scorable-sequence: only localisers']);
    expect(await client.sismember(keys.pendingStudies(), uid)).toBe(0);
  });

  it('keeps the untriaged index: a failure joins it at its last arrival, a later result leaves it', async () => {
    const uid = '1.2.3.5';
    await client.hset(keys.study(uid), { status: 'scoring', firstReceivedAt: 5000, lastReceivedAt: 6000 });
    await markStudyFailed(client, uid, 'failed', 'decode: truncated pixel data');
    expect(await client.zscore(keys.untriagedStudies(), uid)).toBe('6000');
    await setStudyStatus(client, uid, 'scoring'); // sent again and re-scored: the job sets 'scoring' first
    await writeResult(client, { ...result('ROUTINE', 5000), StudyInstanceUID: uid }, {});
    expect(await client.zscore(keys.untriagedStudies(), uid)).toBeNull();
  });

  it('backfills the index once from studies that failed before it existed', async () => {
    const old = ['1.2.3.6', '1.2.3.7'];
    await client.hset(keys.study(old[0]), { status: 'failed', lastReceivedAt: 7000 });
    await client.hset(keys.study(old[1]), { status: 'unsupported', lastReceivedAt: 8000 });
    await client.hset(keys.study('1.2.3.8'), { status: 'received', lastReceivedAt: 9000 });
    await client.hset(`${keys.study('1.2.3.6')}:instances`, { '1.2.3.6.1': 'store/x' });
    await client.del(keys.untriagedIndexBuilt());
    // 1.2.3.4 (unsupported in the test above) and the two old ones; not the received one, not the instances hash
    expect(await backfillUntriagedIndex(client)).toBe(3);
    expect(await client.zrange(keys.untriagedStudies(), '0', '-1', 'WITHSCORES')).toEqual(expect.arrayContaining(['1.2.3.6', '7000', '1.2.3.7', '8000']));
    expect(await client.zscore(keys.untriagedStudies(), '1.2.3.8')).toBeNull();
    expect(await backfillUntriagedIndex(client)).toBe(0);
  });

  it('a study that received an instance while it was scored keeps its result but stays pending, and a listener restart re-queues it', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.77';
    const queue = new Queue<StudyJobData>(STUDY_QUEUE, { connection: client });
    // The listener's own arrival script (services/listener/study-assembler.ts), on the same Redis.
    const assembler = new StudyAssembler({ redis: client, queue, quietMs: 60_000 });
    const arrive = (sop: string) => assembler.recordArrival({ StudyInstanceUID: uid, SOPInstanceUID: sop, storageKey: `store/${uid}/1.2/${sop}.dcm`, bytes: 100 });
    try {
      await arrive(`${uid}.1`);
      await setStudyStatus(client, uid, 'scoring'); // the job starts (queue.ts)
      await arrive(`${uid}.2`); // an instance arrives mid-scoring; its listener dies before it schedules the study
      const v = Float32Array.from([1, 0]);
      expect(await writeResult(client, { ...result('URGENT', 5000), StudyInstanceUID: uid }, { combined: v })).toBe(false);
      // The result is on the worklist, but the study is not finished: received, still pending.
      expect(JSON.parse((await client.get(resultKeys.result(uid)))!).priority).toBe('URGENT');
      expect(await client.zscore(resultKeys.worklist(), uid)).not.toBeNull();
      expect(await client.hget(keys.study(uid), 'status')).toBe('received');
      expect(await client.sismember(keys.pendingStudies(), uid)).toBe(1);
      // The next listener start re-queues it, so the second instance is scored.
      expect((await assembler.requeuePending()).requeued).toBeGreaterThanOrEqual(1);
      const jobs = await queue.getJobs(['delayed', 'waiting']);
      expect(jobs.map((j) => j.data.StudyInstanceUID)).toContain(uid);
      // Scored again with nothing new arriving: now it is done.
      await setStudyStatus(client, uid, 'scoring');
      expect(await writeResult(client, { ...result('STAT', 5000), StudyInstanceUID: uid }, { combined: v })).toBe(true);
      expect(await client.hget(keys.study(uid), 'status')).toBe('scored');
      expect(await client.sismember(keys.pendingStudies(), uid)).toBe(0);
    } finally {
      await assembler.drain();
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });
});

describe('triage queries and their vectors (real Redis)', () => {
  let client: Redis;
  let sub: Redis;
  beforeAll(async () => {
    client = await startRedisClient('worker');
    sub = connectRedis(redisUrl(client), 'worker');
  });
  afterAll(async () => {
    await sub?.quit();
    await stopRedisClient(client);
  });

  it('reads the bundle\'s defaults (nothing is seeded into Redis), embeds once per sentence and picks up an edit without a restart', async () => {
    const embedded: string[] = [];
    // A deterministic text encoder: vector = [length, vowels] normalised. The query source's caching and
    // refresh logic is what is under test; the real encoder is covered in models.test.ts.
    const text = {
      async embed(texts: string[]) {
        embedded.push(...texts);
        return texts.map((t) => {
          const x = Float32Array.from([t.length, (t.match(/[aeiou]/g) ?? []).length]);
          const n = Math.hypot(x[0], x[1]);
          return x.map((c) => c / n);
        });
      },
    };
    const q: TriageQuery = { id: 'acute_infarct', text: 'acute infarct', priority: 'STAT' };
    const manifest = { bundleId: 'b', version: '1', queries: [q], normalQuery: { id: 'normal', text: 'normal brain', priority: 'ROUTINE' } } as unknown as Manifest;
    const source = await createQuerySource({ redis: client, subscriber: sub, manifest, text, log: createLogger('test', 'silent') });
    try {
      const first = await source.current();
      expect(first.queries.map((x) => x.id)).toEqual(['acute_infarct']);
      expect(first.vectors.has('acute infarct') && first.vectors.has('normal brain')).toBe(true);
      expect(first.queries[0].origin).toBe('bundle');
      expect(await client.hlen(queryKeys.queries())).toBe(0);

      await changeQuery(client, { put: { id: 'bleed', text: 'intracranial haemorrhage', priority: 'URGENT' } });
      const second = await source.current();
      expect(second.version).toBeGreaterThan(first.version);
      expect(second.queries.map((x) => x.id)).toEqual(['acute_infarct', 'bleed']);
      // Only the new sentence went through the encoder.
      expect(embedded.filter((t) => t === 'acute infarct')).toHaveLength(1);
      expect(embedded.filter((t) => t === 'intracranial haemorrhage')).toHaveLength(1);
    } finally {
      await source.close();
    }
  });
});

describe('moving older query hashes to the layered contract (real Redis)', () => {
  let client: Redis;
  beforeAll(async () => {
    client = await startRedisClient('worker');
  });
  afterAll(() => stopRedisClient(client));

  /** The committed bundle's manifest as it runs now, and its queries as an earlier release copied them into Redis
   *  (schemaVersion 1 calibration: Platt a, b, a raw-score threshold and the target). */
  const running = parseManifest(JSON.parse(readFileSync(path.join(REFERENCE_BUNDLE, 'manifest.json'), 'utf8')));
  const v1 = {
    schemaVersion: 1,
    queries: running.queries.map(({ id, text, negativeText, priority, sequences, calibration }) => ({
      id, text, ...(negativeText ? { negativeText } : {}), priority, ...(sequences ? { sequences } : {}),
      ...(calibration ? { calibration: { a: calibration.a, b: calibration.b, threshold: 0.05, targetSensitivity: calibration.targetSensitivity } } : {}),
    })) as Record<string, unknown>[],
  };

  it('drops copies of shipped defaults, keeps edits and site queries as site queries (uncalibrated when their calibration is of the old contract), once', async () => {
    // What an earlier release left: every default copied with its v1 calibration, one edited, one site-made, junk.
    const edited = { ...v1.queries[3], priority: 'STAT' };
    const own = { id: 'subdural', text: 'Subdural haematoma.', priority: 'STAT', calibration: { a: 5, b: -1, threshold: 0.2, targetSensitivity: 0.9 } };
    await client.hset(queryKeys.queries(), ...v1.queries.flatMap((q) => [q.id as string, JSON.stringify(q)]));
    await client.hset(queryKeys.queries(), 'mass', JSON.stringify(edited), 'subdural', JSON.stringify(own), 'junk', 'not json');
    await client.set(`${queryKeys.queries()}:seeded`, '1');
    const outcome = await migrateQueries(client, running.queries);
    expect(outcome.migrated).toBe(true);
    expect(outcome.dropped.sort()).toEqual(['acute_infarct', 'atrophy', 'haemorrhage', 'hydrocephalus', 'white_matter_disease']);
    expect(outcome.kept.sort()).toEqual(['mass', 'subdural']);
    expect(outcome.uncalibrated.sort()).toEqual(['mass', 'subdural']);
    expect(outcome.unreadable).toEqual(['junk']);
    expect(await client.exists(`${queryKeys.queries()}:seeded`)).toBe(0);

    const site = await readSiteLayer(client);
    expect(site.queries.map((q) => q.id)).toEqual(['mass', 'subdural']);
    expect(site.queries.find((q) => q.id === 'subdural')).toEqual({ id: 'subdural', text: 'Subdural haematoma.', priority: 'STAT', targetSensitivity: 0.9, origin: 'site' });
    expect(site.problems).toEqual(['query junk: not JSON']);
    // What the worker judges with: the bundle's five untouched defaults, calibrated, and the two site queries, not.
    const set = await readQuerySet(client, running.queries);
    expect(set.queries.map((q) => [q.id, q.origin, calibrationState(q, running.version)])).toEqual([
      ['acute_infarct', 'bundle', 'calibrated'], ['atrophy', 'bundle', 'calibrated'], ['haemorrhage', 'bundle', 'calibrated'],
      ['hydrocephalus', 'bundle', 'calibrated'], ['mass', 'site', 'uncalibrated'], ['subdural', 'site', 'uncalibrated'],
      ['white_matter_disease', 'bundle', 'calibrated'],
    ]);
    expect((await migrateQueries(client, running.queries)).migrated).toBe(false);
  });

  it('a copy of an earlier bundle\'s default is dropped even when the running bundle\'s default differs; reworded, it is kept without its old calibration', () => {
    const shipped = { id: 'acute_infarct', text: 'Acute ischaemic infarction.', negativeText: 'There is no diffusion restriction.', priority: 'STAT', calibration: { a: 1, b: 0, threshold: 0.1, targetSensitivity: 0.95 } };
    expect(migrateEntry(JSON.stringify(shipped), [{ id: 'acute_infarct', text: 'Acute infarct.', priority: 'STAT' }])).toEqual({ action: 'drop' });
    expect(migrateEntry(JSON.stringify({ ...shipped, text: 'Acute infarct in the pons.' }), [])).toMatchObject({ action: 'keep', calibrationDropped: true, query: { origin: 'site', targetSensitivity: 0.95 } });
  });
});
