// The listener against real DCMTK peers on loopback: C-ECHO, a multi-series study becoming exactly one study job,
// association policy (unknown called/calling AE), duplicates stored once, and the metrics endpoint.
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { keys } from '../../shared/studies';
import { echoscu, newUid, storescu, writeMrInstance } from '../helpers/dcmtk';
import { listFiles, metricsText, startHarness, startStudyWorker, studyJobs, tempDir, waitFor, type Harness } from './harness';

let h: Harness;
let files: string;

beforeAll(async () => {
  h = await startHarness();
  files = tempDir('nt-files-');
});

afterAll(async () => {
  await h.stop();
  rmSync(files, { recursive: true, force: true });
});

function makeStudy(series: number, perSeries: number): { study: string; series: string[]; sops: string[]; paths: string[] } {
  const study = newUid();
  const seriesUids: string[] = [];
  const sops: string[] = [];
  const paths: string[] = [];
  for (let s = 0; s < series; s++) {
    const seriesUid = newUid();
    seriesUids.push(seriesUid);
    for (let i = 0; i < perSeries; i++) {
      const file = path.join(files, `${study}-${s}-${i}.dcm`);
      sops.push(writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: seriesUid, SeriesNumber: s + 1, InstanceNumber: i + 1 }));
      paths.push(file);
    }
  }
  return { study, series: seriesUids, sops, paths };
}

test('C-ECHO from an allowed calling AE succeeds', async () => {
  const r = await echoscu(h.ae);
  expect(r.associationRejected).toBe(false);
  expect(r.code).toBe(0);
});

/** neurotriage_listener_studies_enqueued_total{trigger="arrival"} now. */
async function enqueuedOnArrival(): Promise<number> {
  return Number(/neurotriage_listener_studies_enqueued_total\{trigger="arrival"\} (\d+)/.exec(await metricsText(h.listener.metricsPort))?.[1] ?? 0);
}

test('a multi-series study is stored durably and becomes exactly one study job', async () => {
  const worker = startStudyWorker(h.redis.url);
  try {
    const enqueuedBefore = await enqueuedOnArrival();
    const s = makeStudy(3, 4);
    const r = await storescu(h.ae, s.paths);
    expect(r.code).toBe(0);
    expect(r.statuses).toEqual(s.paths.map(() => 0));

    const stored = listFiles(path.join(h.dataDir, 'store', s.study));
    expect(stored).toHaveLength(12);
    for (const series of s.series) expect(stored.filter((f) => f.startsWith(`${series}/`))).toHaveLength(4);
    // Each stored file is a Part 10 file that carries the received data set.
    const first = readFileSync(path.join(h.dataDir, 'store', s.study, stored[0]));
    expect(first.toString('latin1', 128, 132)).toBe('DICM');

    const recorded = await h.client.hgetall(keys.studyInstances(s.study));
    expect(Object.keys(recorded).sort()).toEqual([...s.sops].sort());
    const study = await h.client.hgetall(keys.study(s.study));
    expect(study.instances).toBe('12');
    // The worker's result and the HL7 message are keyed on it (the RIS matches orders by accession number).
    expect(study.AccessionNumber).toBe('ACC0001');
    // The job is scheduled off the response path, so 'queued' may follow the last response by a moment.
    await waitFor(async () => ((await h.client.hget(keys.study(s.study), 'status')) === 'queued' ? true : undefined), 5000, 'status queued');

    await waitFor(() => (worker.jobs.length > 0 ? true : undefined), 10_000, 'the study job');
    // Twelve instances moved the job along; the study was enqueued once.
    expect((await enqueuedOnArrival()) - enqueuedBefore).toBe(1);
    // Longer than the quiet period again: no second job may follow.
    await new Promise((r) => setTimeout(r, 1000));
    const forStudy = worker.jobs.filter((j) => j.StudyInstanceUID === s.study);
    expect(forStudy).toHaveLength(1);
    expect(forStudy[0].storageKey).toBe(`store/${s.study}`);
    expect(Object.keys(forStudy[0]).sort()).toEqual(['StudyInstanceUID', 'storageKey', 'traceId']);
  } finally {
    await worker.close();
  }
});

test('an unknown calling AE and a wrong called AE are rejected with A-ASSOCIATE-RJ', async () => {
  const s = makeStudy(1, 1);
  const unknownCaller = await storescu({ ...h.ae, callingAe: 'STRANGER' }, s.paths);
  expect(unknownCaller.associationRejected).toBe(true);
  expect(unknownCaller.stdout + unknownCaller.stderr).toMatch(/Calling AE Title Not Recognized/i);
  const wrongCalled = await echoscu({ ...h.ae, calledAe: 'SOMEONE_ELSE' });
  expect(wrongCalled.associationRejected).toBe(true);
  expect(wrongCalled.stdout + wrongCalled.stderr).toMatch(/Called AE Title Not Recognized/i);
  expect(listFiles(path.join(h.dataDir, 'store', s.study))).toHaveLength(0);
  // The log line a PACS administrator reads says how to let the sender in.
  const line = h.logLines.find((l) => l.includes('"reason":"calling-ae-not-recognised"'));
  expect(line).toMatch(/"callingAeTitle":"STRANGER".*add its AE \(or AE@host\) to DICOM_ALLOWED_CALLING_AES/);
  const text = await metricsText(h.listener.metricsPort);
  expect(text).toMatch(/neurotriage_listener_associations_total\{result="rejected",reason="calling-ae-not-recognised"\} [1-9]/);
  expect(text).toMatch(/neurotriage_listener_associations_total\{result="rejected",reason="called-ae-not-recognised"\} [1-9]/);
});

test('the same SOP Instance UID sent twice is stored once and scheduled once', async () => {
  const s = makeStudy(1, 2);
  const first = await storescu(h.ae, s.paths);
  expect(first.statuses).toEqual([0, 0]);
  const again = await storescu(h.ae, [s.paths[0], s.paths[0]]);
  expect(again.statuses).toEqual([0, 0]);
  expect(listFiles(path.join(h.dataDir, 'store', s.study))).toHaveLength(2);
  expect(await h.client.hlen(keys.studyInstances(s.study))).toBe(2);
  expect(await h.client.hget(keys.study(s.study), 'instances')).toBe('2');
  const jobs = (await studyJobs(h.redis.url)).filter((j) => j.data.StudyInstanceUID === s.study);
  expect(jobs).toHaveLength(1);
  const text = await metricsText(h.listener.metricsPort);
  expect(text).toMatch(/neurotriage_listener_instances_total\{outcome="duplicate"\} 2/);
});

test('/metrics exposes instances, bytes, latency, studies and free disk', async () => {
  const text = await metricsText(h.listener.metricsPort);
  expect(text).toMatch(/neurotriage_listener_instances_total\{outcome="stored"\} \d+/);
  expect(text).toMatch(/neurotriage_listener_received_bytes_total [1-9]\d*/);
  expect(text).toMatch(/neurotriage_listener_cstore_duration_seconds_count\{outcome="stored"\} [1-9]/);
  expect(text).toMatch(/neurotriage_listener_studies_enqueued_total\{trigger="arrival"\} [1-9]/);
  expect(text).toMatch(/neurotriage_listener_disk_free_bytes [1-9]/);
});
