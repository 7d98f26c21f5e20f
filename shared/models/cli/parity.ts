// ONNX export parity (a step of the training recipe): runs the exported bundle in onnxruntime-node on the inputs
// the recipe saved with torch's outputs, and fails when any output differs by more than --tolerance (1e-4).
// Usage: node dist/shared/models/cli/parity.js --bundle onnx-models --fixtures var/models-train/parity
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadBundle } from '../bundle';
import type { ImageEncoderSpec } from '../image-encoder';
import { createSession } from '../session';
import { parseOptions, runCli } from '../../cli-args';
import { readF32 } from './volumes';

interface Meta {
  /** Absent in fixtures of image encoders alone (add_encoder.py adds one encoder to a bundle whose text is unchanged). */
  text?: { ids: number[][]; mask: number[][]; shape: number[] };
  images: Record<string, { n: number; dim: number }>;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export async function checkParity(bundleDir: string, fixtures: string): Promise<Record<string, number>> {
  const bundle = await loadBundle(bundleDir);
  const meta = JSON.parse(await readFile(path.join(fixtures, 'meta.json'), 'utf8')) as Meta;
  const result: Record<string, number> = {};
  if (meta.text) {
    const text = await createSession(bundle.file(bundle.manifest.textEncoder.file), ['cpu']);
    const [b, s] = meta.text.shape;
    const flat = (rows: number[][]) => BigInt64Array.from(rows.flat().map((x) => BigInt(x)));
    const out = await text.session.run({
      input_ids: new ort.Tensor('int64', flat(meta.text.ids), [b, s]),
      attention_mask: new ort.Tensor('int64', flat(meta.text.mask), [b, s]),
    });
    result.text = maxAbsDiff(out[bundle.manifest.textEncoder.output.name].data as Float32Array, await readF32(path.join(fixtures, 'text.f32')));
    await text.session.release();
  }
  for (const [seq, { n }] of Object.entries(meta.images)) {
    const spec = (bundle.manifest.imageEncoders as Record<string, ImageEncoderSpec | undefined>)[seq];
    if (!spec) throw new Error(`parity fixtures have ${seq} but the bundle has no ${seq} encoder`);
    const session = await createSession(bundle.file(spec.file), ['cpu']);
    const dims = [n, ...spec.input.shape.slice(1).map(Number)];
    const y = await session.session.run({ [spec.input.name]: new ort.Tensor('float32', await readF32(path.join(fixtures, `${seq}-in.f32`)), dims) });
    result[seq] = maxAbsDiff(y[spec.output.name].data as Float32Array, await readF32(path.join(fixtures, `${seq}-out.f32`)));
    await session.session.release();
  }
  return result;
}

async function main(): Promise<void> {
  const args = parseOptions({ bundle: { type: 'string', required: true }, fixtures: { type: 'string', required: true }, tolerance: { type: 'string', default: '1e-4' } });
  const result = await checkParity(args.bundle, args.fixtures);
  const tolerance = Number(args.tolerance);
  for (const [k, v] of Object.entries(result)) console.log(`parity ${k}: max abs diff ${v.toExponential(2)} ${v <= tolerance ? 'ok' : 'FAIL'}`);
  if (Object.values(result).some((v) => !(v <= tolerance))) process.exit(1);
}

if (require.main === module) runCli(main);
