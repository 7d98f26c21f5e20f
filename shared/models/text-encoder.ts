// Text encoder: tokenises, pads a batch, runs the ONNX model and, for pooling "mean", averages last_hidden_state
// over attention_mask; L2-normalises when the manifest says so. Accepts models that also take token_type_ids
// (a BERT exported with standard tools), fed zeros.
import * as ort from 'onnxruntime-node';
import type { Manifest } from '../model-manifest';
import type { ModelSession } from './session';
import type { TextTokenizer } from './tokenizer';
import { l2normalize } from './scoring';

export interface TextEncoder {
  embed(texts: string[]): Promise<Float32Array[]>;
}

export function createTextEncoder(spec: Manifest['textEncoder'], tokenizer: TextTokenizer, model: ModelSession): TextEncoder {
  return {
    async embed(texts) {
      if (texts.length === 0) return [];
      // Unicode NFKC first: fullwidth letters ("ｈｙｄｒｏ"), ligatures and other compatibility forms read as the plain
      // letters they stand for, as the language check reads them (shared/language/vocabulary.ts wordsOf), instead
      // of [UNK]. Every text the service embeds (queries, searches, reports) passes here.
      const encoded = texts.map((t) => tokenizer.encode(t.normalize('NFKC')));
      const seq = Math.max(...encoded.map((e) => e.ids.length));
      const ids = new BigInt64Array(texts.length * seq);
      const mask = new BigInt64Array(texts.length * seq);
      encoded.forEach((e, b) => e.ids.forEach((id, i) => {
        ids[b * seq + i] = BigInt(id);
        mask[b * seq + i] = 1n;
      }));
      const feeds: Record<string, ort.Tensor> = {};
      for (const name of model.session.inputNames) {
        if (name === 'input_ids') feeds[name] = new ort.Tensor('int64', ids, [texts.length, seq]);
        else if (name === 'attention_mask') feeds[name] = new ort.Tensor('int64', mask, [texts.length, seq]);
        else if (name === 'token_type_ids') feeds[name] = new ort.Tensor('int64', new BigInt64Array(texts.length * seq), [texts.length, seq]);
        else throw new Error(`text encoder input ${name} is not one the service knows how to feed`);
      }
      const out = (await model.session.run(feeds, [spec.output.name]))[spec.output.name];
      const data = out.data as Float32Array;
      const vectors: Float32Array[] = [];
      if (spec.pooling === 'mean') {
        const dim = out.dims[2];
        for (let b = 0; b < texts.length; b++) {
          const v = new Float32Array(dim);
          const n = encoded[b].ids.length;
          for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) v[d] += data[(b * seq + i) * dim + d];
          for (let d = 0; d < dim; d++) v[d] /= n;
          vectors.push(v);
        }
      } else {
        const dim = out.dims[1];
        for (let b = 0; b < texts.length; b++) vectors.push(data.slice(b * dim, (b + 1) * dim));
      }
      return spec.normalize ? vectors.map(l2normalize) : vectors;
    },
  };
}
