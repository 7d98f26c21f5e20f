// Loads what a model bundle knows of language (shared/language/check.ts): the manifest's language block when the
// bundle has one (knownWords: every word of the training text; sentenceBank: the unit vectors of its distinct
// sentences), else the tokenizer's vocabulary, whose whole-word entries are the words the model has seen (a word
// it can only spell from sub-word pieces, or not at all without [UNK], is unknown) and no closeness check.
import { readFile } from 'node:fs/promises';
import { float32FromLE } from '../float32';
import type { Manifest } from '../model-manifest';
import { ModelBundleError } from '../models/errors';
import type { LanguageKnowledge, SentenceBank } from './check';
import { vocabularyOf } from './vocabulary';

export interface BundleLanguage extends LanguageKnowledge {
  /** manifest.language.mentionSimilarity, when the bundle measured one. */
  mentionSimilarity: number | null;
  /** manifest.normalQuery.text: the normal-study sentence (default contrast, search baseline). */
  normalText: string | null;
}

/** Whole-word entries of a tokenizer.json vocabulary (WordPiece: not "##" pieces, not [SPECIAL] tokens). */
export function tokenizerWords(tokenizerJson: unknown): string[] {
  const vocab = (tokenizerJson as { model?: { vocab?: Record<string, number> | [string, number][] } }).model?.vocab;
  if (!vocab) return [];
  const tokens = Array.isArray(vocab) ? vocab.map(([t]) => t) : Object.keys(vocab);
  return tokens.filter((t) => /^\p{L}+$/u.test(t));
}

/** Float32 little-endian [count, dim] as unit vectors (the file is written normalised; normalising again is cheap insurance). */
export function parseSentenceBank(bytes: Buffer, count: number, dim: number): SentenceBank {
  if (bytes.byteLength !== count * dim * 4) {
    throw new ModelBundleError(`sentence bank has ${bytes.byteLength} bytes; ${count} sentences of ${dim} float32 need ${count * dim * 4}`);
  }
  const vectors = float32FromLE(bytes, 'sentence bank');
  for (let i = 0; i < count; i++) {
    let n = 0;
    for (let d = 0; d < dim; d++) n += vectors[i * dim + d] ** 2;
    n = Math.sqrt(n) || 1;
    for (let d = 0; d < dim; d++) vectors[i * dim + d] /= n;
  }
  return { count, dim, vectors };
}

export async function loadBundleLanguage(manifest: Manifest, file: (rel: string) => string): Promise<BundleLanguage> {
  const normalText = manifest.normalQuery?.text ?? null;
  const lang = manifest.language;
  if (lang) {
    const words = (await readFile(file(lang.knownWords), 'utf8')).split(/\r?\n/).filter(Boolean);
    const bank = parseSentenceBank(await readFile(file(lang.sentenceBank)), lang.sentences, manifest.embeddingDim);
    return { vocabulary: vocabularyOf(words, 'known-words'), bank, offTopicBelow: lang.offTopicBelow, mentionSimilarity: lang.mentionSimilarity, normalText };
  }
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file(manifest.textEncoder.tokenizer), 'utf8'));
  } catch (err) {
    throw new ModelBundleError(`tokenizer ${manifest.textEncoder.tokenizer}: ${(err as Error).message}`);
  }
  return { vocabulary: vocabularyOf(tokenizerWords(json), 'tokenizer'), bank: null, offTopicBelow: null, mentionSimilarity: null, normalText };
}
