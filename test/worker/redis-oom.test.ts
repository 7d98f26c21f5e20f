// Redis at maxmemory with noeviction ("OOM command not allowed" on every write of ours) while a study's job runs:
// each attempt fails at its first write, and the last one's failure record is retried until Redis takes writes
// again, so the study ends 'failed' with its reason and a dead-letter copy, never stuck 'queued' for ever in no list.
import { Queue, type Job } from 'bullmq';
import { createLogger } from '../../shared/logger';
import { connectRedis } from '../../shared/redis';
import { keys, STUDY_DEAD_LETTER_QUEUE, type StudyJobData } from '../../shared/studies';
import { PermanentStudyError } from '../../services/worker/errors';
import { createWorkerMetrics } from '../../services/worker/metrics';
import { recordFailure, type DeadLetterData } from '../../services/worker/queue';
import { enqueueStudy, storeInstances, studyEnded, studyQueue, waitFor } from './helpers';
import { inlineJobDeps, runWorker, workerParts } from './parts';
import { synthStudy } from './studies';

const parts = workerParts('oom');

test('writes refused (maxmemory, noeviction) through every attempt: the study ends failed and dead-lettered once Redis takes writes', async () => {
  const lines: { msg: string }[] = [];
  const log = createLogger('test', 'info', { write: (s: string) => void lines.push(JSON.parse(s) as { msg: string }) });
  const study = synthStudy(21, 1, { fast: true });
  const uid = study.StudyInstanceUID;
  storeInstances(parts.dataDir, uid, study.files);
  const queue: Queue = studyQueue(parts.client);
  try {
    const jobId = await enqueueStudy(parts.client, queue, uid, { attempts: 2 });
    const deps = inlineJobDeps(parts, { log });
    const { loader } = deps.pipeline;
    // Redis fills up once the job is under way (a waiting job is not even taken while writes are refused).
    deps.pipeline = { ...deps.pipeline, loader: { ...loader, load: async (dir) => {
      await parts.client.config('SET', 'maxmemory', '1'); // the default policy is noeviction
      return loader.load(dir);
    } } };
    try {
      await runWorker(deps, async () => {
        // Both attempts are refused; then either the job ends failed at once (the bug) or the record is retried.
        await waitFor('the last attempt to give up', async () =>
          lines.some((l) => /failure failed/.test(l.msg)) || (await (await queue.getJob(jobId))?.getState()) === 'failed', 60_000, 50);
        await parts.client.config('SET', 'maxmemory', '0');
        expect(await studyEnded(parts.client, uid, 30_000)).toEqual({ status: 'failed', reason: expect.stringMatching(/^retries-exhausted: gave up after 2 attempts: OOM command not allowed/) });
      });
    } finally {
      await parts.client.config('SET', 'maxmemory', '0');
    }
    const dead = (await parts.dlq.getJob(`dead-${jobId}`)) as { data: DeadLetterData } | undefined;
    expect(dead?.data).toMatchObject({ StudyInstanceUID: uid, jobId, status: 'failed', reason: 'retries-exhausted', attempts: 2 });
    expect(await parts.client.sismember(keys.pendingStudies(), uid)).toBe(0);
    expect(await (await queue.getJob(jobId))!.getState()).toBe('failed');
  } finally {
    await queue.close();
  }
}, 120_000);

test('a failure record refused after the worker closed its connection (shutdown) is given up at once, not retried for minutes', async () => {
  const redis = connectRedis(parts.redis.url, 'worker');
  const deadLetters = new Queue<DeadLetterData>(STUDY_DEAD_LETTER_QUEUE, { connection: redis });
  deadLetters.on('error', () => undefined);
  await deadLetters.count(); // the queue is fully set up on the connection before it closes
  await redis.quit();
  const job = { id: 'study-1.2.3', data: { StudyInstanceUID: '1.2.3', storageKey: 'store/1.2.3', traceId: 't' } } as Job<StudyJobData>;
  const started = Date.now();
  await expect(recordFailure({ redis, deadLetters, metrics: createWorkerMetrics(), log: parts.log }, job, new PermanentStudyError('x', 'corrupt', 'failed'), 1))
    .rejects.toThrow(/Connection is closed/);
  expect(Date.now() - started).toBeLessThan(5000);
  await deadLetters.close().catch(() => undefined); // its connection is already closed
});
