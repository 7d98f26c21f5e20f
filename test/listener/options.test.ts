// Non-default settings: STUDY_COMPLETE_ON_RELEASE enqueues the study when its association is released (no quiet
// period), and DICOM_OTHER_STORAGE=accept-and-ignore answers Success for other storage classes without storing.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { keys } from '../../shared/studies';
import { newUid, runTool, storescu, writeMrInstance } from '../helpers/dcmtk';
import { listFiles, startHarness, startStudyWorker, tempDir, waitFor, type Harness } from './harness';

let h: Harness;
let files: string;

beforeAll(async () => {
  // A quiet period far longer than the test: only the release can complete the study in time.
  h = await startHarness({ STUDY_COMPLETE_ON_RELEASE: true, STUDY_QUIET_SECONDS: 120, DICOM_OTHER_STORAGE: 'accept-and-ignore' });
  files = tempDir('nt-opt-');
});

afterAll(async () => {
  await h.stop();
  rmSync(files, { recursive: true, force: true });
});

test('STUDY_COMPLETE_ON_RELEASE: the study job runs right after the association is released', async () => {
  const worker = startStudyWorker(h.redis.url);
  try {
    const study = newUid();
    const series = newUid();
    const paths = [0, 1, 2].map((i) => {
      const file = path.join(files, `rel-${i}.dcm`);
      writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: series, InstanceNumber: i + 1 });
      return file;
    });
    const r = await storescu(h.ae, paths);
    expect(r.statuses).toEqual([0, 0, 0]);
    await waitFor(() => (worker.jobs.some((j) => j.StudyInstanceUID === study) ? true : undefined), 10_000, 'the study job');
    expect(worker.jobs.filter((j) => j.StudyInstanceUID === study)).toHaveLength(1);
  } finally {
    await worker.close();
  }
});

test('accept-and-ignore: another storage class is acknowledged but neither stored nor scheduled', async () => {
  const study = newUid();
  const file = path.join(files, 'ct.dcm');
  writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: newUid() });
  const mod = await runTool('dcmodify', ['-nb', '-m', '(0008,0016)=1.2.840.10008.5.1.4.1.1.2', file]);
  expect(mod.code).toBe(0);
  const r = await storescu(h.ae, [file]);
  expect(r.statuses).toEqual([0]);
  expect(listFiles(path.join(h.dataDir, 'store', study))).toEqual([]);
  expect(await h.client.exists(keys.study(study))).toBe(0);
});
