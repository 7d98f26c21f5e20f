// Loader process entry for load-pool.ts: loads one study per message from the worker and sends back its volumes.
// It only ever ends because the worker closes the channel, sends SIGTERM, or a study crashed it.
import { serializeError } from './errors';
import type { LoadOutcome, LoadTask, LoaderMessage } from './load-pool';

// First, before the DICOM modules load: Ctrl-C sends SIGINT to the terminal's whole process group, and the worker
// decides when its loaders stop; a loader whose worker is gone has nothing to do.
process.on('SIGINT', () => undefined);
process.on('disconnect', () => process.exit(0));

const loader = import('./load-study').then((m) => m.createFolderLoader());
// Ready before any study is read (handlers run in order): a loader that dies before this cannot start, which the
// pool tells from a study that crashed it.
// A worker that closed before this (a quick stop) has no channel left: nothing to tell, and no EPIPE to throw.
void loader.then(() => {
  if (process.connected) process.send!({ ready: true } satisfies LoaderMessage, (err: Error | null) => void err);
});

process.on('message', (task: LoadTask) => {
  loader.then((load) =>
    load(task.studyDir, task.preprocessing, task.sequences).then(
      (study) => process.send!({ id: task.id, ok: true, study } satisfies LoadOutcome),
      (err: unknown) => process.send!({ id: task.id, ok: false, error: serializeError(err) } satisfies LoadOutcome),
    ),
  );
});
