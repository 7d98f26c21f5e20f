// The API needs only the bundle's text encoder (sentences for search, ad-hoc scores, report checks and
// calibration from reports) and what the bundle knows of language (shared/language/knowledge.ts), so it loads just
// that one ONNX session on CPU, after the same manifest and sha256 checks the worker's loader does
// (shared/models/bundle.ts); the image encoders stay on disk.
import type { Manifest } from '../../shared/model-manifest';
import { loadBundleLanguage, type BundleLanguage } from '../../shared/language/knowledge';
import { loadBundle } from '../../shared/models/bundle';
import { createSession } from '../../shared/models/session';
import { createTextEncoder } from '../../shared/models/text-encoder';
import { loadTokenizer } from '../../shared/models/tokenizer';

export interface TextEmbedder {
  manifest: Manifest;
  language: BundleLanguage;
  embedTexts(texts: string[]): Promise<Float32Array[]>;
  close(): Promise<void>;
}

export async function loadTextEmbedder(bundleDir: string, threads = 1): Promise<TextEmbedder> {
  const bundle = await loadBundle(bundleDir);
  const spec = bundle.manifest.textEncoder;
  const tokenizer = await loadTokenizer(bundle.file(spec.tokenizer), spec.maxLength);
  const session = await createSession(bundle.file(spec.file), ['cpu'], threads);
  const encoder = createTextEncoder(spec, tokenizer, session);
  const language = await loadBundleLanguage(bundle.manifest, bundle.file);
  return {
    manifest: bundle.manifest,
    language,
    embedTexts: (texts) => encoder.embed(texts),
    close: () => session.session.release(),
  };
}
