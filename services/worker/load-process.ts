// Loader process entry for load-pool.ts: loads one study per message from the worker and sends back its volumes.
// It only ever ends because the worker closes the channel, sends SIGTERM, or a study crashed it.
import type { LoadOutcome, LoadTask } from './load-pool';
import { serializeError } from './errors';
import { createFolderLoader } from './load-study';

// Ctrl-C sends SIGINT to the terminal's whole process group; the worker decides when its loaders stop.
process.on('SIGINT', () => undefined);
process.on('disconnect', () => process.exit(0));

const loadStudyFolder = createFolderLoader();

process.on('message', (task: LoadTask) => {
  loadStudyFolder(task.studyDir, task.preprocessing, task.sequences).then(
    (study) => process.send!({ id: task.id, ok: true, study } satisfies LoadOutcome),
    (err: unknown) => process.send!({ id: task.id, ok: false, error: serializeError(err) } satisfies LoadOutcome),
  );
});
