// Partial studies through the real worker path (initStudyWorker, BullMQ, real Redis, DICOM loading, ONNX Runtime
// with the recipe's fixture bundle): a study received without its DWI series is scored at once, but the result is
// provisional and a finding whose query reads on DWI (scored on the other sequences instead) is flagged without
// raising the priority; when the wait expires the final version (resultVersion 2) counts it; when the rest arrives
// first, the re-scored complete study is final and the pending finalise job changes nothing. Also the query layers
// as the worker reads them: the bundle's defaults, the site's queries and turned-off defaults, and the class
// thresholds a site's TRIAGE_STAT_SENSITIVITY gives, published for the API.
import type { Queue } from 'bullmq';
import { parseManifest, type Manifest, type TriageQuery } from '../../shared/model-manifest';
import { changeQuery, queryKeys, readJudging, setDefaultDisabled } from '../../shared/queries';
import { resultKeys, type StudyResult } from '../../shared/results';
import { keys, SCORE_STUDY_JOB, studyStorageKey, type StudyJobData } from '../../shared/studies';
import { execFinaliseJob } from '../../services/worker/queue';
import { createLogger } from '../../shared/logger';
import { createQuerySource } from '../../services/worker/query-vectors';
import { testCalibration } from '../helpers/calibration';
import { storeInstances, studyQueue, waitFor } from './helpers';
import { inlineJobDeps, runWorker, workerParts } from './parts';
import { synthStudy } from './studies';

describe('partial studies and query layers (worker path, real parts)', () => {
  const parts = workerParts('partial');
  const study = synthStudy(41, 1, { fast: true });
  // Long enough that a loaded CI machine still scores the first part inside it (the provisional phase is what is tested).
  const WAIT_MS = 20_000;

  /** A STAT query read on DWI whose calibration flags every study (P ~ 1 >= 0.5): what is under test is the rule. */
  function alwaysFlagged(manifest: Manifest): TriageQuery {
    const q: TriageQuery = { id: 'bleed_dwi', text: 'Intraparenchymal haematoma.', negativeText: 'Normal MRI brain.', priority: 'STAT', sequences: ['DWI'] };
    const c = testCalibration(q, { a: 0, b: 10, scoreThreshold: 0 }, manifest.version);
    return { ...q, calibration: { ...c, threshold: 0.5 } };
  }

  it('the worker judges with the bundle\'s defaults plus the site layer; deleting the site hash leaves the defaults', async () => {
    const defaults = parts.models.manifest.queries.map((q) => q.id).sort();
    expect((await parts.queries.current()).queries.map((q) => q.id)).toEqual(defaults);
    await changeQuery(parts.client, { put: alwaysFlagged(parts.models.manifest) });
    await setDefaultDisabled(parts.client, 'atrophy', true);
    let set = await parts.queries.current();
    expect(set.queries.map((q) => q.id)).toEqual([...defaults.filter((id) => id !== 'atrophy'), 'bleed_dwi'].sort());
    expect(set.queries.find((q) => q.id === 'bleed_dwi')?.origin).toBe('site');
    expect(set.queries.find((q) => q.id === 'acute_infarct')?.origin).toBe('bundle');
    await parts.client.del(queryKeys.queries(), queryKeys.disabled());
    await parts.client.incr(queryKeys.version());
    set = await parts.queries.current();
    expect(set.queries.map((q) => q.id)).toEqual(defaults);
  });

  it('a site\'s TRIAGE_STAT_SENSITIVITY picks the class threshold from the bundle\'s table and is published for the API', async () => {
    const table = [
      { threshold: 0.7, sensitivity: 0.9, falsePositiveRate: 0.05 },
      { threshold: 0.45, sensitivity: 0.95, falsePositiveRate: 0.09 },
      { threshold: 0.2, sensitivity: 0.99, falsePositiveRate: 0.3 },
    ];
    const manifest = parseManifest({ ...parts.models.manifest, decision: { STAT: { targetSensitivity: 0.95, threshold: 0.45, positives: 40, negatives: 160, table } } });
    const source = await createQuerySource({ redis: parts.client, manifest, text: parts.models.text, log: parts.log, sensitivity: { STAT: 0.99 } });
    try {
      expect((await source.current()).classThresholds).toEqual({ STAT: 0.2 });
      expect(await readJudging(parts.client, manifest)).toMatchObject({ classThresholds: { STAT: 0.2 }, sensitivity: { STAT: 0.99 } });
    } finally {
      await source.close();
    }
  });

  const deps = () => inlineJobDeps(parts, { partial: { waitMs: WAIT_MS } });

  /** What the listener does when instances arrive: record them (last arrival now) and queue a scoring job. */
  async function arrive(queue: Queue<StudyJobData>, uid: string, files: typeof study.files, jobId: string): Promise<void> {
    storeInstances(parts.dataDir, uid, files);
    const now = Date.now();
    await parts.client.multi().hsetnx(keys.study(uid), 'firstReceivedAt', String(now)).hset(keys.study(uid), { status: 'queued', lastReceivedAt: now }).sadd(keys.pendingStudies(), uid).exec();
    await queue.add(SCORE_STUDY_JOB, { StudyInstanceUID: uid, storageKey: studyStorageKey(uid), traceId: `test-${jobId}` }, { jobId });
  }

  const readResult = async (uid: string): Promise<StudyResult | null> => {
    const raw = await parts.client.get(resultKeys.result(uid));
    return raw ? (JSON.parse(raw) as StudyResult) : null;
  };

  it('without its DWI a study is provisional and the DWI finding cannot make it STAT; when the wait expires the final version counts it', async () => {
    // Only the site's DWI query judges: the fixture bundle's random-weight defaults are turned off.
    for (const q of parts.models.manifest.queries) await setDefaultDisabled(parts.client, q.id, true);
    await changeQuery(parts.client, { put: alwaysFlagged(parts.models.manifest) });
    const dwi = new Set(study.labels.series.filter((s) => s.sequence === 'DWI').map((s) => s.SeriesInstanceUID));
    expect(dwi.size).toBeGreaterThan(0);
    const uid = '1.2.826.0.1.3680043.8.498.7001';
    const queue = studyQueue(parts.client);
    await runWorker(deps(), async () => {
      await arrive(queue, uid, study.files.filter((f) => !dwi.has(f.SeriesInstanceUID)), 'partial-1');
      const first = await waitFor('the provisional result', () => readResult(uid), 60_000, 50);
      expect(first.resultVersion).toBe(1);
      // The scoring job's trace id, which the study's deliveries log under (outbound.ts enqueueStudy).
      expect(first.traceId).toBe('test-partial-1');
      expect(first.provisional?.waitingFor).toEqual(['DWI']);
      const bleed = first.findings.find((f) => f.queryId === 'bleed_dwi')!;
      expect(bleed).toMatchObject({ flagged: true, triggered: false, held: true, fallback: true, waitingFor: ['DWI'] });
      expect(first.priority).toBe('ROUTINE');
      expect(first.sequencesUsed).not.toContain('DWI');

      const final = await waitFor('the final version', async () => {
        const r = await readResult(uid);
        return r && r.resultVersion === 2 ? r : null;
      }, 60_000, 100);
      expect(final.provisional).toBeUndefined();
      expect(final.incomplete).toMatchObject({ missing: ['DWI'], waitedUntil: first.provisional!.until });
      expect(final.priority).toBe('STAT');
      expect(final.findings.find((f) => f.queryId === 'bleed_dwi')).toMatchObject({ flagged: true, triggered: true, fallback: true });
      expect(final.findings.find((f) => f.queryId === 'bleed_dwi')!.held).toBeUndefined();
      expect(final.judgedWith).toEqual(first.judgedWith);
      expect(final.traceId).toBe('test-partial-1');
      expect(await parts.client.zscore(resultKeys.recent(), uid)).toBe(String(final.scoredAt));
    });
    await queue.close();
  });

  it('when the rest of the study arrives within the wait, it is re-scored complete and final; the pending finalise job changes nothing', async () => {
    const dwi = new Set(study.labels.series.filter((s) => s.sequence === 'DWI').map((s) => s.SeriesInstanceUID));
    const uid = '1.2.826.0.1.3680043.8.498.7002';
    const queue = studyQueue(parts.client);
    await runWorker(deps(), async () => {
      await arrive(queue, uid, study.files.filter((f) => !dwi.has(f.SeriesInstanceUID)), 'rest-1');
      const first = await waitFor('the provisional result', () => readResult(uid), 60_000, 50);
      expect(first.provisional).toBeDefined();
      await arrive(queue, uid, study.files.filter((f) => dwi.has(f.SeriesInstanceUID)), 'rest-2');
      const complete = await waitFor('the complete result', async () => {
        const r = await readResult(uid);
        return r && r.resultVersion === 2 ? r : null;
      }, 60_000, 50);
      expect(complete.provisional).toBeUndefined();
      expect(complete.incomplete).toBeUndefined();
      expect(complete.sequencesUsed).toContain('DWI');
      expect(complete.traceId).toBe('test-rest-2');
      expect(complete.findings.find((f) => f.queryId === 'bleed_dwi')).toMatchObject({ flagged: true, triggered: true });
      expect(complete.findings.find((f) => f.queryId === 'bleed_dwi')!.fallback).toBeUndefined();
      expect(complete.priority).toBe('STAT');
      // The finalise job of version 1 runs at its time and finds a newer result: nothing is written.
      const job = await waitFor('the finalise job to finish', async () => {
        const j = await queue.getJob(`finalise-${uid}-v1`);
        return j && (await j.getState()) === 'completed' ? j : null;
      }, 60_000, 100);
      expect(job.returnvalue).toMatchObject({ priority: 'superseded' });
      expect((await readResult(uid))!.resultVersion).toBe(2);
    });
    await queue.close();
  });

  it('a finalise job whose stored result cannot be read leaves it as it is and says so, never quoting it', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.7003';
    const lines: string[] = [];
    const log = createLogger('worker-test', 'info', { write: (line: string) => void lines.push(line) });
    for (const stored of ['{"StudyInstanceUID":"1.2.3","AccessionNumber":"ACC-SECRET-1"', '{"AccessionNumber":"ACC-SECRET-2"}']) {
      await parts.client.set(resultKeys.result(uid), stored); // cut off; valid JSON of another shape
      const data = { StudyInstanceUID: uid, storageKey: studyStorageKey(uid), traceId: 'finalise-unreadable', resultVersion: 1 };
      expect(await execFinaliseJob({ data }, { redis: parts.client, log })).toBe('unreadable');
      expect(await parts.client.get(resultKeys.result(uid))).toBe(stored);
    }
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(Array(2).fill('stored result unreadable: not finalised; score the study again'));
    expect(lines.join('')).not.toContain('ACC-SECRET');
  });
});
