// CI smoke run of the whole training recipe (onnx-models/training/train.py --smoke): a tiny synthetic cohort
// (npm run synth), canonical volumes (npm run volumes), vocabulary, a few text and CNN steps, ONNX export, the
// onnxruntime-node parity check, calibration on a second tiny cohort and the manifest, all in a scratch folder,
// so the recipe cannot rot; then the GPU-host split and add_encoder.py (one more sequence for a bundle). Needs the built dist/ (npm test and npm run models:smoke build first). The bundle it makes is never committed (and is not a model: it trained for seconds).
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
    expect(log).toMatch(/7c\. normal-appearance atlas[\s\S]*8\. calibration cohort[\s\S]*9\. bundle written/);
    const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.trainedOn.seed).toBe(3);
    expect(Object.keys(manifest.imageEncoders).length).toBeGreaterThan(0);
    const models = await loadModels(out, { executionProviders: ['cpu'] });
    try {
      const [v] = await models.embedTexts(['There is an acute infarct.']);
      expect(v.length).toBe(manifest.embeddingDim);
      // The atlas the worker localises against: one per encoder, on the canonical grid.
      expect(Object.keys(models.atlas ?? {}).sort()).toEqual(Object.keys(manifest.imageEncoders).sort());
      const voxels = manifest.preprocessing.shape.reduce((a: number, b: number) => a * b, 1);
      for (const a of Object.values(models.atlas ?? {})) expect([a!.median.length, a!.spread.length]).toEqual([voxels, voxels]);
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

    // One more sequence for an existing bundle (onnx-models/training/add_encoder.py): the smoke bundle without its
    // DWI encoder gains it back, trained onto the bundle's own report vectors, parity-checked and calibrated.
    const lacking = path.join(work, 'lacking');
    mkdirSync(lacking);
    const trimmed = { ...manifest, imageEncoders: { ...manifest.imageEncoders }, files: { ...manifest.files } };
    delete trimmed.imageEncoders.DWI;
    delete trimmed.files['image-dwi.onnx'];
    for (const f of Object.keys(trimmed.files)) copyFileSync(path.join(out, f), path.join(lacking, f));
    writeFileSync(path.join(lacking, 'manifest.json'), JSON.stringify(trimmed));
    const cohorts = readdirSync(path.join(work, 'cohorts'));
    const cohortDir = (prefix: string) => path.join(work, 'cohorts', cohorts.find((d) => d.startsWith(prefix))!);
    const added = path.join(work, 'added');
    const log3 = execFileSync(
      PYTHON,
      [path.join(TRAINING_DIR, 'add_encoder.py'), '--bundle', lacking, '--sequence', 'DWI', '--cohort', cohortDir('train-'), '--calib', cohortDir('calib-'),
        '--reads', 'acute_infarct=DWI', '--epochs', '1', '--threads', '1', '--version', 'smoke-added', '--out', added],
      { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONWARNINGS: 'ignore' }, maxBuffer: 64 << 20 },
    );
    expect(log3).toMatch(/parity DWI: max abs diff \S+ ok/);
    expect(log3).toMatch(/calibrated 10 studies/);
    const manifest3 = JSON.parse(readFileSync(path.join(added, 'manifest.json'), 'utf8'));
    expect(manifest3.version).toBe('smoke-added');
    expect(manifest3.imageEncoders.DWI).toMatchObject({ file: 'image-dwi.onnx' });
    expect(manifest3.queries.find((q: { id: string }) => q.id === 'acute_infarct').sequences).toEqual(['DWI']);
    const reloaded = await loadModels(added, { executionProviders: ['cpu'] });
    await reloaded.close();

    // --continue: the bundle's own DWI encoder (read back from its ONNX weights) trained further and replaced.
    const continued = path.join(work, 'continued');
    const log4 = execFileSync(
      PYTHON,
      [path.join(TRAINING_DIR, 'add_encoder.py'), '--bundle', added, '--sequence', 'DWI', '--continue', '--cohort', cohortDir('train-'), '--calib', cohortDir('calib-'),
        '--epochs', '1', '--lr', '3e-4', '--threads', '1', '--version', 'smoke-continued', '--out', continued],
      { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONWARNINGS: 'ignore' }, maxBuffer: 64 << 20 },
    );
    expect(log4).toMatch(/from the bundle's DWI encoder: validation mse \d/);
    expect(log4).toMatch(/parity DWI: max abs diff \S+ ok/);
    const manifest4 = JSON.parse(readFileSync(path.join(continued, 'manifest.json'), 'utf8'));
    expect(manifest4.version).toBe('smoke-continued');
    expect(manifest4.imageEncoders.DWI).toEqual(manifest3.imageEncoders.DWI);
    expect(manifest4.files['image-dwi.onnx']).not.toBe(manifest3.files['image-dwi.onnx']);
    expect(manifest4.trainedOn.description).toMatch(/DWI encoder trained further by add_encoder.py --continue/);

    // The bundle carries what the service needs of language and decisions (recipe steps 7b and 8).
    expect(manifest.schemaVersion).toBe(2);
    expect(manifest.language).toMatchObject({ knownWords: 'known-words.txt', sentenceBank: 'sentence-bank.f32' });
    expect(manifest.queries.every((q: { origin?: string }) => q.origin === 'bundle')).toBe(true);
  }, 480_000);
});
