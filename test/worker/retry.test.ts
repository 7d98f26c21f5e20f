// Retry policy through the real queue module (initStudyWorker / execStudyJob) with real Redis, BullMQ, DICOM
// loading and ONNX Runtime; the study loader is wrapped to fail transiently a set number of times (an I/O error),
// which is the one thing injected. Also: a study that is not MR ends 'unsupported' (execStudyJob directly).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue, UnrecoverableError, type Job } from 'bullmq';
import { createLogger } from '../../shared/logger';
import { connectRedis } from '../../shared/redis';
import { resultKeys } from '../../shared/results';
import { keys, STUDY_DEAD_LETTER_QUEUE, type StudyJobData } from '../../shared/studies';
import { WORKER_DEFAULTS } from '../../services/worker/config';
import { createInlineLoader } from '../../services/worker/load-pool';
import { createWorkerMetrics } from '../../services/worker/metrics';
import { loadWorkerModels, type WorkerModels } from '../../services/worker/models';
import type { StudyLoader } from '../../services/worker/ports';
import { execStudyJob, initStudyWorker, type DeadLetterData, type StudyJobDeps } from '../../services/worker/queue';
import { createQuerySource, type QuerySource } from '../../services/worker/query-vectors';
import { startRedis, type TestRedis } from '../helpers/redis';
import { makeTinyBundle } from './bundle';
import { enqueueStudy, storeInstances, studyQueue, waitFor } from './helpers';
import { synthStudy } from './studies';

describe('retries and outcomes (queue module, real parts)', () => {
  let redis: TestRedis;
  let client: ReturnType<typeof connectRedis>;
  let dataDir: string;
  let modelsDir: string;
  let models: WorkerModels;
  let queries: QuerySource;
  let dlq: Queue<DeadLetterData>;
  const study = synthStudy(31, 2, { fast: true });
  const log = createLogger('test', process.env.TEST_LOG_LEVEL ?? 'silent');

  beforeAll(async () => {
    redis = await startRedis();
    client = connectRedis(redis.url, 'worker');
    dataDir = mkdtempSync(path.join(tmpdir(), 'nt-worker-retry-'));
    modelsDir = makeTinyBundle();
    models = await loadWorkerModels(modelsDir, { providers: ['cpu'] });
    queries = await createQuerySource({ redis: client, manifest: models.manifest, text: models.text, log });
    dlq = new Queue<DeadLetterData>(STUDY_DEAD_LETTER_QUEUE, { connection: client });
  });
  afterAll(async () => {
    await dlq?.close();
    await queries?.close();
    await models?.close();
    await client?.quit();
    await redis?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(modelsDir, { recursive: true, force: true });
  });

  /** The real loader, failing with a transient I/O error on its first `failures` calls. */
  function flakyLoader(failures: number): StudyLoader & { calls: number } {
    const real = createInlineLoader({ preprocessing: models.manifest.preprocessing, sequences: models.sequences });
    const l = {
      calls: 0,
      async load(dir: string) {
        if (++l.calls <= failures) throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
        return real.load(dir);
      },
      close: () => real.close(),
    };
    return l;
  }

  function deps(loader: StudyLoader, metrics = createWorkerMetrics()): StudyJobDeps {
    return {
      redis: client, dataDir, pipeline: { loader, models }, queries, deadLetters: dlq, metrics, log,
      retry: { attempts: 3, backoffMs: 50 },
    };
  }

  async function runWorker(d: StudyJobDeps, body: () => Promise<void>): Promise<void> {
    const { queue, worker } = initStudyWorker({ ...WORKER_DEFAULTS, WORKER_CONCURRENCY: 1 }, d);
    void worker.run();
    try {
      await body();
    } finally {
      await worker.close();
      await queue.close();
    }
  }

  it('retries transient failures with backoff (worker-owned schedule) and scores once', async () => {
    const uid = study.StudyInstanceUID;
    storeInstances(dataDir, uid, study.files);
    const loader = flakyLoader(2);
    const metrics = createWorkerMetrics();
    const queue = studyQueue(client);
    await runWorker(deps(loader, metrics), async () => {
      const jobId = await enqueueStudy(client, queue, uid); // no attempts in the job options
      await waitFor('the job to complete', async () => (await (await queue.getJob(jobId))!.getState()) === 'completed', 30_000, 50);
      const job = (await queue.getJob(jobId))!;
      expect(job.attemptsStarted).toBe(3);
      expect(loader.calls).toBe(3);
    });
    await queue.close();
    expect(await client.exists(resultKeys.result(uid))).toBe(1);
    expect(await client.hget(keys.study(uid), 'status')).toBe('scored');
    expect(await metrics.registry.getSingleMetricAsString('neurotriage_worker_jobs_total')).toMatch(/outcome="retried"\} 2/);
    // One scored study observed in the time-to-result histogram, under the priority it got.
    const result = JSON.parse((await client.get(resultKeys.result(uid)))!) as { priority: string };
    expect(await metrics.registry.getSingleMetricAsString('neurotriage_worker_time_to_result_seconds')).toContain(
      `neurotriage_worker_time_to_result_seconds_count{priority="${result.priority}"} 1`,
    );
  });

  it('dead-letters a study whose transient failures outlast the attempts', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.9001';
    storeInstances(dataDir, uid, study.files.map((f) => ({ ...f })));
    const queue = studyQueue(client);
    await runWorker(deps(flakyLoader(100)), async () => {
      const jobId = await enqueueStudy(client, queue, uid, { attempts: 2 }); // the producer's schedule this time
      const dead = await waitFor('the dead-letter copy', () => dlq.getJob(`dead-${jobId}`), 30_000, 50);
      expect(dead.data).toMatchObject({ reason: 'retries-exhausted', status: 'failed', attempts: 2 });
      expect(dead.data.message).toMatch(/EIO/);
    });
    await queue.close();
    expect(await client.hget(keys.study(uid), 'status')).toBe('failed');
    expect(await client.sismember(keys.pendingStudies(), uid)).toBe(0);
  });

  it('a study that is not MR is unsupported and not retried (execStudyJob called directly)', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.9002';
    const dir = path.join(dataDir, storeInstances(dataDir, uid, study.files));
    // The same images relabelled as CT with DCMTK: every series is out of scope for the models.
    const files = study.files.map((f) => path.join(dir, f.SeriesInstanceUID, `${f.SOPInstanceUID}.dcm`));
    execFileSync('dcmodify', ['-nb', '-m', '(0008,0060)=CT', ...files], { env: { ...process.env, TCP_NODELAY: '1' }, stdio: 'pipe' });
    const queue = studyQueue(client);
    const jobId = await enqueueStudy(client, queue, uid, { attempts: 3 });
    const job = (await queue.getJob(jobId)) as Job<StudyJobData>;
    await expect(execStudyJob(job, deps(flakyLoader(0)))).rejects.toThrow(UnrecoverableError);
    const dead = await waitFor('the dead-letter copy', () => dlq.getJob(`dead-${jobId}`));
    expect(dead.data).toMatchObject({ status: 'unsupported', reason: 'not-mr', attempts: 1 });
    expect(await client.hget(keys.study(uid), 'status')).toBe('unsupported');
    expect(await client.exists(resultKeys.result(uid))).toBe(0);
    await queue.close();
  });
});
