// Permanent failures end in the dead-letter queue with their reason, without retries: the real worker
// (startWorker, in-process) against a real Redis, a real model bundle (tiny, untrained) and real files.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { connectRedis } from '../../shared/redis';
import { resultKeys } from '../../shared/results';
import { keys, STUDY_DEAD_LETTER_QUEUE } from '../../shared/studies';
import { startWorker, type RunningWorker } from '../../services/worker/main';
import type { DeadLetterData } from '../../services/worker/queue';
import { startRedis, type TestRedis } from '../helpers/redis';
import { makeTinyBundle, readManifest } from './bundle';
import { enqueueStudy, requireBuild, storeInstances, studyQueue, waitFor, workerEnv } from './helpers';

describe('permanent failures -> dead-letter queue', () => {
  let redis: TestRedis;
  let client: ReturnType<typeof connectRedis>;
  let dataDir: string;
  let modelsDir: string;
  let worker: RunningWorker;

  beforeAll(async () => {
    requireBuild();
    redis = await startRedis();
    client = connectRedis(redis.url, 'worker');
    dataDir = mkdtempSync(path.join(tmpdir(), 'nt-worker-dl-'));
    modelsDir = makeTinyBundle();
    worker = await startWorker({ env: workerEnv({ redisUrl: redis.url, dataDir, modelsDir }) });
  });
  afterAll(async () => {
    await worker?.close();
    await client?.quit();
    await redis?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(modelsDir, { recursive: true, force: true });
  });

  it('a study of corrupt files fails once, is dead-lettered with its reason and leaves no result', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.7001';
    storeInstances(dataDir, uid, [{ SeriesInstanceUID: '1.2.3.1', SOPInstanceUID: '1.2.3.1.1', data: Buffer.from('not a DICOM file at all'.repeat(20)) }]);
    const queue = studyQueue(client);
    const dlq = new Queue<DeadLetterData>(STUDY_DEAD_LETTER_QUEUE, { connection: client });
    try {
      // Even with retries allowed by the producer, a permanent failure is not retried.
      const jobId = await enqueueStudy(client, queue, uid, { attempts: 5 });
      const dead = await waitFor('the dead-letter copy', () => dlq.getJob(`dead-${jobId}`));
      expect(dead.data).toMatchObject({ StudyInstanceUID: uid, jobId, status: 'failed', reason: 'corrupt', attempts: 1 });
      expect(dead.data.message).not.toMatch(/PatientName|PatientID/);
      const job = (await queue.getJob(jobId))!;
      await waitFor('the study job to fail', async () => (await job.getState()) === 'failed');
      expect((await queue.getJob(jobId))!.attemptsMade).toBe(1);
      expect(await client.hmget(keys.study(uid), 'status', 'failureReason')).toEqual(['failed', expect.stringMatching(/^corrupt/)]);
      expect(await client.sismember(keys.pendingStudies(), uid)).toBe(0);
      expect(await client.exists(resultKeys.result(uid))).toBe(0);

      const metrics = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text();
      expect(metrics).toMatch(/neurotriage_worker_dead_letters_total\{reason="corrupt"\} 1/);
      expect(metrics).toMatch(/neurotriage_worker_jobs_total\{outcome="failed"\} 1/);
      expect(metrics).toMatch(/neurotriage_worker_queue_jobs\{state="failed"\} 1/); // sampled at scrape time
      expect(metrics).toMatch(/neurotriage_worker_queue_oldest_job_age_seconds 0\n/); // nothing waits any more
      const m = readManifest(modelsDir);
      expect(metrics).toContain(`neurotriage_worker_execution_provider_info{provider="cpu",preferred="cpu",model_version="${m.bundleId}@${m.version}"} 1`);
      // Reasons not seen yet are there at 0, so their first dead letter is an increase Prometheus sees.
      expect(metrics).toMatch(/neurotriage_worker_dead_letters_total\{reason="stalled"\} 0\n/);
      expect(metrics).toMatch(/neurotriage_worker_jobs_total\{outcome="unsupported"\} 0\n/);
    } finally {
      await Promise.all([queue.close(), dlq.close()]);
    }
  });

  it('a job whose study folder is gone is dead-lettered as study-missing', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.7002';
    const queue = studyQueue(client);
    const dlq = new Queue<DeadLetterData>(STUDY_DEAD_LETTER_QUEUE, { connection: client });
    try {
      const jobId = await enqueueStudy(client, queue, uid);
      const dead = await waitFor('the dead-letter copy', () => dlq.getJob(`dead-${jobId}`));
      expect(dead.data).toMatchObject({ reason: 'study-missing', status: 'failed' });
      // The dead-letter copy is written before the study's status: wait for the status too.
      await waitFor('the study marked failed', async () => (await client.hget(keys.study(uid), 'status')) === 'failed');
    } finally {
      await Promise.all([queue.close(), dlq.close()]);
    }
  });
});
