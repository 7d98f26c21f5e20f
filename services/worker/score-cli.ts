// `npm run score -- <study folder> [--models DIR] [--provider cuda,cpu]`: the worker's pipeline on a folder of
// DICOM files without the listener or Redis, scored against the bundle's default queries; prints the result JSON
// (the same StudyResult the worker stores). For PACS administrators checking a study and for model evaluation.
// The folder is read in a loader process, as in the worker: a file that crashes the parser ends with a clear error.
import { existsSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { executionProviders, loadWorkerConfig, WORKER_DEFAULTS } from './config';
import { createProcessLoader } from './load-pool';
import { loadWorkerModels } from './models';
import { scoreStudyFolder } from './pipeline';
import { manifestQuerySet } from './query-vectors';

const USAGE = 'usage: npm run score -- <study folder> [--models DIR] [--provider cuda,cpu] [--vectors]';

export async function scoreFolder(folder: string, opts: { modelsDir: string; providers: string[]; ortThreads?: number; maxRssMb?: number; timeoutMs?: number }) {
  const models = await loadWorkerModels(opts.modelsDir, { providers: opts.providers, ...(opts.ortThreads ? { threads: opts.ortThreads } : {}) });
  const loader = createProcessLoader({
    processes: 1, maxRssMb: opts.maxRssMb ?? WORKER_DEFAULTS.WORKER_LOAD_MAX_RSS_MB, timeoutMs: opts.timeoutMs ?? WORKER_DEFAULTS.WORKER_LOAD_TIMEOUT_SECONDS * 1000,
    preprocessing: models.manifest.preprocessing, sequences: models.sequences,
  });
  try {
    const querySet = await manifestQuerySet(models.manifest, models.text);
    return await scoreStudyFolder({ loader, models }, folder, querySet);
  } finally {
    await loader.close();
    await models.close();
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: { models: { type: 'string' }, provider: { type: 'string' }, vectors: { type: 'boolean' }, help: { type: 'boolean' } },
    allowPositionals: true,
  });
  if (values.help || positionals.length !== 1) {
    console.error(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  const folder = positionals[0];
  if (!existsSync(folder) || !statSync(folder).isDirectory()) {
    console.error(`not a folder: ${folder}\n${USAGE}`);
    process.exit(2);
  }
  const wc = loadWorkerConfig({ ...process.env, ...(values.provider ? { EXECUTION_PROVIDERS: values.provider } : {}) });
  const { result, vectors } = await scoreFolder(folder, {
    modelsDir: values.models ?? wc.MODELS_DIR, providers: executionProviders(wc), ortThreads: wc.WORKER_ORT_THREADS,
    maxRssMb: wc.WORKER_LOAD_MAX_RSS_MB, timeoutMs: wc.WORKER_LOAD_TIMEOUT_SECONDS * 1000,
  });
  const out = values.vectors ? { ...result, vectors: Object.fromEntries(Object.entries(vectors).map(([k, v]) => [k, [...v]])) } : result;
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    const e = err as { name?: string; message?: string; reason?: string };
    if (e.name === 'PermanentStudyError') console.error(`score: the study cannot be scored (${e.reason}): ${e.message}`);
    else console.error(`score: ${e.name ?? 'Error'}${e.reason ? ` (${e.reason})` : ''}: ${e.message ?? String(err)}`);
    process.exit(1);
  });
}
