// CI smoke run of the whole training recipe (onnx-models/training/train.py --smoke): a tiny synthetic cohort
// (npm run synth), canonical volumes (npm run volumes), vocabulary, a few text and CNN steps, ONNX export, the
// onnxruntime-node parity check, calibration on a second tiny cohort and the manifest, all in a scratch folder,
// so the recipe cannot rot. Needs the built dist/ (npm test and npm run models:smoke build first). The bundle it makes is never committed (and is not a model: it trained for seconds).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { loadModels } from '../../shared/models';
import { PYTHON, TRAINING_DIR } from './python';

const ROOT = path.resolve(__dirname, '..', '..');

describe('models:smoke', () => {
  let work: string;
  beforeAll(() => {
    mkdirSync(path.join(ROOT, 'var'), { recursive: true });
    work = mkdtempSync(path.join(ROOT, 'var', 'models-smoke-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('runs the training path end to end and produces a bundle the service loads', async () => {
    // npm test builds before jest; the recipe's node steps (synth, volumes, parity, scoring) run from dist/.
    const dist = path.join(ROOT, 'dist');
    for (const f of ['tools/synth/cli.js', 'tools/volumes.js', 'shared/models/cli/parity.js', 'shared/models/cli/score.js']) {
      if (!existsSync(path.join(dist, f))) throw new Error(`dist/${f} is missing: run npm run build first (npm test and npm run models:smoke do)`);
    }
    const out = path.join(work, 'bundle');
    const log = execFileSync(
      PYTHON,
      [path.join(TRAINING_DIR, 'train.py'), '--smoke', '--out', out, '--work', path.join(work, 'cohorts'), '--seed', '3',
        '--synth-args', '--fast --workers 0', '--synth-cmd', `node ${dist}/tools/synth/cli.js`, '--volumes-cmd', `node ${dist}/tools/volumes.js`,
        '--node-cli', path.join(dist, 'shared', 'models', 'cli'), '--threads', '1'],
      { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONWARNINGS: 'ignore' }, maxBuffer: 64 << 20 },
    );
    expect(log).toMatch(/text step 3\/3/);
    expect(log).toMatch(/parity text: max abs diff \S+ ok/);
    expect(log).not.toMatch(/FAIL/);
    expect(log).toMatch(/8\. calibration cohort[\s\S]*9\. bundle written/);
    const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.trainedOn.seed).toBe(3);
    expect(Object.keys(manifest.imageEncoders).length).toBeGreaterThan(0);
    const models = await loadModels(out, { executionProviders: ['cpu'] });
    try {
      const [v] = await models.embedTexts(['There is an acute infarct.']);
      expect(v.length).toBe(manifest.embeddingDim);
    } finally {
      await models.close();
    }

    // The GPU-host split (onnx-models/training/gpu-train.sh): CNN weights saved by --images-only, then exported,
    // parity-checked and calibrated here by --load-image-weights with the same text encoder.
    const weights = path.join(work, 'weights');
    const common = ['--smoke', '--work', path.join(work, 'cohorts'), '--seed', '3', '--reuse-text', '--synth-args', '--fast --workers 0',
      '--synth-cmd', `node ${dist}/tools/synth/cli.js`, '--volumes-cmd', `node ${dist}/tools/volumes.js`,
      '--node-cli', path.join(dist, 'shared', 'models', 'cli'), '--threads', '1'];
    const run = (args: string[]) => execFileSync(PYTHON, [path.join(TRAINING_DIR, 'train.py'), ...common, ...args],
      { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONWARNINGS: 'ignore' }, maxBuffer: 64 << 20 });
    expect(run(['--out', path.join(work, 'unused'), '--images-only', '--save-image-weights', weights])).toMatch(/--images-only: weights in/);
    const split = path.join(work, 'split');
    const log2 = run(['--out', split, '--load-image-weights', weights]);
    expect(log2).toMatch(/image encoder \S+ loaded from/);
    expect(log2).toMatch(/parity text: max abs diff \S+ ok/);
    expect(log2).not.toMatch(/FAIL/);
    const manifest2 = JSON.parse(readFileSync(path.join(split, 'manifest.json'), 'utf8'));
    expect(Object.keys(manifest2.imageEncoders).sort()).toEqual(Object.keys(manifest.imageEncoders).sort());
    expect(manifest2.trainedOn).toMatchObject({ seed: 3, studies: manifest.trainedOn.studies });

    // The bundle carries what the service needs of language and decisions (recipe steps 7b and 8).
    expect(manifest.schemaVersion).toBe(2);
    expect(manifest.language).toMatchObject({ knownWords: 'known-words.txt', sentenceBank: 'sentence-bank.f32' });
    expect(manifest.queries.every((q: { origin?: string }) => q.origin === 'bundle')).toBe(true);
  }, 480_000);
});
