// The model layer against a real (tiny, random-weight) bundle made by the training recipe's own export code:
// checksum and manifest validation refuse a bad bundle with a clear error; sessions fall back to CPU when the
// CUDA provider library is absent; text vectors are the mean-pooled, L2-normalised last_hidden_state (equal to
// torch's pooling); image encoders match torch; scoring combines sequences and applies calibration.
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadModels, ModelBundleError, ModelInputError, scoreStudy, type QueryVectors } from '../../shared/models';
import { checkParity } from '../../shared/models/cli/parity';
import { cudaProviderLibrary } from '../../shared/models/session';
import { calibrated } from '../helpers/calibration';
import { python } from './python';

let root: string;
let bundle: string;

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'nt-bundle-'));
  bundle = path.join(root, 'bundle');
  python('fixture_bundle.py', [bundle]);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function copyBundle(name: string): string {
  const dir = path.join(root, name);
  cpSync(bundle, dir, { recursive: true });
  return dir;
}

describe('loadModels', () => {
  it('loads a valid bundle on the CPU and says why CUDA was not used', async () => {
    const models = await loadModels(bundle);
    try {
      expect(models.sequences.sort()).toEqual(['ADC', 'DWI', 'FLAIR', 'T1', 'T2']);
      if (!existsSync(cudaProviderLibrary())) {
        expect(models.provider).toBe('cpu');
        expect(models.fallbacks).toEqual(['cuda: provider library not installed']);
      }
    } finally {
      await models.close();
    }
  });

  it('refuses a bundle whose file does not match its sha256', async () => {
    const dir = copyBundle('tampered');
    appendFileSync(path.join(dir, 'image-t2.onnx'), Buffer.from([0]));
    await expect(loadModels(dir)).rejects.toThrow(ModelBundleError);
    await expect(loadModels(dir)).rejects.toThrow(/image-t2\.onnx: sha256 [0-9a-f]{64} does not match/);
  });

  it('refuses a bundle with a missing file, an invalid manifest or a path outside the bundle', async () => {
    const missing = copyBundle('missing');
    rmSync(path.join(missing, 'tokenizer.json'));
    await expect(loadModels(missing)).rejects.toThrow(/tokenizer\.json: missing/);

    const invalid = copyBundle('invalid');
    const m = JSON.parse(readFileSync(path.join(invalid, 'manifest.json'), 'utf8'));
    delete m.embeddingDim;
    m.textEncoder.pooling = 'max';
    writeFileSync(path.join(invalid, 'manifest.json'), JSON.stringify(m));
    await expect(loadModels(invalid)).rejects.toThrow(/invalid model manifest[\s\S]*embeddingDim[\s\S]*pooling/);

    const escape = copyBundle('escape');
    const e = JSON.parse(readFileSync(path.join(escape, 'manifest.json'), 'utf8'));
    e.files['../outside.onnx'] = '0'.repeat(64);
    writeFileSync(path.join(escape, 'manifest.json'), JSON.stringify(e));
    await expect(loadModels(escape)).rejects.toThrow(/outside the bundle/);

    await expect(loadModels(path.join(root, 'nothing-here'))).rejects.toThrow(/cannot read manifest\.json/);
  });

  it('mean-pools and normalises text vectors exactly as torch does', async () => {
    const meta = JSON.parse(readFileSync(path.join(bundle, 'parity', 'meta.json'), 'utf8'));
    const models = await loadModels(bundle, { executionProviders: ['cpu'] });
    try {
      const vectors = await models.embedTexts(meta.text.sentences);
      vectors.forEach((v, i) => {
        expect(v.length).toBe(models.manifest.embeddingDim);
        expect(Math.hypot(...v)).toBeCloseTo(1, 5);
        const diff = Math.max(...Array.from(v, (x, d) => Math.abs(x - meta.text.pooled[i][d])));
        expect(diff).toBeLessThanOrEqual(1e-4);
      });
      // Batching with padding does not change a sentence's vector.
      const [alone] = await models.embedTexts([meta.text.sentences[1]]);
      expect(Math.max(...Array.from(alone, (x, d) => Math.abs(x - vectors[1][d])))).toBeLessThanOrEqual(1e-5);
    } finally {
      await models.close();
    }
  });

  it('runs the exported ONNX models in onnxruntime-node within 1e-4 of torch', async () => {
    const diffs = await checkParity(bundle, path.join(bundle, 'parity'));
    expect(Object.keys(diffs).sort()).toEqual(['ADC', 'DWI', 'FLAIR', 'T1', 'T2', 'text']);
    for (const d of Object.values(diffs)) expect(d).toBeLessThanOrEqual(1e-4);
  });

  it('embeds a study and scores every query; a study with no known sequence is an input error', async () => {
    const models = await loadModels(bundle, { executionProviders: ['cpu'] });
    try {
      const voxels = models.manifest.preprocessing.shape.reduce((a, b) => a * b, 1);
      const vol = Float32Array.from({ length: voxels }, (_, i) => Math.sin(i));
      const images = await models.embedStudy({ T2: vol, DWI: vol });
      expect(Object.keys(images).sort()).toEqual(['DWI', 'T2']);
      const queries = await models.embedQueries(models.manifest.queries);
      expect(queries.every((q) => q.negative !== undefined)).toBe(true);
      const scores = models.score(images, queries);
      expect(scores.map((s) => s.id)).toEqual(models.manifest.queries.map((q) => q.id));
      for (const s of scores) expect(Math.abs(s.score)).toBeLessThanOrEqual(2);
      // A batch of one sequence gives each study the vector it gets alone.
      const batch = await models.embedImages('DWI', [vol, vol.map((x) => -x)]);
      expect(Math.max(...Array.from(batch[0], (x, d) => Math.abs(x - (images.DWI as Float32Array)[d])))).toBeLessThanOrEqual(1e-5);
      await expect(models.embedStudy({})).rejects.toThrow(ModelInputError);
      await expect(models.embedStudy({ T2: new Float32Array(10) })).rejects.toThrow(/10 voxels/);
    } finally {
      await models.close();
    }
  });
});

describe('scoreStudy', () => {
  const q = (id: string, text: number[], negative?: number[], calibration?: { a: number; b: number; threshold: number }): QueryVectors => ({
    query: calibration ? calibrated({ id, text: 'x x x', priority: 'STAT' }, { a: calibration.a, b: calibration.b, scoreThreshold: calibration.threshold }) : { id, text: 'x x x', priority: 'STAT' },
    text: Float32Array.from(text),
    ...(negative ? { negative: Float32Array.from(negative) } : {}),
  });

  it('scores the mean embedding or the mean score, subtracts the negated query and calibrates', () => {
    const images = { T2: Float32Array.from([1, 0]), DWI: Float32Array.from([0, 1]) };
    const queries = [q('a', [1, 0]), q('b', [1, 0], [0, 1], { a: 10, b: 0, threshold: 0.5 })];
    const byEmbedding = scoreStudy('mean-embedding', images, queries);
    expect(byEmbedding[0].score).toBeCloseTo(Math.SQRT1_2, 6);
    expect(byEmbedding[1].score).toBeCloseTo(0, 6);
    expect(byEmbedding[1].probability).toBeCloseTo(0.5, 6);
    expect(byEmbedding[1].flagged).toBe(false);
    const byScore = scoreStudy('mean-score', images, queries);
    expect(byScore[0].score).toBeCloseTo(0.5, 6);
    const one = scoreStudy('mean-score', { T2: Float32Array.from([1, 0]) }, queries);
    expect(one[1]).toMatchObject({ score: 1, flagged: true });
    expect(one[1].probability).toBeCloseTo(1 / (1 + Math.exp(-10)), 6);
  });

  it('scores a query that names its sequences on those, and on every sequence when the study has none of them', () => {
    const images = { T2: Float32Array.from([1, 0]), FLAIR: Float32Array.from([1, 0]), DWI: Float32Array.from([0, 1]) };
    const onDwi: QueryVectors = { ...q('infarct', [0, 1]), query: { ...q('infarct', [0, 1]).query, sequences: ['DWI', 'ADC'] } };
    expect(scoreStudy('mean-embedding', images, [onDwi])[0].score).toBeCloseTo(1, 6);
    expect(scoreStudy('mean-embedding', images, [q('all', [0, 1])])[0].score).toBeCloseTo(1 / Math.sqrt(5), 6);
    // no DWI or ADC in the study: the query falls back to what the study has
    expect(scoreStudy('mean-score', { T2: images.T2, FLAIR: images.FLAIR }, [onDwi])[0].score).toBeCloseTo(0, 6);
  });
});
