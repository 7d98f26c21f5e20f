// Text vectors from a bundle's text encoder, exactly as the service computes them (tokenizer, ONNX Runtime, mean
// pooling, L2 norm): a JSON array of strings in, float32 little-endian [count, dim] out. The training recipe's
// text adapter (onnx-models/training/adapt_text.py) reads the space the image encoders were trained in this way.
//
//   node dist/shared/models/cli/embed.js --bundle onnx-models --texts texts.json --out vectors.f32
import { readFileSync, writeFileSync } from 'node:fs';
import { loadTextEmbedder } from '../../../services/api/text-embedder';
import { parseOptions, runCli } from '../../cli-args';

async function main(): Promise<void> {
  const values = parseOptions({ bundle: { type: 'string', required: true }, texts: { type: 'string', required: true }, out: { type: 'string', required: true }, threads: { type: 'string', default: '2' } });
  const texts = JSON.parse(readFileSync(values.texts, 'utf8')) as unknown;
  if (!Array.isArray(texts) || !texts.every((t) => typeof t === 'string')) throw new Error(`${values.texts}: expected a JSON array of strings`);
  const embedder = await loadTextEmbedder(values.bundle, Number(values.threads));
  try {
    const vectors: Float32Array[] = [];
    for (let i = 0; i < texts.length; i += 64) vectors.push(...(await embedder.embedTexts(texts.slice(i, i + 64) as string[])));
    const dim = vectors[0]?.length ?? 0;
    const out = new Float32Array(vectors.length * dim);
    vectors.forEach((v, i) => out.set(v, i * dim));
    writeFileSync(values.out, Buffer.from(out.buffer));
    console.log(`${vectors.length} texts -> ${values.out} (${dim}-d)`);
  } finally {
    await embedder.close();
  }
}

runCli(main);
