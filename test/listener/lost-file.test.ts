// The listener records an arrival in Redis while the directory entry of its file is being fsynced (Success still
// waits for both). A crash in that window can leave a record whose file is gone. The rule tested here: the
// duplicate check looks at the file, so a resend of that instance is stored again and its study scored with it, and
// a restart re-queues such a study without tripping over the missing file.
import { existsSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { instanceStorageKey, keys } from '../../shared/studies';
import { newUid, storescu, writeMrInstance } from '../helpers/dcmtk';
import { listFiles, startHarness, startStudyWorker, tempDir, waitFor } from './harness';

let files: string;
beforeAll(() => {
  files = tempDir('nt-lost-file-');
});
afterAll(() => rmSync(files, { recursive: true, force: true }));

function makeStudy(n: number): { study: string; series: string; sops: string[]; paths: string[] } {
  const study = newUid();
  const series = newUid();
  const sops: string[] = [];
  const paths: string[] = [];
  for (let i = 0; i < n; i++) {
    const file = path.join(files, `${study}-${i}.dcm`);
    sops.push(writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: series, InstanceNumber: i + 1 }));
    paths.push(file);
  }
  return { study, series, sops, paths };
}

test('a resent instance whose record survived but whose file did not is stored again and its study scored again', async () => {
  const h = await startHarness();
  try {
    const s = makeStudy(3);
    const first = startStudyWorker(h.redis.url);
    try {
      expect((await storescu(h.ae, s.paths)).statuses).toEqual([0, 0, 0]);
      await waitFor(() => first.jobs.some((j) => j.StudyInstanceUID === s.study) || undefined, 10_000, 'the study job');
      await waitFor(async () => (await h.client.sismember(keys.pendingStudies(), s.study)) === 0 || undefined, 10_000, 'the job to finish');
    } finally {
      await first.close();
    }

    // What a crash after the record and before the directory fsync can leave behind: the record, no file.
    const lost = path.join(h.dataDir, instanceStorageKey(s.study, s.series, s.sops[1]));
    rmSync(lost);
    expect(await h.client.hexists(keys.studyInstances(s.study), s.sops[1])).toBe(1);

    const r = await storescu(h.ae, [s.paths[1]]);
    expect(r.statuses).toEqual([0]);
    // Stored again (not answered as a duplicate without a file), and counted once.
    expect(existsSync(lost)).toBe(true);
    expect(statSync(lost).size).toBeGreaterThan(statSync(s.paths[1]).size / 2);
    expect(listFiles(path.join(h.dataDir, 'store', s.study))).toHaveLength(3);
    expect(await h.client.hlen(keys.studyInstances(s.study))).toBe(3);
    expect(await h.client.hget(keys.study(s.study), 'instances')).toBe('3');
    // The study was scored without that file: it is pending again (so a crash now still re-queues it) ...
    expect(await h.client.sismember(keys.pendingStudies(), s.study)).toBe(1);
    // ... and scored again.
    const second = startStudyWorker(h.redis.url);
    try {
      await waitFor(() => second.jobs.some((j) => j.StudyInstanceUID === s.study) || undefined, 10_000, 'a second study job');
    } finally {
      await second.close();
    }
  } finally {
    await h.stop();
  }
});

test('a restart re-queues a pending study whose recorded instance lost its file, and the resend completes it', async () => {
  const h = await startHarness();
  let second: Awaited<ReturnType<typeof startHarness>> | undefined;
  try {
    const s = makeStudy(3);
    expect((await storescu(h.ae, s.paths)).statuses).toEqual([0, 0, 0]);
    const lost = path.join(h.dataDir, instanceStorageKey(s.study, s.series, s.sops[2]));
    await h.stopListener();
    // The crash: the study is recorded and pending (no worker ran), one file is gone.
    rmSync(lost);

    second = await startHarness({}, { redis: h.redis, dataDir: h.dataDir });
    expect(second.listener.requeued).toBe(1);
    const r = await storescu(second.ae, [s.paths[2]]);
    expect(r.statuses).toEqual([0]);
    expect(existsSync(lost)).toBe(true);
    expect(await h.client.hlen(keys.studyInstances(s.study))).toBe(3);

    const worker = startStudyWorker(h.redis.url);
    try {
      await waitFor(() => worker.jobs.some((j) => j.StudyInstanceUID === s.study) || undefined, 10_000, 'the study job');
      // Long enough for a second job to show up if the restart and the resend had each made one.
      await new Promise((res) => setTimeout(res, 1200));
      expect(worker.jobs.filter((j) => j.StudyInstanceUID === s.study)).toHaveLength(1);
    } finally {
      await worker.close();
    }
  } finally {
    await second?.stop();
    await h.stop();
  }
});
