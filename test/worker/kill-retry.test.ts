// A worker killed mid-job: the built worker runs as a child process, is SIGKILLed while it scores a study, and a
// fresh worker process picks the job up after its lock lapses. Exactly one result exists and the job completed.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { connectRedis } from '../../shared/redis';
import { resultKeys } from '../../shared/results';
import { keys, STUDY_DEAD_LETTER_QUEUE } from '../../shared/studies';
import { startRedis, type TestRedis } from '../helpers/redis';
import { makeTinyBundle } from './bundle';
import { BUILT_WORKER, enqueueStudy, requireBuild, storeInstances, studyQueue, waitFor, workerEnv } from './helpers';
import { synthStudy } from './studies';

describe('kill-and-retry (built worker as a child process)', () => {
  let redis: TestRedis;
  let client: ReturnType<typeof connectRedis>;
  let dataDir: string;
  let modelsDir: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    requireBuild();
    redis = await startRedis();
    client = connectRedis(redis.url, 'worker');
    dataDir = mkdtempSync(path.join(tmpdir(), 'nt-worker-kill-'));
    modelsDir = makeTinyBundle();
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await client?.quit();
    await redis?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(modelsDir, { recursive: true, force: true });
  });

  const startChild = (): ChildProcess => {
    const env = workerEnv({
      redisUrl: redis.url, dataDir, modelsDir,
      // A killed worker's job is picked up after its lock lapses: short here so the test is quick.
      extra: { WORKER_LOCK_DURATION_MS: '2000', WORKER_STALLED_INTERVAL_MS: '500' },
    });
    const child = spawn(process.execPath, [BUILT_WORKER], { env, stdio: ['ignore', process.env.TEST_LOG_LEVEL ? 'inherit' : 'ignore', 'inherit'] });
    children.push(child);
    return child;
  };
  const exited = (c: ChildProcess) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));

  it('retries the job after SIGKILL and leaves exactly one result', async () => {
    const study = synthStudy(11, 1, { fast: true });
    const uid = study.StudyInstanceUID;
    storeInstances(dataDir, uid, study.files);
    const queue = studyQueue(client);
    const dlq = new Queue(STUDY_DEAD_LETTER_QUEUE, { connection: client });
    try {
      const jobId = await enqueueStudy(client, queue, uid, { attempts: 3 });
      const first = startChild();
      // Kill as soon as the job is being scored (status set at the start of the job, before loading).
      await waitFor('the first worker to start scoring', async () => (await client.hget(keys.study(uid), 'status')) === 'scoring', 30_000, 2);
      first.kill('SIGKILL');
      await exited(first);
      expect(first.signalCode).toBe('SIGKILL');
      expect(await (await queue.getJob(jobId))!.getState()).toBe('active'); // orphaned: its worker is gone

      const second = startChild();
      await waitFor('the job to complete on the second worker', async () => (await (await queue.getJob(jobId))!.getState()) === 'completed', 90_000, 50);
      const job = (await queue.getJob(jobId))!;
      expect(job.attemptsStarted).toBeGreaterThanOrEqual(2);
      const result = JSON.parse((await client.get(resultKeys.result(uid)))!);
      expect(result.StudyInstanceUID).toBe(uid);
      expect(job.returnvalue.priority).toBe(result.priority);
      expect(await client.zcard(resultKeys.worklist())).toBe(1);
      expect(await client.zscore(resultKeys.worklist(), uid)).not.toBeNull();
      expect(await client.hget(keys.study(uid), 'status')).toBe('scored');
      expect(await client.sismember(keys.pendingStudies(), uid)).toBe(0);
      expect(await dlq.count()).toBe(0);

      second.kill('SIGTERM');
      await exited(second);
      expect(second.exitCode).toBe(0); // graceful shutdown
    } finally {
      await Promise.all([queue.close(), dlq.close()]);
    }
  }, 180_000); // two worker processes start (models, loader process) on a machine that may be loaded
});
