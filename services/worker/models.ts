// Binds the worker's ModelBundle port to shared/models (bundle verification, ONNX sessions, providers, encoders).
// The worker adds nothing to the maths here; it only adapts the shape. embedImages takes several studies' volumes
// of one sequence in one session call, which is what the batcher feeds it.
import { loadModels, type ExecutionProvider } from '../../shared/models';
import type { ModelBundle } from './ports';
import { KNOWN_PROVIDERS } from './config';

export interface WorkerModels extends ModelBundle {
  /** Why providers earlier in the configured list were skipped (logged at start). */
  fallbacks: string[];
}

export async function loadWorkerModels(dir: string, opts: { providers: string[]; threads?: number }): Promise<WorkerModels> {
  // The worker's settings refuse these at start; `npm run score` passes its own list.
  const unknown = opts.providers.filter((p) => !(KNOWN_PROVIDERS as readonly string[]).includes(p));
  if (unknown.length > 0) throw new Error(`EXECUTION_PROVIDERS: unknown provider(s) ${unknown.join(', ')}; known: ${KNOWN_PROVIDERS.join(', ')}`);
  const models = await loadModels(dir, { executionProviders: opts.providers as ExecutionProvider[], threads: opts.threads });
  return {
    manifest: models.manifest,
    provider: models.provider,
    fallbacks: models.fallbacks,
    sequences: models.sequences,
    atlas: models.atlas,
    image: { embed: (sequence, volumes) => models.embedImages(sequence, volumes) },
    text: { embed: (texts) => models.embedTexts(texts) },
    close: () => models.close(),
  };
}
