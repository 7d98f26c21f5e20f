// Binds the worker's ModelBundle port to shared/models (bundle verification, ONNX sessions, providers, encoders).
// The worker adds nothing to the maths here; it only adapts the shape and, where shared/models offers per-sequence
// batch embedding, lets the batcher send several studies' volumes in one session call.
import { loadModels, type ExecutionProvider, type Models } from '../../shared/models';
import type { Sequence } from '../../shared/model-manifest';
import type { ModelBundle, Volume } from './ports';

const KNOWN_PROVIDERS: readonly ExecutionProvider[] = ['cuda', 'cpu'];

export interface WorkerModels extends ModelBundle {
  /** Why providers earlier in the configured list were skipped (logged at start). */
  fallbacks: string[];
}

type BatchCapable = Models & { embedImages?: (sequence: Sequence, volumes: Volume[]) => Promise<Float32Array[]> };

export async function loadWorkerModels(dir: string, opts: { providers: string[]; threads?: number }): Promise<WorkerModels> {
  const unknown = opts.providers.filter((p) => !KNOWN_PROVIDERS.includes(p as ExecutionProvider));
  if (unknown.length > 0) throw new Error(`EXECUTION_PROVIDERS: unknown provider(s) ${unknown.join(', ')}; known: ${KNOWN_PROVIDERS.join(', ')}`);
  const models = (await loadModels(dir, { executionProviders: opts.providers as ExecutionProvider[], threads: opts.threads })) as BatchCapable;
  return {
    manifest: models.manifest,
    provider: models.provider,
    fallbacks: models.fallbacks,
    sequences: models.sequences,
    image: {
      async embed(sequence, volumes) {
        if (models.embedImages) return models.embedImages(sequence, volumes);
        // One volume at a time through the study-level API (it embeds only the sequences it is given).
        const out: Float32Array[] = [];
        for (const v of volumes) out.push((await models.embedStudy({ [sequence]: v }))[sequence]!);
        return out;
      },
    },
    text: { embed: (texts) => models.embedTexts(texts) },
    close: () => models.close(),
  };
}
