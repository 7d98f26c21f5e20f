// Retention racing a resend (issue 15): while tools/retention.ts deletes a finished study's instances, a PACS sends
// some of them again to a real listener. They are refused with A700 (never acknowledged and then deleted), nothing
// of them is left behind, and sent again after the run they are stored, recorded and the study is pending again.
import path from 'node:path';
import { existsSync, rmSync } from 'node:fs';
import { keys, PURGING_FIELD, studyStorageKey } from '../../shared/studies';
import { createLogger } from '../../shared/logger';
import { runRetention } from '../../tools/retention';
import { PURGED_FIELD } from '../../shared/studies';
import { newUid, storescu, writeMrInstance } from '../helpers/dcmtk';
import { listFiles, startHarness, tempDir, waitFor, type Harness } from './harness';

let h: Harness;
let files: string;

beforeAll(async () => {
  h = await startHarness();
  files = tempDir('nt-retention-race-');
});
afterAll(async () => {
  await h.stop();
  rmSync(files, { recursive: true, force: true });
});

test('an instance resent while its study is purged gets A700, and is stored when sent again afterwards', async () => {
  const study = newUid();
  const sops: string[] = [];
  const paths = [1, 2].map((n) => {
    const file = path.join(files, `i${n}.dcm`);
    sops.push(writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: `${study}.1`, InstanceNumber: n }));
    return file;
  });
  expect((await storescu(h.ae, paths)).statuses).toEqual([0, 0]);
  // Let the arrival's background schedule finish (its job added, the study marked 'queued': off the response path,
  // so it can follow the last response by more than any fixed pause on a loaded machine), then make the study one
  // that failed scoring 40 days ago.
  await waitFor(async () => ((await h.client.hget(keys.study(study), 'status')) === 'queued' ? true : undefined), 10_000, 'status queued');
  const longAgo = Date.now() - 40 * 86_400_000;
  await h.client.hset(keys.study(study), { status: 'failed', statusAt: longAgo, lastReceivedAt: longAgo });
  await h.client.srem(keys.pendingStudies(), study);

  let duringPurge: number[] = [];
  const summary = await runRetention({
    redis: h.client,
    dataDir: h.dataDir,
    retentionDays: 30,
    log: createLogger('retention', 'silent'),
    // Both kinds of resend: the folder still holds the files (the duplicate check) and, for the first one, not.
    beforeRemove: async (uid) => {
      expect(uid).toBe(study);
      rmSync(path.join(h.dataDir, studyStorageKey(study), `${study}.1`, `${sops[0]}.dcm`));
      duringPurge = (await storescu(h.ae, paths, ['-nh'])).statuses;
    },
  });
  expect(summary.purged).toBe(1);
  expect(duringPurge).toEqual([0xa700, 0xa700]);
  expect(listFiles(path.join(h.dataDir, studyStorageKey(study)))).toEqual([]);
  expect(await h.client.exists(keys.studyInstances(study))).toBe(0);
  expect(await h.client.hget(keys.study(study), PURGING_FIELD)).toBeNull();
  expect(await h.client.hget(keys.study(study), PURGED_FIELD)).not.toBeNull();

  // After the run the PACS retries: stored, recorded, and the study is pending scoring again.
  expect((await storescu(h.ae, paths)).statuses).toEqual([0, 0]);
  expect(listFiles(path.join(h.dataDir, studyStorageKey(study)))).toHaveLength(2);
  expect(await h.client.hlen(keys.studyInstances(study))).toBe(2);
  expect(await h.client.sismember(keys.pendingStudies(), study)).toBe(1);
  expect(existsSync(path.join(h.dataDir, studyStorageKey(study)))).toBe(true);
}, 90_000);
