// Runs study loading (DICOM header reads, decode, preprocessing: CPU-bound, and the part of the worker that touches
// untrusted bytes) in a pool of child processes, one study per process at a time. A file that makes the parser or a
// codec abort, spin or balloon takes down only its own loader process: that study fails permanently with a reason,
// the process is replaced, and the worker and the other studies in flight go on. Worker threads cannot give this:
// a V8 fatal error in a thread aborts the whole process (measured: dcmjs on a SequenceName whose VR was flipped to
// "CH" grew to 5 GB and aborted the process from inside a worker thread with resourceLimits set). Each loader runs
// with a V8 heap limit, is killed past a resident-memory limit or a time limit, and ignores the SIGINT a terminal
// sends to the whole process group (the worker decides when loaders stop).
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Preprocessing, Sequence } from '../../shared/model-manifest';
import { PermanentStudyError, rebuildError, RetryableStudyError, type SerializedError } from './errors';
import { createFolderLoader } from './load-study';
import type { LoadedStudy, StudyLoader } from './ports';

export interface LoadTask {
  id: number;
  studyDir: string;
  preprocessing: Preprocessing;
  /** Sequences the model bundle scores; others are classified and reported but not turned into volumes. */
  sequences: Sequence[];
}

export type LoadOutcome = { id: number; ok: true; study: LoadedStudy } | { id: number; ok: false; error: SerializedError };
/** What a loader process sends: `ready` once, when its modules are loaded (before any study), then outcomes. */
export type LoaderMessage = { ready: true } | LoadOutcome;

/** The compiled process entry. Under jest (swc) this file is TypeScript; the build output is used (`npm test` builds first). */
export function processEntry(): string {
  const sibling = path.join(__dirname, 'load-process.js');
  if (existsSync(sibling)) return sibling;
  const built = path.resolve(__dirname, '../../dist/services/worker/load-process.js');
  if (existsSync(built)) return built;
  throw new Error(`loader process entry not found (${built}): run npm run build`);
}

export interface ProcessLoaderOptions {
  processes: number;
  preprocessing: Preprocessing;
  sequences: Sequence[];
  /** A loader resident above this is killed and its study fails as too-large. */
  maxRssMb: number;
  /** A study still loading after this is killed and fails as load-timeout. */
  timeoutMs: number;
  entry?: string;
  /** Told about every loader process that ended while loading a study (for logs and metrics). */
  onLoaderLost?: (event: { reason: string; code: number | null; signal: string | null; rssMb: number }) => void;
  /** Told when a loader ended before it was ready (it cannot start) and its replacement waits `delayMs`. */
  onLoaderCannotStart?: (event: { code: number | null; signal: string | null; delayMs: number }) => void;
}

/**
 * A loader that ends before it is ready (a broken build, a native module that will not load) is replaced after a
 * wait that doubles from this, up to LOADER_RESPAWN_MAX_MS, and a study handed to it goes back to the queue: that
 * is not the study's fault. Replaced at once, each slot forked a new process in a tight loop and every study
 * failed as load-crashed. A ready loader lost while loading a study fails that study and is replaced at once.
 */
export const LOADER_RESPAWN_MIN_MS = 250;
export const LOADER_RESPAWN_MAX_MS = 30_000;

/** Resident set size of a process in MB from /proc (Linux); undefined elsewhere or when it is gone. */
export function residentMb(pid: number): number | undefined {
  try {
    const pages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    return Number.isFinite(pages) ? (pages * 4096) / 1048576 : undefined;
  } catch {
    return undefined;
  }
}

interface Pending {
  task: LoadTask;
  resolve(study: LoadedStudy): void;
  reject(err: Error): void;
}

interface Slot {
  child: ChildProcess;
  /** The process said it is ready (its modules loaded). */
  ready?: boolean;
  busy?: Pending & { timer: NodeJS.Timeout; watch: NodeJS.Timeout; killedFor?: PermanentStudyError; peakMb: number };
}

const RSS_CHECK_MS = 100;

export function createProcessLoader(opts: ProcessLoaderOptions): StudyLoader & { pids(): number[] } {
  const entry = opts.entry ?? processEntry();
  const slots = new Set<Slot>();
  const queue: Pending[] = [];
  let nextId = 1;
  let closing = false;
  /** Loaders in a row that ended before answering; the next replacement waits accordingly. */
  let failedStarts = 0;
  const respawnTimers = new Set<NodeJS.Timeout>();

  const finish = (slot: Slot): Slot['busy'] => {
    const busy = slot.busy;
    if (!busy) return undefined;
    clearTimeout(busy.timer);
    clearInterval(busy.watch);
    slot.busy = undefined;
    return busy;
  };

  const spawnSlot = (): Slot => {
    const child = fork(entry, [], {
      serialization: 'advanced', // volumes (Float32Array) cross as typed arrays, not JSON
      execArgv: [`--max-old-space-size=${opts.maxRssMb}`],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const slot: Slot = { child };
    child.on('message', (m: LoaderMessage) => {
      if ('ready' in m) {
        slot.ready = true;
        failedStarts = 0;
        return;
      }
      if (!slot.busy || m.id !== slot.busy.task.id) return;
      const done = finish(slot)!;
      if (m.ok) done.resolve(m.study);
      else done.reject(rebuildError(m.error));
      dispatch();
    });
    child.on('error', () => undefined); // a failed send or spawn shows up as 'exit' too
    child.once('exit', (code, signal) => {
      slots.delete(slot);
      const done = finish(slot);
      if (closing) {
        done?.reject(new RetryableStudyError('the worker is stopping: study loading interrupted'));
        return;
      }
      if (slot.ready) {
        if (done) {
          const rssMb = Math.round(done.peakMb);
          const err = done.killedFor ?? new PermanentStudyError(
            `the loader process reading this study ended (${signal ?? `exit code ${code}`}, ${rssMb} MB resident): a file in it crashes the DICOM parser or a codec`,
            'load-crashed',
          );
          opts.onLoaderLost?.({ reason: err.reason, code, signal, rssMb });
          done.reject(err);
        }
        slots.add(spawnSlot());
        dispatch();
        return;
      }
      // Never ready: the loader cannot start. Its study (if one was handed to it) waits for the next one.
      if (done) queue.unshift({ task: done.task, resolve: done.resolve, reject: done.reject });
      const delayMs = Math.min(LOADER_RESPAWN_MAX_MS, LOADER_RESPAWN_MIN_MS * 2 ** failedStarts);
      failedStarts += 1;
      opts.onLoaderCannotStart?.({ code, signal, delayMs });
      const timer = setTimeout(() => {
        respawnTimers.delete(timer);
        if (closing) return;
        slots.add(spawnSlot());
        dispatch();
      }, delayMs);
      respawnTimers.add(timer);
    });
    return slot;
  };

  const kill = (slot: Slot, why: PermanentStudyError) => {
    if (!slot.busy || slot.busy.killedFor) return;
    slot.busy.killedFor = why;
    slot.child.kill('SIGKILL');
  };

  const dispatch = () => {
    for (const slot of slots) {
      if (slot.busy || queue.length === 0 || slot.child.exitCode !== null || slot.child.signalCode !== null) continue;
      const p = queue.shift()!;
      const busy: Slot['busy'] = {
        ...p,
        peakMb: 0,
        timer: setTimeout(() => kill(slot, new PermanentStudyError(`loading the study took longer than ${opts.timeoutMs / 1000} s: stopped`, 'load-timeout')), opts.timeoutMs),
        watch: setInterval(() => {
          const mb = residentMb(slot.child.pid ?? -1);
          if (mb === undefined || !slot.busy) return;
          slot.busy.peakMb = Math.max(slot.busy.peakMb, mb);
          if (mb > opts.maxRssMb) kill(slot, new PermanentStudyError(`loading the study needed more than ${opts.maxRssMb} MB (WORKER_LOAD_MAX_RSS_MB): stopped`, 'too-large'));
        }, RSS_CHECK_MS),
      };
      slot.busy = busy;
      slot.child.send(p.task, (err) => {
        if (err && slot.busy === busy) slot.child.kill('SIGKILL'); // reported by 'exit'
      });
    }
  };

  for (let i = 0; i < opts.processes; i++) slots.add(spawnSlot());

  return {
    load(studyDir) {
      if (closing) return Promise.reject(new RetryableStudyError('the worker is stopping'));
      return new Promise<LoadedStudy>((resolve, reject) => {
        queue.push({ task: { id: nextId++, studyDir, preprocessing: opts.preprocessing, sequences: opts.sequences }, resolve, reject });
        dispatch();
      });
    },
    pids: () => [...slots].map((s) => s.child.pid!).filter(Boolean),
    async close() {
      closing = true;
      for (const t of respawnTimers) clearTimeout(t);
      respawnTimers.clear();
      for (const p of queue.splice(0)) p.reject(new RetryableStudyError('the worker is stopping'));
      await Promise.all([...slots].map((s) => new Promise<void>((resolve) => {
        if (s.child.exitCode !== null || s.child.signalCode !== null) return resolve();
        s.child.once('exit', () => resolve());
        s.child.kill('SIGTERM');
      })));
    },
  };
}

/** Same loading in the calling process: tests and WORKER_LOAD_PROCESSES=0 (no containment: trusted input only). */
export function createInlineLoader(opts: { preprocessing: Preprocessing; sequences: Sequence[] }): StudyLoader {
  const load = createFolderLoader();
  return {
    load: (studyDir) => load(studyDir, opts.preprocessing, opts.sequences),
    close: async () => undefined,
  };
}
