// The built listener as a process (node dist/services/listener/main.js), killed with SIGKILL while storescu is
// sending a study: every instance acknowledged before the kill is on disk and recorded, the restarted listener
// re-queues the study, and the study is enqueued once. SIGTERM stops it cleanly.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { connectRedis } from '../../shared/redis';
import { instanceStorageKey, keys } from '../../shared/studies';
import { startRedis, type TestRedis } from '../helpers/redis';
import { dcmtkEnv, newUid, parseStatuses, storescu, writeMrInstance } from '../helpers/dcmtk';
import { CALLED_AE, CALLING_AE, leftoverTempFiles, listFiles, startStudyWorker, tempDir, waitFor } from './harness';

const ROOT = path.resolve(__dirname, '..', '..');
const MAIN = path.join(ROOT, 'dist', 'services', 'listener', 'main.js');

function newestSource(): number {
  let newest = 0;
  for (const dir of ['services/listener', 'shared']) {
    for (const f of readdirSync(path.join(ROOT, dir))) {
      if (f.endsWith('.ts') && !f.endsWith('.test.ts')) newest = Math.max(newest, statSync(path.join(ROOT, dir, f)).mtimeMs);
    }
  }
  return newest;
}

/** `npm test` builds before jest; a lone `npx jest` run rebuilds when dist is missing or older than the sources. */
function ensureBuilt(): void {
  if (existsSync(MAIN) && statSync(MAIN).mtimeMs >= newestSource()) return;
  // tsc emits even when files outside the listener have type errors; typecheck is a separate step of npm test.
  spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'ignore' });
  if (!existsSync(MAIN)) throw new Error(`${MAIN} missing: run npm run build`);
}

interface ListenerProcess {
  child: ChildProcess;
  port: number;
  exited: Promise<number | null>;
}

/** Every listener this file starts; afterAll kills any still running, so a failed assertion leaves no orphan. */
const started: ChildProcess[] = [];

async function spawnListener(env: NodeJS.ProcessEnv): Promise<ListenerProcess> {
  const child = spawn(process.execPath, [MAIN], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  started.push(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === 'DICOM listener ready' && entry.port) resolve(entry.port);
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => reject(new Error(`listener exited with ${code} before it was ready`)));
  });
  return { child, port, exited };
}

let redis: TestRedis;
let dataDir: string;
let files: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  ensureBuilt();
  redis = await startRedis();
  dataDir = tempDir('nt-restart-');
  files = tempDir('nt-restart-files-');
  env = {
    REDIS_URL: redis.url,
    DATA_DIR: dataDir,
    DICOM_PORT: '0',
    METRICS_PORT: '0',
    DICOM_AE_TITLE: CALLED_AE,
    DICOM_ALLOWED_CALLING_AES: CALLING_AE,
    DISK_MIN_FREE_MB: '1',
    STUDY_QUIET_SECONDS: '0.5',
    SHUTDOWN_TIMEOUT_SECONDS: '5',
    LOG_LEVEL: 'info',
    NEUROTRIAGE_CONFIG_FILE: '',
  };
}, 120_000);

afterAll(async () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await redis.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(files, { recursive: true, force: true });
});

test('SIGKILL mid-study loses no acknowledged instance and the study is enqueued once', async () => {
  const study = newUid();
  const series = [newUid(), newUid()];
  const instances: { file: string; series: string; sop: string }[] = [];
  for (let i = 0; i < 24; i++) {
    const file = path.join(files, `${i}.dcm`);
    const s = series[i % 2];
    instances.push({ file, series: s, sop: writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: s, InstanceNumber: i + 1, rows: 256, columns: 256 }) });
  }
  const first = await spawnListener(env);
  const ae = { port: first.port, callingAe: CALLING_AE, calledAe: CALLED_AE };
  const head = await storescu(ae, instances.slice(0, 6).map((x) => x.file));
  expect(head.statuses).toEqual([0, 0, 0, 0, 0, 0]);

  // Kill the listener as soon as the third instance of the second batch is acknowledged.
  const tail = instances.slice(6);
  const sender = spawn('storescu', ['-v', '-aet', CALLING_AE, '-aec', CALLED_AE, '127.0.0.1', String(first.port), ...tail.map((x) => x.file)], {
    env: dcmtkEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const onData = (d: Buffer) => {
    output += d.toString();
    if (parseStatuses(output).length >= 3 && first.child.exitCode === null) first.child.kill('SIGKILL');
  };
  sender.stdout?.on('data', onData);
  sender.stderr?.on('data', onData);
  await new Promise((r) => sender.once('close', r));
  await first.exited;
  const statuses = parseStatuses(output);
  const acked = [...instances.slice(0, 6), ...tail.slice(0, statuses.filter((s) => s === 0).length)];
  expect(statuses.every((s) => s === 0)).toBe(true);
  expect(acked.length).toBeLessThan(instances.length);

  const client = connectRedis(redis.url, 'worker');
  try {
    for (const x of acked) {
      expect(existsSync(path.join(dataDir, instanceStorageKey(study, x.series, x.sop)))).toBe(true);
      expect(await client.hexists(keys.studyInstances(study), x.sop)).toBe(1);
    }
    expect(await client.sismember(keys.pendingStudies(), study)).toBe(1);

    // Restart; the PACS re-sends what was not acknowledged.
    const second = await spawnListener(env);
    const resend = instances.filter((x) => !acked.includes(x));
    const r = await storescu({ ...ae, port: second.port }, resend.map((x) => x.file));
    expect(r.statuses).toEqual(resend.map(() => 0));
    // The killed listener's temp dir (its half-received instance and its empty pooled files) was swept at start.
    expect(leftoverTempFiles(dataDir)).toEqual([]);
    expect(readdirSync(path.join(dataDir, 'tmp'))).toHaveLength(1);
    expect(listFiles(path.join(dataDir, 'store', study))).toHaveLength(instances.length);
    expect(await client.hlen(keys.studyInstances(study))).toBe(instances.length);

    const worker = startStudyWorker(redis.url);
    try {
      await waitFor(() => (worker.jobs.length > 0 ? true : undefined), 10_000, 'the study job');
      await new Promise((res) => setTimeout(res, 1200));
      expect(worker.jobs.filter((j) => j.StudyInstanceUID === study)).toHaveLength(1);
    } finally {
      await worker.close();
    }

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    // A clean stop removes the pooled temp files it did not use.
    expect(listFiles(path.join(dataDir, 'tmp'))).toEqual([]);
  } finally {
    client.disconnect();
  }
}, 60_000);
