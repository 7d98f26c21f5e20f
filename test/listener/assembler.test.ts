// The study assembler's arrival records against a real Redis: records asked for together go as one pipeline and
// each caller still gets its own answer (new, already recorded, or refused while retention purges the study).
import { Queue } from 'bullmq';
import { connectRedis } from '../../shared/redis';
import { keys, PURGING_FIELD, STUDY_QUEUE, type StudyJobData } from '../../shared/studies';
import { StudyAssembler } from '../../services/listener/study-assembler';
import { StudyPurgingError } from '../../services/listener/errors';
import { startRedis, type TestRedis } from '../helpers/redis';

let redisServer: TestRedis;
beforeAll(async () => {
  redisServer = await startRedis();
});
afterAll(() => redisServer.stop());

/** A producer connection (it fails fast instead of queueing, so it is awaited until up), the study queue on it and an
 * assembler; closed after `body`. */
async function withAssembler(body: (ctx: { redis: ReturnType<typeof connectRedis>; queue: Queue<StudyJobData>; assembler: StudyAssembler }) => Promise<void>): Promise<void> {
  const redis = connectRedis(redisServer.url, 'producer');
  await new Promise((resolve) => redis.once('ready', resolve));
  const queue = new Queue<StudyJobData>(STUDY_QUEUE, { connection: redis });
  try {
    await body({ redis, queue, assembler: new StudyAssembler({ redis, queue, quietMs: 60_000 }) });
  } finally {
    await queue.close();
    redis.disconnect();
  }
}

test('concurrent arrival records: one pipeline, one answer each', () =>
  withAssembler(async ({ redis, assembler }) => {
    const arrival = (study: string, sop: string) => ({ StudyInstanceUID: study, SOPInstanceUID: sop, storageKey: `store/${study}/1/${sop}.dcm`, bytes: 10 });
    await redis.hset(keys.study('1.3'), PURGING_FIELD, Date.now());
    const results = await Promise.allSettled([
      assembler.recordArrival(arrival('1.2', '1.2.1')),
      assembler.recordArrival(arrival('1.2', '1.2.2')),
      assembler.recordArrival(arrival('1.2', '1.2.1')),
      assembler.recordArrival(arrival('1.3', '1.3.1')),
    ]);
    expect(results.slice(0, 3)).toEqual([
      { status: 'fulfilled', value: true },
      { status: 'fulfilled', value: true },
      { status: 'fulfilled', value: false },
    ]);
    expect(results[3]).toMatchObject({ status: 'rejected', reason: expect.any(StudyPurgingError) });
    expect(await redis.hlen(keys.studyInstances('1.2'))).toBe(2);
    expect(await redis.hget(keys.study('1.2'), 'instances')).toBe('2');
    expect(await redis.exists(keys.studyInstances('1.3'))).toBe(0);
    // Alone, a record goes as a single command.
    expect(await assembler.recordArrival(arrival('1.2', '1.2.3'))).toBe(true);
  }));

test('restart re-queue: a pending-set entry that is not a UID is removed, the others are still queued', async () => {
  // docs/operations.md has operators SADD a UID to the pending set by hand; a pasted placeholder once stopped the
  // listener at every start (assertUid threw), so no DICOM was taken in until someone removed it.
  await withAssembler(async ({ redis, queue, assembler }) => {
    await redis.del(keys.pendingStudies()); // the test above left its own study pending
    await redis.sadd(keys.pendingStudies(), '1.2.840.99.1', '<StudyInstanceUID>', '1.2.840.99.2 ');
    expect(await assembler.requeuePending()).toEqual({ requeued: 1, invalid: 2 });
    expect(await redis.smembers(keys.pendingStudies())).toEqual(['1.2.840.99.1']);
    const jobs = await queue.getJobs(['delayed', 'waiting']);
    expect(jobs.map((j) => j.data.StudyInstanceUID)).toContain('1.2.840.99.1');
    await queue.obliterate({ force: true });
  });
});

test('new instances of a study waiting in a bulk re-score make its job an arrival again: no priority, scored in arrival order', () =>
  withAssembler(async ({ queue, assembler }) => {
    await queue.obliterate({ force: true });
    const uid = '1.2.840.99.7';
    // tools/rescore.ts queued it behind new arrivals (priority), deduplicated on the UID as the listener's jobs are.
    const bulk = await queue.add('score-study', { StudyInstanceUID: uid, storageKey: `store/${uid}`, traceId: 'bulk' }, { jobId: 'study-bulk', priority: 10, deduplication: { id: uid } });
    expect(await bulk.getState()).toBe('prioritized');
    expect(await assembler.schedule(uid, 'arrival-trace', 'arrival')).toBe('study-bulk');
    const held = (await queue.getJob('study-bulk'))!;
    expect(held.priority).toBe(0);
    expect(await held.getState()).toBe('waiting');
    // A restart's re-queue only makes sure a job exists: it leaves a bulk job's priority alone.
    const other = await queue.add('score-study', { StudyInstanceUID: '1.2.840.99.8', storageKey: 'store/1.2.840.99.8', traceId: 'bulk' }, { jobId: 'study-bulk-2', priority: 10, deduplication: { id: '1.2.840.99.8' } });
    await assembler.schedule('1.2.840.99.8', 'restart-trace', 'restart');
    expect(await other.getState()).toBe('prioritized');
  }));
