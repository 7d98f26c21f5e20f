// The hand-back at a stop past SHUTDOWN_TIMEOUT_SECONDS (initStudyWorker's handBack), in process with the real
// parts: a job whose result is already written is not handed back; it finishes and completes, its result written once.
// A job handed back while loading leaves no lock-renewal errors in the log while its processor winds down.
import { createLogger } from '../../shared/logger';
import { resultKeys } from '../../shared/results';
import { keys } from '../../shared/studies';
import { WORKER_DEFAULTS } from '../../services/worker/config';
import { initStudyWorker } from '../../services/worker/queue';
import { enqueueStudy, storeInstances, studyQueue, waitFor } from './helpers';
import { inlineJobDeps, workerParts } from './parts';
import { synthStudy } from './studies';

describe('handing jobs back at a stop (worker path, real parts)', () => {
  const parts = workerParts('hand-back');

  it('leaves a job whose result is written to finish: no second result version, the job completes', async () => {
    const study = synthStudy(43, 1, { fast: true });
    const uid = study.StudyInstanceUID;
    // Without its DWI the result is provisional, so the job schedules its finalise check after the result write:
    // held there, the job is between its write and its end when the stop hands jobs back.
    const dwi = new Set(study.labels.series.filter((s) => s.sequence === 'DWI').map((s) => s.SeriesInstanceUID));
    storeInstances(parts.dataDir, uid, study.files.filter((f) => !dwi.has(f.SeriesInstanceUID)));
    let atFinalise!: () => void;
    const reachedFinalise = new Promise<void>((r) => (atFinalise = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const deps = inlineJobDeps(parts, {
      partial: { waitMs: 60_000 },
      scheduleFinalise: async () => {
        atFinalise();
        await released;
      },
    });
    const { queue, worker, handBack } = initStudyWorker({ ...WORKER_DEFAULTS, WORKER_CONCURRENCY: 1 }, deps);
    const producer = studyQueue(parts.client);
    void worker.run();
    try {
      const jobId = await enqueueStudy(parts.client, producer, uid);
      await reachedFinalise;
      expect(await parts.client.hget(keys.study(uid), 'status')).toBe('scored');

      expect(await handBack()).toBe(0);
      release();
      await waitFor('the job to complete', async () => (await (await producer.getJob(jobId))!.getState()) === 'completed', 30_000, 20);
      // Long enough for a job wrongly back in the queue to be scored again by this still-running worker.
      await new Promise((r) => setTimeout(r, 1500));
      expect(JSON.parse((await parts.client.get(resultKeys.result(uid)))!).resultVersion).toBe(1);
      expect(await parts.client.hget(keys.study(uid), 'status')).toBe('scored');
      expect(await (await producer.getJob(jobId))!.getState()).toBe('completed');
    } finally {
      release();
      await worker.close();
      await Promise.all([queue.close(), producer.close()]);
    }
  }, 120_000);

  it('a job handed back while loading: no "could not renew lock" errors while its processor winds down', async () => {
    const study = synthStudy(44, 1, { fast: true });
    const uid = study.StudyInstanceUID;
    storeInstances(parts.dataDir, uid, study.files);
    const lines: { level: number; msg: string; err?: unknown }[] = [];
    const log = createLogger('worker', 'warn', { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
    let atLoad!: () => void;
    const reachedLoad = new Promise<void>((r) => (atLoad = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const base = inlineJobDeps(parts, { log });
    const loader = base.pipeline.loader;
    const deps = inlineJobDeps(parts, {
      log,
      pipeline: {
        ...base.pipeline,
        loader: { ...loader, load: async (dir) => { atLoad(); await released; return loader.load(dir); } },
      },
    });
    // Locks renewed every 250 ms: the held processor outlives several renewals after the hand-back.
    const { queue, worker, handBack } = initStudyWorker({ ...WORKER_DEFAULTS, WORKER_CONCURRENCY: 1, WORKER_LOCK_DURATION_MS: 500 }, deps);
    const producer = studyQueue(parts.client);
    void worker.run();
    try {
      const jobId = await enqueueStudy(parts.client, producer, uid);
      await reachedLoad;
      expect(await handBack()).toBe(1);
      expect(await (await producer.getJob(jobId))!.getState()).toBe('waiting');
      await worker.pause(true); // this worker takes no more jobs: the one handed back stays waiting
      await new Promise((r) => setTimeout(r, 1500));
      expect(lines.filter((l) => /renew lock/.test(JSON.stringify(l)))).toEqual([]);
    } finally {
      release();
      await worker.close();
      await Promise.all([queue.close(), producer.close()]);
    }
  }, 120_000);
});
