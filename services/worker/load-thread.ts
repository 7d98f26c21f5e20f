// Worker-thread entry for load-pool.ts: loads one study and hands its volumes back by transfer.
import { move, transferableSymbol, valueSymbol } from 'piscina';
import type { LoadOutcome, LoadTask } from './load-pool';
import { serializeError } from './errors';
import { createFolderLoader } from './load-study';

// One loader (and pixel decoder) per thread: this module is loaded once in each pool thread.
const loadStudyFolder = createFolderLoader();

export default async function loadTask(task: LoadTask): Promise<LoadOutcome | object> {
  try {
    const study = await loadStudyFolder(task.studyDir, task.preprocessing, task.sequences);
    // A Set: two volumes may share one buffer, and a buffer can be transferred only once.
    const buffers = [...new Set(Object.values(study.volumes).map((v) => v!.buffer))];
    const outcome: LoadOutcome = { ok: true, study };
    // piscina's movable protocol (an object with both symbols, marked by move()): the volumes' buffers are
    // transferred instead of copied, and the main thread receives `outcome` itself.
    return move({ [transferableSymbol]: buffers, [valueSymbol]: outcome } as unknown as Parameters<typeof move>[0]) as object;
  } catch (err) {
    return { ok: false, error: serializeError(err) } satisfies LoadOutcome;
  }
}
