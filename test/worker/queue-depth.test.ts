// The queue depth a scrape samples when every worker slot is held (scoring hangs, or is far slower than arrivals):
// BullMQ moves a delayed job to waiting only when a worker asks for its next job, so a study past its quiet period
// stayed "delayed" and NeurotriageQueueBackingUp (waiting + prioritized) never saw the backlog. Real Redis, no
// worker fetching: sampleQueueDepth called directly.
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { SCORE_STUDY_JOB, STUDY_QUEUE, type StudyJobData } from '../../shared/studies';
import { createWorkerMetrics } from '../../services/worker/metrics';
import { sampleQueueDepth } from '../../services/worker/queue';
import { QUEUE_PATH, READY_FIELD, startWorkerHttp } from '../../services/worker/http';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';

describe('queue depth sampled for the metrics scrape', () => {
  let client: Redis;

  beforeAll(async () => {
    client = await startRedisClient('worker');
  });
  afterAll(() => stopRedisClient(client));

  it('counts a delayed study job whose quiet period is over as waiting, and its age as the oldest', async () => {
    const queue = new Queue<StudyJobData>(STUDY_QUEUE, { connection: client });
    try {
      const add = (uid: string, delay: number) =>
        queue.add(SCORE_STUDY_JOB, { StudyInstanceUID: uid, storageKey: `store/${uid}`, traceId: `t-${uid}` }, { jobId: `study-${uid}`, delay });
      await add('1.2.3.1', 50);
      await add('1.2.3.2', 80);
      await add('1.2.3.3', 3_600_000); // still arriving: not ready
      await new Promise((r) => setTimeout(r, 1_200));

      const metrics = createWorkerMetrics({ defaultMetrics: false });
      await sampleQueueDepth(queue, metrics, client);
      const text = await metrics.registry.metrics();
      expect(text).toMatch(/neurotriage_worker_queue_jobs\{state="waiting"\} 2\n/);
      expect(text).toMatch(/neurotriage_worker_queue_jobs\{state="delayed"\} 1\n/);
      const age = Number(/^neurotriage_worker_queue_oldest_job_age_seconds (\S+)$/m.exec(text)?.[1]);
      expect(age).toBeGreaterThanOrEqual(1);
      expect(age).toBeLessThan(5);
    } finally {
      await queue.close();
    }
  });
  it('leaves a job waiting out a retry backoff as delayed: its quiet period is long over, the job is not ready', async () => {
    const queue = new Queue<StudyJobData>(`${STUDY_QUEUE}-backoff`, { connection: client });
    const worker = new Worker<StudyJobData>(`${STUDY_QUEUE}-backoff`, null, { connection: client, autorun: false });
    try {
      await queue.add(SCORE_STUDY_JOB, { StudyInstanceUID: '1.2.3.4', storageKey: 'store/1.2.3.4', traceId: 't-4' }, { jobId: 'study-1.2.3.4', delay: 50 });
      await new Promise((r) => setTimeout(r, 200));
      // Fetched once, failed transiently and put back for an hour (the worker's own backoff does job.moveToDelayed).
      const job = await worker.getNextJob('token-1');
      expect(job?.id).toBe('study-1.2.3.4');
      await job!.moveToDelayed(Date.now() + 3_600_000, 'token-1');

      const metrics = createWorkerMetrics({ defaultMetrics: false });
      await sampleQueueDepth(queue, metrics, client);
      const text = await metrics.registry.metrics();
      expect(text).toMatch(/neurotriage_worker_queue_jobs\{state="waiting"\} 0\n/);
      expect(text).toMatch(/neurotriage_worker_queue_jobs\{state="delayed"\} 1\n/);
      expect(text).toMatch(/^neurotriage_worker_queue_oldest_job_age_seconds 0$/m);
    } finally {
      await worker.close();
      await queue.close();
    }
  });

  it('serves the backlog KEDA scales on at /queue: waiting, due delayed and a bulk re-score\'s prioritized jobs, none before a sample', async () => {
    const queue = new Queue<StudyJobData>(`${STUDY_QUEUE}-scale`, { connection: client });
    const metrics = createWorkerMetrics({ defaultMetrics: false });
    // A sample slower than the default 1 s deadline on a loaded machine would read as "no sample yet".
    const server = await startWorkerHttp({ port: 0, host: '127.0.0.1', metrics, readiness: async () => ({}), sampleTimeoutMs: 10_000 });
    const get = async () => {
      const res = await fetch(`http://127.0.0.1:${server.port}${QUEUE_PATH}`);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    try {
      // Starting: no queue yet, so no figure, never a 0 a scaler would read as an empty queue.
      expect(await get()).toEqual({ status: 503, body: { error: expect.stringMatching(/no sample of the study queue yet/) } });
      // Redis failing from the first sample on: still no figure.
      server.setSample(() => Promise.reject(new Error('Connection is closed.')));
      expect((await get()).status).toBe(503);

      const add = (uid: string, opts: { delay?: number; priority?: number }) =>
        queue.add(SCORE_STUDY_JOB, { StudyInstanceUID: uid, storageKey: `store/${uid}`, traceId: `t-${uid}` }, { jobId: `study-${uid}`, ...opts });
      await add('1.2.3.10', {}); // ready now: on the wait list
      await add('1.2.3.11', { priority: 10 }); // a bulk re-score: BullMQ's prioritized set, not the wait list
      await add('1.2.3.12', { priority: 10 });
      await add('1.2.3.13', { delay: 50 }); // quiet period over, no worker has asked since
      await add('1.2.3.14', { delay: 3_600_000 }); // still arriving
      await new Promise((r) => setTimeout(r, 300));
      expect(await client.llen(queue.toKey('wait'))).toBe(1); // all the Redis-list scaler would see

      server.setSample(() => sampleQueueDepth(queue, metrics, client));
      const { status, body } = await get();
      expect(status).toBe(200);
      expect(body).toMatchObject({ [READY_FIELD]: 4, waiting: 2, prioritized: 2, delayed: 1, active: 0 });
      expect(body.sampleAgeSeconds).toBeLessThan(1);
    } finally {
      await server.close();
      await queue.close();
    }
  });
});
