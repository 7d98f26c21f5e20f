import type { Sequence } from '../../shared/model-manifest';
import { batchingEmbedder } from './batcher';
import type { ImageEmbedder } from './ports';

/** An encoder whose vector is [sum of the volume, batch size it was called with]: batches are visible. */
function recordingEncoder(): ImageEmbedder & { calls: Array<{ sequence: Sequence; size: number }> } {
  const calls: Array<{ sequence: Sequence; size: number }> = [];
  return {
    calls,
    async embed(sequence, volumes) {
      calls.push({ sequence, size: volumes.length });
      return volumes.map((v) => Float32Array.from([v.reduce((a, b) => a + b, 0), volumes.length]));
    },
  };
}

describe('batchingEmbedder', () => {
  it('gathers concurrent studies\' volumes of one sequence into one call and returns each its own vector', async () => {
    const inner = recordingEncoder();
    const b = batchingEmbedder(inner, { maxBatch: 4, maxWaitMs: 50 });
    const out = await Promise.all([1, 2, 3].map((i) => b.embed('DWI', [Float32Array.from([i, i])])));
    expect(out.map((r) => r[0][0])).toEqual([2, 4, 6]);
    expect(inner.calls).toEqual([{ sequence: 'DWI', size: 3 }]);
  });

  it('runs a full batch at once and keeps sequences apart', async () => {
    const inner = recordingEncoder();
    const b = batchingEmbedder(inner, { maxBatch: 2, maxWaitMs: 10_000 });
    const started = Date.now();
    await Promise.all([b.embed('T2', [new Float32Array(2)]), b.embed('T2', [new Float32Array(2)]), b.embed('FLAIR', [new Float32Array(2)]), b.embed('FLAIR', [new Float32Array(2)])]);
    expect(Date.now() - started).toBeLessThan(5000); // did not wait for the 10 s timer
    expect(inner.calls.sort((x, y) => x.sequence.localeCompare(y.sequence))).toEqual([{ sequence: 'FLAIR', size: 2 }, { sequence: 'T2', size: 2 }]);
  });

  it('with maxBatch 1 passes each volume straight through', async () => {
    const inner = recordingEncoder();
    const sizes: number[] = [];
    const b = batchingEmbedder(inner, { maxBatch: 1, maxWaitMs: 50, onBatch: (_s, n) => sizes.push(n) });
    await Promise.all([b.embed('ADC', [new Float32Array(1)]), b.embed('ADC', [new Float32Array(1)])]);
    expect(inner.calls.map((c) => c.size)).toEqual([1, 1]);
    expect(sizes).toEqual([1, 1]);
  });

  it('rejects every study of a failed batch', async () => {
    const failing: ImageEmbedder = { embed: async () => { throw new Error('session failed'); } };
    const b = batchingEmbedder(failing, { maxBatch: 2, maxWaitMs: 5 });
    const results = await Promise.allSettled([b.embed('T2', [new Float32Array(1)]), b.embed('T2', [new Float32Array(1)])]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});
