// The worker's model adapter against real ONNX Runtime sessions (the recipe's fixture bundle): providers, shapes,
// batched session calls (and the cross-study batcher) equal to one-by-one, and a bundle whose checksum does not match refused.
import { appendFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { batchingEmbedder } from '../../services/worker/batcher';
import { loadWorkerModels } from '../../services/worker/models';
import { makeTinyBundle, readManifest } from './bundle';

describe('worker model adapter (tiny bundle, real ONNX Runtime)', () => {
  let dir: string;
  beforeAll(() => {
    dir = makeTinyBundle();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('falls back to the CPU provider when CUDA is not installed, and embeds text and volumes', async () => {
    const models = await loadWorkerModels(dir, { providers: ['cuda', 'cpu'], threads: 1 });
    try {
      expect(models.provider).toBe('cpu');
      expect(models.sequences.sort()).toEqual(['ADC', 'DWI', 'FLAIR', 'T1', 'T2']);
      const [t] = await models.text.embed(['acute infarct']);
      expect(t.length).toBe(models.manifest.embeddingDim);
      expect(Math.hypot(...t)).toBeCloseTo(1, 5);
      const n = models.manifest.preprocessing.shape.reduce((a, b) => a * b, 1);
      const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
      const b = Float32Array.from({ length: n }, (_, i) => Math.cos(i / 7));
      const batch = await models.image.embed('DWI', [a, b]);
      const one = [...(await models.image.embed('DWI', [a])), ...(await models.image.embed('DWI', [b]))];
      expect(batch.length).toBe(2);
      batch.forEach((v, i) => v.forEach((x, j) => expect(x).toBeCloseTo(one[i][j], 4)));
      // Two studies' DWI volumes arriving together go through one session call and each gets its own vector.
      const sizes: number[] = [];
      const batcher = batchingEmbedder(models.image, { maxBatch: 4, maxWaitMs: 20, onBatch: (_s, n) => sizes.push(n) });
      const [[ba], [bb]] = await Promise.all([batcher.embed('DWI', [a]), batcher.embed('DWI', [b])]);
      expect(sizes).toEqual([2]);
      [ba, bb].forEach((v, i) => v.forEach((x, j) => expect(x).toBeCloseTo(one[i][j], 4)));
    } finally {
      await models.close();
    }
  });

  it('refuses an unknown provider name and a bundle whose files do not match the manifest', async () => {
    await expect(loadWorkerModels(dir, { providers: ['tensorrt'] })).rejects.toThrow(/unknown provider/);
    appendFileSync(path.join(dir, (readManifest(dir).imageEncoders as Record<string, { file: string }>).T2.file), 'x');
    await expect(loadWorkerModels(dir, { providers: ['cpu'] })).rejects.toThrow(/sha256/);
  });
});
