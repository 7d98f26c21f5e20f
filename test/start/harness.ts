// `npm start` (or the built dist/scripts/start.js) as a test sees it: a temp DATA_DIR, the training recipe's
// fixture bundle, ports picked free by the OS, its JSON log read line by line, its whole process tree, and
// helpers to send a synthetic study with DCMTK's storescu and to read the study back from the API.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { storescu } from '../helpers/dcmtk';
import { waitFor } from '../worker/helpers';
import { synthStudy } from '../worker/studies';

export { waitFor };

export const ROOT = path.resolve(__dirname, '..', '..');
export const BUILT_START = path.join(ROOT, 'dist', 'scripts', 'start.js');


/** Every live descendant of `pid` (from /proc ppid links). */
export function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const [child, pp] of parent) if (pp === p) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers signal 0 until reaped; it no longer runs.
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

export interface System {
  proc: ChildProcess;
  dataDir: string;
  dicomPort: number;
  apiPort: number;
  /** Latest pid per supervised child (redis, listener, worker, api), from the "service started" lines. */
  pids: Map<string, number>;
  /** Every pid those lines ever named (for cleanup after a failed test). */
  allPids: Set<number>;
  lines: string[];
  /** Resolves with the first log line (from now, or already seen when `seen`) matching. */
  waitLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<{ code: number | null; signal: string | null }>;
}

/**
 * Starts the system: `node dist/scripts/start.js`, or `npm start --ignore-scripts` (the real npm and the real
 * start script line, without its prestart build: the test run has built already).
 */
export function startSystem(opts: { via: 'node' | 'npm'; dataDir: string; modelsDir: string; dicomPort: number; apiPort: number; env?: Record<string, string> }): System {
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? tmpdir(),
    DATA_DIR: opts.dataDir,
    MODELS_DIR: opts.modelsDir,
    EXECUTION_PROVIDERS: 'cpu',
    DICOM_PORT: String(opts.dicomPort),
    API_PORT: String(opts.apiPort),
    METRICS_PORT: '0',
    WORKER_METRICS_PORT: '0',
    WORKER_LOAD_PROCESSES: '1',
    WORKER_CONCURRENCY: '1',
    STUDY_QUIET_SECONDS: '1',
    SHUTDOWN_TIMEOUT_SECONDS: '10',
    LOG_LEVEL: 'info',
    ...opts.env,
  };
  const proc = opts.via === 'node'
    ? spawn(process.execPath, [BUILT_START], { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('npm', ['start', '--ignore-scripts', '--silent'], { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (l: string) => void }[] = [];
  const pids = new Map<string, number>();
  const allPids = new Set<number>();
  const onLine = (line: string) => {
    lines.push(line);
    if (process.env.TEST_LOG_LEVEL) process.stdout.write(`${line}\n`);
    const started = /"child":"(\w+)","pid":(\d+),"msg":"service started"/.exec(line);
    if (started) {
      pids.set(started[1], Number(started[2]));
      allPids.add(Number(started[2]));
    }
    for (const w of [...waiters]) {
      if (w.pattern.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  createInterface({ input: proc.stdout! }).on('line', onLine);
  createInterface({ input: proc.stderr! }).on('line', onLine);
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  return {
    proc, dataDir: opts.dataDir, dicomPort: opts.dicomPort, apiPort: opts.apiPort, pids, allPids, lines, exited,
    waitLine(pattern, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no log line matching ${pattern} within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({ pattern, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      });
    },
  };
}

/** Writes a fresh synthetic study (fast) to disk and C-STOREs it with storescu; retries until every instance is Success. */
export async function sendStudy(sys: System, seed: number, index: number, timeoutMs = 60_000): Promise<string> {
  const study = synthStudy(seed, index, { fast: true });
  const dir = mkdtempSync(path.join(sys.dataDir, '..', 'send-'));
  const files = study.files.map((f, i) => {
    mkdirSync(dir, { recursive: true });
    const p = path.join(dir, `${i}.dcm`);
    writeFileSync(p, f.data);
    return p;
  });
  await waitFor(`C-STORE of study ${index} to succeed`, async () => {
    const r = await storescu({ port: sys.dicomPort, callingAe: 'STORESCU', calledAe: 'NEUROTRIAGE' }, files);
    return r.code === 0 && r.statuses.length === files.length && r.statuses.every((s) => s === 0);
  }, timeoutMs, 500);
  return study.StudyInstanceUID;
}

/** GET from the API with the local admin token npm start wrote under DATA_DIR. */
export async function api(sys: System, route: string): Promise<{ status: number; json: Record<string, unknown> | null }> {
  try {
    const token = readFileSync(path.join(sys.dataDir, 'api-admin-token'), 'utf8').trim(); // rewritten at each API start
    const res = await fetch(`http://127.0.0.1:${sys.apiPort}${route}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    return { status: res.status, json: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : null };
  } catch {
    return { status: 0, json: null };
  }
}

/** Waits until the API reports the study scored (through restarts of anything in between). */
export function scored(sys: System, uid: string, timeoutMs = 120_000): Promise<Record<string, unknown>> {
  return waitFor(`study ${uid} scored`, async () => {
    const r = await api(sys, `/api/v1/studies/${uid}`);
    return r.status === 200 && r.json?.status === 'scored' ? r.json : undefined;
  }, timeoutMs, 500);
}
