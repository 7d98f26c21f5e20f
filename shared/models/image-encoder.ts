// Image encoders: one ONNX session per sequence; a canonical volume (float32, manifest.preprocessing.shape,
// produced by shared/imaging) in, an embedding out. Several studies' volumes of one sequence can go in one batch.
import * as ort from 'onnxruntime-node';
import type { Sequence, TensorSpec } from '../model-manifest';
import { ModelInputError } from './errors';
import type { ModelSession } from './session';

/** One entry of manifest.imageEncoders. */
export interface ImageEncoderSpec {
  id: string;
  file: string;
  input: TensorSpec;
  output: TensorSpec;
}

export interface ImageEncoder {
  sequence: Sequence;
  embed(volumes: Float32Array[]): Promise<Float32Array[]>;
}

export function createImageEncoder(sequence: Sequence, spec: ImageEncoderSpec, model: ModelSession): ImageEncoder {
  const shape = spec.input.shape.slice(1).map(Number);
  const voxels = shape.reduce((a, b) => a * b, 1);
  if (!shape.every((d) => Number.isInteger(d) && d > 0)) throw new ModelInputError(`${sequence} encoder: input shape ${JSON.stringify(spec.input.shape)} must be fixed after the batch axis`);
  return {
    sequence,
    async embed(volumes) {
      if (volumes.length === 0) return [];
      const data = new Float32Array(volumes.length * voxels);
      volumes.forEach((v, i) => {
        if (v.length !== voxels) throw new ModelInputError(`${sequence} volume has ${v.length} voxels, the encoder expects ${voxels} (${shape.join('x')})`);
        data.set(v, i * voxels);
      });
      const feeds = { [spec.input.name]: new ort.Tensor('float32', data, [volumes.length, ...shape]) };
      const out = (await model.session.run(feeds, [spec.output.name]))[spec.output.name];
      const dim = out.dims[1];
      const result = out.data as Float32Array;
      return volumes.map((_, i) => result.slice(i * dim, (i + 1) * dim));
    },
  };
}
