// A worker killed or stopped mid-job: the built worker runs as a child process. SIGKILLed while it scores a study,
// a fresh worker process picks the job up after its lock lapses. Stopped (SIGTERM) past SHUTDOWN_TIMEOUT_SECONDS, it
// hands the job back to the queue unspent. Either way exactly one result exists and the job completed.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { connectRedis } from '../../shared/redis';
import { resultKeys } from '../../shared/results';
import { keys, STUDY_DEAD_LETTER_QUEUE } from '../../shared/studies';
import { startRedis, type TestRedis } from '../helpers/redis';
import { alive, descendants } from '../start/harness';
import { makeTinyBundle } from './bundle';
import { BUILT_WORKER, enqueueStudy, readyPort, requireBuild, storeInstances, studyQueue, waitFor, workerEnv } from './helpers';
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

  const startChild = (extra: Record<string, string> = {}): ChildProcess => {
    const env = workerEnv({
      redisUrl: redis.url, dataDir, modelsDir,
      // A killed worker's job is picked up after its lock lapses: short here so the test is quick.
      extra: { WORKER_LOCK_DURATION_MS: '2000', WORKER_STALLED_INTERVAL_MS: '500', ...extra },
    });
    // With LOG_LEVEL set, stdout is piped for the test to read (readyPort).
    const stdout = extra.LOG_LEVEL ? 'pipe' : process.env.TEST_LOG_LEVEL ? 'inherit' : 'ignore';
    const child = spawn(process.execPath, [BUILT_WORKER], { env, stdio: ['ignore', stdout, 'inherit'] });
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

  it('hands a job still running back to the queue when stopped past SHUTDOWN_TIMEOUT_SECONDS: no attempt spent, no stall counted', async () => {
    const study = synthStudy(12, 2, { fast: true });
    const uid = study.StudyInstanceUID;
    storeInstances(dataDir, uid, study.files);
    const queue = studyQueue(client);
    const dlq = new Queue(STUDY_DEAD_LETTER_QUEUE, { connection: client });
    const first = startChild({ SHUTDOWN_TIMEOUT_SECONDS: '1', LOG_LEVEL: 'info' });
    const log: string[] = [];
    let loaders: number[] = [];
    try {
      await readyPort(first, 'ready');
      createInterface({ input: first.stdout! }).on('line', (line) => log.push(line));
      // Its loader processes frozen: the job it takes is still loading whenever the stop comes, however fast this machine.
      loaders = descendants(first.pid!);
      expect(loaders.length).toBeGreaterThan(0);
      for (const pid of loaders) process.kill(pid, 'SIGSTOP');
      const jobId = await enqueueStudy(client, queue, uid, { attempts: 3 });
      await waitFor('the first worker to start scoring', async () => (await client.hget(keys.study(uid), 'status')) === 'scoring', 30_000, 20);
      first.kill('SIGTERM');
      await exited(first);
      expect(first.exitCode).toBe(0);
      expect(log.find((l) => l.includes('handed back to the queue for the next worker'))).toContain('"handedBack":1');

      // Back at the head of the queue as it was: before, the stop spent an attempt (loading interrupted, retried
      // after its backoff), and a job stopped while inferring stalled; two rolling updates dead-lettered it.
      const job = (await queue.getJob(jobId))!;
      expect(await job.getState()).toBe('waiting');
      expect(job.attemptsMade).toBe(0);
      expect(job.stalledCounter).toBe(0);
      expect(await client.hget(keys.study(uid), 'status')).toBe('queued');

      const second = startChild();
      await waitFor('the job to complete on the second worker', async () => (await (await queue.getJob(jobId))!.getState()) === 'completed', 90_000, 50);
      expect(JSON.parse((await client.get(resultKeys.result(uid)))!).resultVersion).toBe(1);
      expect(await client.hget(keys.study(uid), 'status')).toBe('scored');
      expect(await dlq.count()).toBe(0);
      second.kill('SIGTERM');
      await exited(second);
    } finally {
      for (const pid of loaders) if (alive(pid)) process.kill(pid, 'SIGCONT');
      await Promise.all([queue.close(), dlq.close()]);
    }
  }, 180_000);
});
