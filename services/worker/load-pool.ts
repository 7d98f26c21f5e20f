// Runs study loading (DICOM decode + preprocessing, CPU-bound for hundreds of milliseconds) on a piscina pool of
// worker threads, so the main event loop stays free to renew BullMQ job locks and run inference. Volumes come
// back by transfer (no copy). Errors cross the thread boundary as plain data and are rebuilt here, so typed
// permanent errors stay permanent.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Piscina } from 'piscina';
import type { Preprocessing, Sequence } from '../../shared/model-manifest';
import { rebuildError, type SerializedError } from './errors';
import { createFolderLoader } from './load-study';
import type { LoadedStudy, StudyLoader } from './ports';

export interface LoadTask {
  studyDir: string;
  preprocessing: Preprocessing;
  /** Sequences the model bundle scores; others are classified and reported but not turned into volumes. */
  sequences: Sequence[];
}

/**
 * The compiled thread entry. Under ts-jest-style runs (swc) this file is TypeScript and threads cannot load .ts,
 * so the build output is used: `npm test` builds first.
 */
export type LoadOutcome = { ok: true; study: LoadedStudy } | { ok: false; error: SerializedError };

export function threadEntry(): string {
  const sibling = path.join(__dirname, 'load-thread.js');
  if (existsSync(sibling)) return sibling;
  const built = path.resolve(__dirname, '../../dist/services/worker/load-thread.js');
  if (existsSync(built)) return built;
  throw new Error(`worker thread entry not found (${built}): run npm run build`);
}

export function createThreadLoader(opts: { threads: number; preprocessing: Preprocessing; sequences: Sequence[]; filename?: string }): StudyLoader {
  const pool = new Piscina<LoadTask, LoadOutcome>({
    filename: opts.filename ?? threadEntry(),
    minThreads: opts.threads,
    maxThreads: opts.threads,
    // Threads are kept: each holds dcmjs/codec state that is expensive to start.
    idleTimeout: 2 ** 31 - 1,
  });
  return {
    async load(studyDir) {
      const outcome = await pool.run({ studyDir, preprocessing: opts.preprocessing, sequences: opts.sequences });
      if (outcome?.ok === true) return outcome.study;
      throw rebuildError(outcome?.ok === false ? outcome.error : { name: 'Error', message: 'the load thread returned no outcome' });
    },
    close: () => pool.destroy(),
  };
}

/** Same loading on the calling thread: offline scoring (`npm run score`) and WORKER_LOAD_THREADS=0. */
export function createInlineLoader(opts: { preprocessing: Preprocessing; sequences: Sequence[] }): StudyLoader {
  const load = createFolderLoader();
  return {
    load: (studyDir) => load(studyDir, opts.preprocessing, opts.sequences),
    close: async () => undefined,
  };
}
