// Cross-study batching for the image encoders: volumes of the same sequence from concurrent jobs are gathered for
// up to maxWaitMs (or until maxBatch are waiting) and run as one session call. On a GPU one batched call is expected
// to cost little more than one volume (not yet measured here: docs/gpu.md); on CPU maxBatch 1 passes straight through.
import type { Sequence } from '../../shared/model-manifest';
import type { ImageEmbedder, Volume } from './ports';

interface Pending {
  volume: Volume;
  resolve: (v: Float32Array) => void;
  reject: (err: unknown) => void;
}

export interface BatchingOptions {
  maxBatch: number;
  maxWaitMs: number;
  /** Called with each batch size run, for metrics. */
  onBatch?: (sequence: Sequence, size: number) => void;
}

export function batchingEmbedder(inner: ImageEmbedder, opts: BatchingOptions): ImageEmbedder {
  if (opts.maxBatch <= 1) {
    return {
      embed: async (sequence, volumes) => {
        const out: Float32Array[] = [];
        for (const v of volumes) {
          opts.onBatch?.(sequence, 1);
          out.push(...(await inner.embed(sequence, [v])));
        }
        return out;
      },
    };
  }
  const queues = new Map<Sequence, Pending[]>();
  const timers = new Map<Sequence, NodeJS.Timeout>();

  const flush = (sequence: Sequence): void => {
    const t = timers.get(sequence);
    if (t) clearTimeout(t);
    timers.delete(sequence);
    const queue = queues.get(sequence) ?? [];
    while (queue.length > 0) {
      const batch = queue.splice(0, opts.maxBatch);
      opts.onBatch?.(sequence, batch.length);
      inner.embed(sequence, batch.map((p) => p.volume)).then(
        (vectors) => {
          if (vectors.length !== batch.length) throw new Error(`encoder returned ${vectors.length} vectors for ${batch.length} volumes`);
          batch.forEach((p, i) => p.resolve(vectors[i]));
        },
      ).catch((err: unknown) => batch.forEach((p) => p.reject(err)));
    }
  };

  return {
    embed(sequence, volumes) {
      const queue = queues.get(sequence) ?? [];
      queues.set(sequence, queue);
      const results = volumes.map((volume) => new Promise<Float32Array>((resolve, reject) => queue.push({ volume, resolve, reject })));
      if (queue.length >= opts.maxBatch || opts.maxWaitMs === 0) flush(sequence);
      else if (!timers.has(sequence)) timers.set(sequence, setTimeout(() => flush(sequence), opts.maxWaitMs));
      return Promise.all(results);
    },
  };
}
