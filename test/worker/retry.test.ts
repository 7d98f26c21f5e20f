// Retry policy through the real queue module (initStudyWorker / execStudyJob) with real Redis, BullMQ, DICOM
// loading and ONNX Runtime; the study loader is wrapped to fail transiently a set number of times (an I/O error),
// which is the one thing injected. Also: a study that is not MR ends 'unsupported' (execStudyJob directly).
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { UnrecoverableError, type Job } from 'bullmq';
import { resultKeys } from '../../shared/results';
import { keys, type StudyJobData } from '../../shared/studies';
import { createInlineLoader } from '../../services/worker/load-pool';
import { createWorkerMetrics } from '../../services/worker/metrics';
import type { StudyLoader } from '../../services/worker/ports';
import { execStudyJob, type StudyJobDeps } from '../../services/worker/queue';
import { enqueueStudy, storeInstances, studyQueue, waitFor } from './helpers';
import { runWorker, workerParts } from './parts';
import { synthStudy } from './studies';

describe('retries and outcomes (queue module, real parts)', () => {
  const parts = workerParts('retry');
  const study = synthStudy(31, 2, { fast: true });

  /** The real loader, failing with a transient I/O error on its first `failures` calls. */
  function flakyLoader(failures: number): StudyLoader & { calls: number } {
    const real = createInlineLoader({ preprocessing: parts.models.manifest.preprocessing, sequences: parts.models.sequences });
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
      redis: parts.client, dataDir: parts.dataDir, pipeline: { loader, models: parts.models }, queries: parts.queries, deadLetters: parts.dlq, metrics, log: parts.log,
      retry: { attempts: 3, backoffMs: 50 },
    };
  }

  it('retries transient failures with backoff (worker-owned schedule) and scores once', async () => {
    const uid = study.StudyInstanceUID;
    storeInstances(parts.dataDir, uid, study.files);
    const loader = flakyLoader(2);
    const metrics = createWorkerMetrics();
    const queue = studyQueue(parts.client);
    await runWorker(deps(loader, metrics), async () => {
      const jobId = await enqueueStudy(parts.client, queue, uid); // no attempts in the job options
      await waitFor('the job to complete', async () => (await (await queue.getJob(jobId))!.getState()) === 'completed', 30_000, 50);
      const job = (await queue.getJob(jobId))!;
      expect(job.attemptsStarted).toBe(3);
      expect(loader.calls).toBe(3);
    });
    await queue.close();
    expect(await parts.client.exists(resultKeys.result(uid))).toBe(1);
    expect(await parts.client.hget(keys.study(uid), 'status')).toBe('scored');
    expect(await metrics.registry.getSingleMetricAsString('neurotriage_worker_jobs_total')).toMatch(/outcome="retried"\} 2/);
    // One scored study observed in the time-to-result histogram, under the priority it got.
    const result = JSON.parse((await parts.client.get(resultKeys.result(uid)))!) as { priority: string };
    expect(await metrics.registry.getSingleMetricAsString('neurotriage_worker_time_to_result_seconds')).toContain(
      `neurotriage_worker_time_to_result_seconds_count{priority="${result.priority}"} 1`,
    );
  });

  it('dead-letters a study whose transient failures outlast the attempts', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.9001';
    storeInstances(parts.dataDir, uid, study.files.map((f) => ({ ...f })));
    const queue = studyQueue(parts.client);
    await runWorker(deps(flakyLoader(100)), async () => {
      const jobId = await enqueueStudy(parts.client, queue, uid, { attempts: 2 }); // the producer's schedule this time
      const dead = await waitFor('the dead-letter copy', () => parts.dlq.getJob(`dead-${jobId}`), 30_000, 50);
      expect(dead.data).toMatchObject({ reason: 'retries-exhausted', status: 'failed', attempts: 2 });
      expect(dead.data.message).toMatch(/EIO/);
    });
    await queue.close();
    expect(await parts.client.hget(keys.study(uid), 'status')).toBe('failed');
    expect(await parts.client.sismember(keys.pendingStudies(), uid)).toBe(0);
  });

  it('a study that is not MR is unsupported and not retried (execStudyJob called directly)', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.9002';
    const dir = path.join(parts.dataDir, storeInstances(parts.dataDir, uid, study.files));
    // The same images relabelled as CT with DCMTK: every series is out of scope for the models.
    const files = study.files.map((f) => path.join(dir, f.SeriesInstanceUID, `${f.SOPInstanceUID}.dcm`));
    execFileSync('dcmodify', ['-nb', '-m', '(0008,0060)=CT', ...files], { env: { ...process.env, TCP_NODELAY: '1' }, stdio: 'pipe' });
    const queue = studyQueue(parts.client);
    const jobId = await enqueueStudy(parts.client, queue, uid, { attempts: 3 });
    const job = (await queue.getJob(jobId)) as Job<StudyJobData>;
    await expect(execStudyJob(job, deps(flakyLoader(0)))).rejects.toThrow(UnrecoverableError);
    const dead = await waitFor('the dead-letter copy', () => parts.dlq.getJob(`dead-${jobId}`));
    expect(dead.data).toMatchObject({ status: 'unsupported', reason: 'not-mr', attempts: 1 });
    expect(await parts.client.hget(keys.study(uid), 'status')).toBe('unsupported');
    expect(await parts.client.exists(resultKeys.result(uid))).toBe(0);
    await queue.close();
  });
});
