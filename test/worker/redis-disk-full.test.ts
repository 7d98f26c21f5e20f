// The worker against a Redis whose disk is full (its AOF on a small private tmpfs, test/helpers/small-fs.ts): Redis
// then refuses every write (MISCONF), so the worker cannot fetch a job. It must neither spin nor flood its log (BullMQ
// retries a failed fetch at once: ~2,000 error lines a second before the pause), must not mark anything scored, and
// must score the waiting study by itself once the disk has room again. Real Redis, BullMQ, DICOM loading and ONNX.
import { createLogger } from '../../shared/logger';
import { resultKeys } from '../../shared/results';
import { keys } from '../../shared/studies';
import { WRITES_REFUSED_PAUSE_MS } from '../../shared/write-refusals';
import { startRedis } from '../helpers/redis';
import { startSmallFs, type SmallFs } from '../helpers/small-fs';
import { enqueueStudy, storeInstances, studyQueue, waitFor } from './helpers';
import { inlineJobDeps, runWorker, workerParts } from './parts';
import { synthStudy } from './studies';

const lines: string[] = [];
let fs: SmallFs;
beforeAll(async () => {
  fs = await startSmallFs(8192);
});
const parts = workerParts('redis-disk-full', {
  log: createLogger('worker', 'warn', { write: (line: string) => void lines.push(line) }),
  redis: () => startRedis({ dir: `${fs.dir}/redis` }),
});
afterAll(async () => {
  await fs?.stop();
});

/** Writes until Redis answers MISCONF: its AOF write failed, and it refuses writes from then on. */
async function untilWritesRefused(): Promise<string> {
  return waitFor('Redis to refuse writes', async () => {
    const reply = await parts.client.set('nt:test:poke', 'x'.repeat(4096)).then(() => undefined, (err: Error) => err.message);
    return reply?.startsWith('MISCONF') ? reply : undefined;
  }, 10_000, 50);
}

test('while Redis refuses writes the worker pauses and logs once per pause; the study is scored when room returns', async () => {
  const study = synthStudy(32, 2, { fast: true });
  const uid = study.StudyInstanceUID;
  storeInstances(parts.dataDir, uid, study.files);
  await parts.client.sadd(keys.pendingStudies(), uid);
  const queue = studyQueue(parts.client);
  const jobId = await enqueueStudy(parts.client, queue, uid);
  fs.fill();
  expect(await untilWritesRefused()).toMatch(/No space left on device/);

  await runWorker(inlineJobDeps(parts), async () => {
    await waitFor('the refusal logged', () => lines.some((l) => l.includes('MISCONF')), 10_000);
    // Less than a pause long: without the pause thousands of error lines come in this time.
    await new Promise((r) => setTimeout(r, WRITES_REFUSED_PAUSE_MS / 2));
    expect(lines.filter((l) => l.includes('MISCONF')).length).toBeLessThanOrEqual(2);
    expect(lines.find((l) => l.includes('MISCONF'))).toContain('Redis cannot write to its disk (MISCONF) and refuses writes: fetching study jobs paused');
    expect(await parts.client.hget(keys.study(uid), 'status')).not.toBe('scored');
    expect(await parts.client.exists(resultKeys.result(uid))).toBe(0);

    fs.drain();
    await waitFor('the job to complete', async () => (await (await queue.getJob(jobId))?.getState()) === 'completed', 60_000, 100);
  });
  await queue.close();
  expect(await parts.client.hget(keys.study(uid), 'status')).toBe('scored');
  expect(await parts.client.exists(resultKeys.result(uid))).toBe(1);
});
