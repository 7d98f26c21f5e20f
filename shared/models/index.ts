// The model layer the worker (and the evaluation) uses. Small API:
//
//   const models = await loadModels(bundleDir, { executionProviders: ['cuda', 'cpu'] });
//     verifies manifest + sha256 of every file (ModelBundleError if not), creates one ONNX session per model,
//     once; models.provider says which execution provider actually runs them ('cuda' or 'cpu').
//   const queries = await models.embedQueries(models.manifest.queries);   // cache these per query version
//   const images = await models.embedStudy({ T2: vol, FLAIR: vol, DWI: vol, ADC: vol }); // canonical volumes
//   const vectors = await models.embedImages('T2', [volA, volB]);  // one sequence, several studies, one batch
//   const scores = models.score(images, queries);   // [{ id, priority, score, probability?, flagged? }]
//   await models.close();
//
// Volumes are Float32Array in manifest.preprocessing.shape ([D,H,W]), made by shared/imaging. Sequences the
// bundle has no encoder for are ignored; a study with none of them cannot be scored (ModelInputError).
import type { Manifest, Sequence, TriageQuery } from '../model-manifest';
import { loadAtlas, type NormalAtlas } from './atlas';
import { loadBundle } from './bundle';
import { ModelInputError } from './errors';
import { createImageEncoder, type ImageEncoder, type ImageEncoderSpec } from './image-encoder';
import { scoreStudy, scoredSentences, type QueryScore, type QueryVectors } from './scoring';
import { createSession, type ExecutionProvider, type ModelSession } from './session';
import { createTextEncoder, type TextEncoder } from './text-encoder';
import { loadTokenizer } from './tokenizer';

export type { NormalAtlas, SequenceAtlas } from './atlas';
export { ModelBundleError, ModelInputError } from './errors';
export { cosine, scoreStudy, scoredSentences, type QueryScore, type QueryVectors } from './scoring';
export type { ExecutionProvider } from './session';

export interface ModelOptions {
  /** Tried in order; default ['cuda', 'cpu']. */
  executionProviders?: ExecutionProvider[];
  /** ONNX Runtime intra-op threads per session (default: ONNX Runtime's choice). */
  threads?: number;
}

export interface Models {
  manifest: Manifest;
  /** The execution provider the sessions run on ('cpu' if any session fell back). */
  provider: ExecutionProvider;
  /** Why providers earlier in the list were skipped, for the start-up log. */
  fallbacks: string[];
  sequences: Sequence[];
  /** The bundle's normal-appearance atlas (manifest.atlas), or null. */
  atlas: NormalAtlas | null;
  embedTexts(texts: string[]): Promise<Float32Array[]>;
  embedQueries(queries: TriageQuery[]): Promise<QueryVectors[]>;
  embedStudy(volumes: Partial<Record<Sequence, Float32Array>>): Promise<Partial<Record<Sequence, Float32Array>>>;
  /** Batch of one sequence's volumes (several studies) in one session call; ModelInputError if no such encoder. */
  embedImages(sequence: Sequence, volumes: Float32Array[]): Promise<Float32Array[]>;
  score(images: Partial<Record<Sequence, Float32Array>>, queries: QueryVectors[]): QueryScore[];
  close(): Promise<void>;
}

export async function loadModels(bundleDir: string, options: ModelOptions = {}): Promise<Models> {
  const providers = options.executionProviders ?? ['cuda', 'cpu'];
  const bundle = await loadBundle(bundleDir);
  const { manifest } = bundle;
  const sessions: ModelSession[] = [];
  const open = async (file: string) => {
    const s = await createSession(bundle.file(file), providers, options.threads);
    sessions.push(s);
    return s;
  };
  try {
    const tokenizer = await loadTokenizer(bundle.file(manifest.textEncoder.tokenizer), manifest.textEncoder.maxLength);
    const text: TextEncoder = createTextEncoder(manifest.textEncoder, tokenizer, await open(manifest.textEncoder.file));
    const images = new Map<Sequence, ImageEncoder>();
    for (const [seq, spec] of Object.entries(manifest.imageEncoders) as [Sequence, ImageEncoderSpec | undefined][]) {
      if (spec) images.set(seq, createImageEncoder(seq, spec, await open(spec.file)));
    }
    const atlas = await loadAtlas(manifest, (rel) => bundle.file(rel));
    const provider: ExecutionProvider = sessions.every((s) => s.provider === 'cuda') ? 'cuda' : 'cpu';
    return {
      manifest,
      provider,
      fallbacks: [...new Set(sessions.flatMap((s) => s.fallbacks))],
      sequences: [...images.keys()],
      atlas,
      embedTexts: (texts) => text.embed(texts),
      async embedQueries(queries) {
        const sentences = queries.map((q) => scoredSentences(q));
        const vectors = await text.embed(sentences.map((s) => s.positive));
        const contrasts = sentences.flatMap((s, i) => (s.contrast ? [i] : []));
        const contrastVectors = await text.embed(contrasts.map((i) => sentences[i].contrast as string));
        return queries.map((query, i) => {
          const n = contrasts.indexOf(i);
          return { query, text: vectors[i], ...(n >= 0 ? { negative: contrastVectors[n] } : {}) };
        });
      },
      async embedStudy(volumes) {
        const out: Partial<Record<Sequence, Float32Array>> = {};
        for (const [seq, encoder] of images) {
          const v = volumes[seq];
          if (v) [out[seq]] = await encoder.embed([v]);
        }
        if (Object.keys(out).length === 0) {
          throw new ModelInputError(`no sequence the models know (${[...images.keys()].join(', ')}) in this study`);
        }
        return out;
      },
      async embedImages(sequence, volumes) {
        const encoder = images.get(sequence);
        if (!encoder) throw new ModelInputError(`the bundle has no ${sequence} encoder (it has ${[...images.keys()].join(', ')})`);
        return encoder.embed(volumes);
      },
      score: (imageVectors, queries) => scoreStudy(manifest.combination, imageVectors, queries),
      async close() {
        await Promise.all(sessions.map((s) => s.session.release()));
      },
    };
  } catch (err) {
    await Promise.all(sessions.map((s) => s.session.release()));
    throw err;
  }
}
