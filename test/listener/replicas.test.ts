// Two listeners sharing one DATA_DIR and one Redis, as two Kubernetes replicas on a ReadWriteMany volume (issue 15):
// a replica starting next to an idle one (whose temp files are hours old) leaves the idle one's temp dir alone, and
// the idle one keeps storing; should its temp dir be removed anyway, it takes it again instead of answering A700
// for every C-STORE; a replica that is really gone (stale lease) is swept.
import { mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { keys } from '../../shared/studies';
import { LEASE_FILE, LEASE_STALE_MS } from '../../services/listener/instance-store';
import { createLogger } from '../../shared/logger';
import { startListener, type RunningListener } from '../../services/listener/listener';
import { newUid, storescu, writeMrInstance } from '../helpers/dcmtk';
import { startRedis, type TestRedis } from '../helpers/redis';
import { connectRedis } from '../../shared/redis';
import { CALLED_AE, CALLING_AE, leftoverTempFiles, tempDir, testListenerSettings } from './harness';

let redis: TestRedis;
let dataDir: string;
let files: string;
const running: RunningListener[] = [];

async function replica(name: string): Promise<RunningListener> {
  const listener = await startListener({
    settings: testListenerSettings(redis.url, dataDir),
    log: createLogger('listener', process.env.NT_TEST_LOG ?? 'silent'),
    instanceName: name,
  });
  running.push(listener);
  return listener;
}

function ageTree(dir: string, ms: number): void {
  const t = new Date(Date.now() - ms);
  for (const f of readdirSync(dir)) if (f !== LEASE_FILE) utimesSync(path.join(dir, f), t, t);
  utimesSync(dir, t, t);
}

let n = 0;
function instance(study: string): string {
  const file = path.join(files, `i${(n += 1)}.dcm`);
  writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: `${study}.1`, InstanceNumber: n });
  return file;
}

beforeAll(async () => {
  redis = await startRedis();
  dataDir = tempDir('nt-replicas-');
  files = tempDir('nt-replicas-files-');
});

afterAll(async () => {
  for (const l of running) await l.close();
  await redis.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(files, { recursive: true, force: true });
});

test('a replica starting beside an idle one never sweeps its live temp files; a removed temp dir is taken again', async () => {
  const a = await replica('replica-a');
  const ae = (l: RunningListener) => ({ port: l.port, callingAe: CALLING_AE, calledAe: CALLED_AE });
  const study = newUid();
  expect((await storescu(ae(a), [instance(study)])).statuses).toEqual([0]);

  // A has been idle for two hours: its temp dir and pooled files are old; only its lease is fresh.
  const aTmp = path.join(dataDir, 'tmp', 'replica-a');
  ageTree(aTmp, 2 * 3600_000);
  // A replica that is gone: a stale lease and a half-received instance.
  const gone = path.join(dataDir, 'tmp', 'replica-gone');
  mkdirSync(gone, { recursive: true });
  writeFileSync(path.join(gone, 'half.part'), 'half');
  writeFileSync(path.join(gone, LEASE_FILE), JSON.stringify({ host: 'another-node', pid: 1, pidns: 'pid:[1]' }));
  ageTree(gone, LEASE_STALE_MS + 60_000);
  utimesSync(path.join(gone, LEASE_FILE), new Date(Date.now() - LEASE_STALE_MS - 60_000), new Date(Date.now() - LEASE_STALE_MS - 60_000));

  const pooledBefore = readdirSync(aTmp).filter((f) => f !== LEASE_FILE).sort();
  expect(pooledBefore.length).toBeGreaterThan(0);
  const b = await replica('replica-b');
  expect(readdirSync(aTmp).filter((f) => f !== LEASE_FILE).sort()).toEqual(pooledBefore);
  expect(existsSync(gone)).toBe(false);

  // Both store; A's instances go through its old pooled temp files.
  const rb = await storescu(ae(b), [instance(study), instance(study)]);
  const ra = await storescu(ae(a), [instance(study), instance(study), instance(study)]);
  expect([...ra.statuses, ...rb.statuses]).toEqual([0, 0, 0, 0, 0]);

  // Removed anyway (an older listener version, or by hand): A takes its dir again and goes on storing.
  rmSync(aTmp, { recursive: true, force: true });
  const again = await storescu(ae(a), [instance(study), instance(study)]);
  expect(again.statuses).toEqual([0, 0]);
  expect(existsSync(path.join(aTmp, LEASE_FILE))).toBe(true);

  const client = connectRedis(redis.url, 'worker');
  try {
    expect(await client.hlen(keys.studyInstances(study))).toBe(8);
  } finally {
    client.disconnect();
  }
  expect(leftoverTempFiles(dataDir)).toEqual([]);
}, 90_000);
