// WordPiece (or any Hugging Face tokenizer.json) encoding for the text encoder, via @huggingface/tokenizers.
// Truncation is ours, because tokenizers.js ignores tokenizer.json's truncation block: keep the first
// maxLength-1 ids and end with the last id of the full encoding ([SEP] for BERT-style templates), exactly as
// onnx-models/training/nt_tokenizer.py does (test/models/tokenizer-parity.test.ts holds the two equal).
import { readFile } from 'node:fs/promises';
import { Tokenizer } from '@huggingface/tokenizers';
import { ModelBundleError } from './errors';

export interface TextTokenizer {
  encode(text: string): { ids: number[]; attentionMask: number[] };
}

export async function loadTokenizer(file: string, maxLength: number): Promise<TextTokenizer> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new ModelBundleError(`tokenizer ${file}: ${(err as Error).message}`);
  }
  const tokenizer = new Tokenizer(json as object, {});
  return {
    encode(text) {
      let ids = tokenizer.encode(text).ids;
      if (ids.length > maxLength) ids = [...ids.slice(0, maxLength - 1), ids[ids.length - 1]];
      return { ids, attentionMask: ids.map(() => 1) };
    },
  };
}
