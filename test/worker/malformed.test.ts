// The malformed-study set through the built worker process (real Redis, real files, real ONNX Runtime, loader
// processes): every bad study ends not triaged with its reason after one attempt, the worker process never dies,
// and a good study and a study with images left out are scored beside them, the latter with lower confidence.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { goodStudy, malformedStudies } from '../../bench/malformed-studies';
import { connectRedis } from '../../shared/redis';
import { resultKeys, type StudyResult } from '../../shared/results';
import { keys, STUDY_DEAD_LETTER_QUEUE } from '../../shared/studies';
import { axialPositions, makeSeries, phantom, stackPositions, uid } from '../../shared/imaging/synthetic';
import type { DeadLetterData } from '../../services/worker/queue';
import { startRedis, type TestRedis } from '../helpers/redis';
import { makeTinyBundle } from './bundle';
import { BUILT_WORKER, enqueueStudy, readyPort, requireBuild, ROOT, storeInstances, studyQueue, waitFor, workerEnv } from './helpers';

describe('malformed studies through the built worker', () => {
  let redis: TestRedis;
  let client: ReturnType<typeof connectRedis>;
  let dataDir: string;
  let modelsDir: string;
  let worker: ChildProcess;
  let exited = false;
  let metricsPort: Promise<number>;

  beforeAll(async () => {
    requireBuild();
    redis = await startRedis();
    client = connectRedis(redis.url, 'worker');
    dataDir = mkdtempSync(path.join(tmpdir(), 'nt-worker-bad-'));
    modelsDir = makeTinyBundle();
    worker = spawn(process.execPath, [BUILT_WORKER], {
      env: workerEnv({ redisUrl: redis.url, dataDir, modelsDir, extra: { WORKER_CONCURRENCY: '3', WORKER_LOAD_PROCESSES: '2', LOG_LEVEL: 'info' } }),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    worker.once('exit', () => (exited = true));
    metricsPort = readyPort(worker);
  });
  afterAll(async () => {
    if (!exited) {
      const gone = new Promise((r) => worker.once('exit', r));
      worker.kill('SIGTERM');
      await gone;
    }
    await client?.quit();
    await redis?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(modelsDir, { recursive: true, force: true });
  });

  it('fails each bad study once, with its reason, and scores the good ones beside them', async () => {
    const bad = malformedStudies(3, 'test');
    const good = goodStudy(3, 'test');
    // A T2 series with a few sagittal images mixed in: scored, the sagittal ones listed as left out.
    const mixedUid = uid();
    const centre: [number, number, number] = [0, 10, 25];
    const t2 = { StudyInstanceUID: mixedUid, SeriesInstanceUID: `${mixedUid}.1`, SeriesDescription: 't2_tse_tra', intensity: phantom(centre, [15, 0, 40]) };
    const mixed = [
      ...makeSeries({ ...t2, positions: axialPositions(centre, 16, 5) }),
      ...makeSeries({ ...t2, rowDirection: [0, 1, 0], columnDirection: [0, 0, -1], positions: stackPositions(centre, [0, 1, 0], [0, 0, -1], 6, 5) }).map((d) => d),
    ].map((data, k) => ({ SeriesInstanceUID: t2.SeriesInstanceUID, SOPInstanceUID: `${t2.SeriesInstanceUID}.${k + 1}`, data }));

    const queue = studyQueue(client);
    const dlq = new Queue<DeadLetterData>(STUDY_DEAD_LETTER_QUEUE, { connection: client });
    try {
      for (const s of bad) storeInstances(dataDir, s.StudyInstanceUID, s.files);
      storeInstances(dataDir, good.StudyInstanceUID, good.files);
      storeInstances(dataDir, mixedUid, mixed);
      const jobIds = new Map<string, string>();
      for (const uidOf of [...bad.map((s) => s.StudyInstanceUID), good.StudyInstanceUID, mixedUid]) {
        jobIds.set(uidOf, await enqueueStudy(client, queue, uidOf, { attempts: 3 }));
      }

      for (const s of bad) {
        const status = await waitFor(`${s.name} to end not triaged`, async () => {
          const st = await client.hget(keys.study(s.StudyInstanceUID), 'status');
          return st === 'failed' || st === 'unsupported' ? st : undefined;
        }, 90_000, 50);
        const failureReason = await client.hget(keys.study(s.StudyInstanceUID), 'failureReason');
        expect([s.name, status, failureReason?.split(':')[0]]).toEqual([s.name, s.expect.status, s.expect.reason]);
        expect(await client.zscore(keys.untriagedStudies(), s.StudyInstanceUID)).not.toBeNull(); // the API's "Not triaged" list
        const dead = await waitFor('its dead-letter copy', () => dlq.getJob(`dead-${jobIds.get(s.StudyInstanceUID)}`));
        expect(dead.data.attempts).toBe(1); // permanent: never retried
        expect(dead.data.message).not.toMatch(/PatientName|PatientID/);
      }
      const scored = async (u: string) => JSON.parse((await waitFor(`study ${u} scored`, () => client.get(resultKeys.result(u)), 90_000, 50))!) as StudyResult;
      const goodResult = await scored(good.StudyInstanceUID);
      expect(goodResult.series.every((x) => !x.dropped?.some((d) => d.reason === 'unreadable'))).toBe(true);
      const mixedResult = await scored(mixedUid);
      const t2Outcome = mixedResult.series.find((x) => x.used)!;
      expect(t2Outcome.dropped).toEqual([{ images: 6, reason: 'other-stack' }]);
      const fraction = mixedResult.sequencesUsed.length / (mixedResult.sequencesUsed.length + mixedResult.sequencesMissing.length);
      expect(mixedResult.confidence).toBeCloseTo(fraction * (16 / 22), 3);
      expect(exited).toBe(false); // the worker process never went down
      const metrics = await (await fetch(`http://127.0.0.1:${await metricsPort}/metrics`)).text();
      // The checks caught them all: no loader process was lost (each reason exported at 0).
      expect(metrics).toMatch(/neurotriage_worker_loader_processes_lost_total\{reason="load-crashed"\} 0\n/);
      expect(metrics).not.toMatch(/neurotriage_worker_loader_processes_lost_total\{[^}]*\} [1-9]/);
    } finally {
      await Promise.all([queue.close(), dlq.close()]);
    }
  }, 240_000);

  it('a damaged repeat of a sequence beside an intact series of it: scored from the intact one, the damaged one listed', async () => {
    const study = uid();
    const centre: [number, number, number] = [0, 10, 25];
    const series = (n: number, rescale?: { slope: number; intercept: number }) =>
      makeSeries({ StudyInstanceUID: study, SeriesInstanceUID: `${study}.${n}`, SeriesNumber: n, SeriesDescription: 't2_tse_tra', positions: axialPositions(centre, 16, 5), intensity: phantom(centre, [15, 0, 40]), ...(rescale ? { rescale } : {}) })
        .map((data, k) => ({ SeriesInstanceUID: `${study}.${n}`, SOPInstanceUID: `${study}.${n}.${k + 1}`, data }));
    // The repeat (higher series number, preferred) has a rescale that overflows float32: it does not decode.
    storeInstances(dataDir, study, [...series(1), ...series(2, { slope: 3e38, intercept: 3e38 })]);
    const queue = studyQueue(client);
    try {
      await enqueueStudy(client, queue, study, { attempts: 1 });
      const result = JSON.parse((await waitFor('the study scored', () => client.get(resultKeys.result(study)), 90_000, 50))!) as StudyResult;
      const byUid = new Map(result.series.map((x) => [x.SeriesInstanceUID, x]));
      expect(byUid.get(`${study}.1`)).toMatchObject({ used: true });
      expect(byUid.get(`${study}.2`)).toMatchObject({ used: false, reason: expect.stringMatching(/^corrupt: \S+\.dcm: frame 0: Rescale Slope 3e\+38 and Intercept 3e\+38 give values out of range$/) });
      expect(await client.hget(keys.study(study), 'status')).toBe('scored');
    } finally {
      await queue.close();
    }
  }, 120_000);

  it('npm run score on a folder with a damaged instance ends with a clear error, not an abort', () => {
    const study = malformedStudies(4, 'test').find((x) => /CH/.test(x.name))!;
    const key = storeInstances(dataDir, study.StudyInstanceUID, study.files);
    const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/services/worker/score-cli.js'), path.join(dataDir, key), '--models', modelsDir, '--provider', 'cpu'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.signal).toBeNull();
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^score: the study cannot be scored \(corrupt\): 1 instance\(s\) cannot be read in series \d+ \(T2\): .*unknown VR "CH"/m);
    expect(r.stderr).not.toMatch(/FATAL/);
    expect(r.stdout).toBe('');
  }, 180_000);
});
