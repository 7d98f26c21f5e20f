// The scoring pipeline end to end on synthetic DICOM (tools/synth) with real decoding and real ONNX Runtime:
// compressed (JPEG Lossless, JPEG-LS, RLE via DCMTK) and uncompressed copies of a study score the same; a missing
// sequence is reported and lowers confidence without failing; `npm run score` (the built CLI) prints the same
// result as the in-process pipeline. Uses the reference bundle when present, else the recipe's fixture bundle.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readInstance } from '../../shared/imaging';
import { scoreFolder } from '../../services/worker/score-cli';
import type { ScoredStudy } from '../../services/worker/pipeline';
import { makeTinyBundle, referenceBundle } from './bundle';
import { ROOT, requireBuild, storeInstances } from './helpers';
import { compressStudy, synthStudy } from './studies';

const EXPLICIT_LE = '1.2.840.10008.1.2.1';

function transferSyntaxes(dir: string): Set<string> {
  const out = new Set<string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      // A fresh Uint8Array: a small Buffer from readFileSync may be a view into a shared pool.
      else out.add(readInstance(new Uint8Array(readFileSync(path.join(d, e.name))), e.name).header.TransferSyntaxUID);
    }
  };
  walk(dir);
  return out;
}

function expectSameScores(a: Pick<ScoredStudy, 'result' | 'vectors'>, b: Pick<ScoredStudy, 'result' | 'vectors'>): void {
  expect(b.result.priority).toBe(a.result.priority);
  expect(b.result.sequencesUsed).toEqual(a.result.sequencesUsed);
  expect(b.result.findings.map((f) => f.queryId)).toEqual(a.result.findings.map((f) => f.queryId));
  a.result.findings.forEach((f, i) => {
    expect(Math.abs(b.result.findings[i].similarity - f.similarity)).toBeLessThan(1e-5);
    expect(b.result.findings[i].flagged).toBe(f.flagged);
  });
  for (const [k, v] of Object.entries(a.vectors)) v.forEach((x, j) => expect(Math.abs(b.vectors[k][j] - x)).toBeLessThan(1e-5));
}

describe('worker pipeline on synthetic DICOM', () => {
  const ref = referenceBundle();
  let modelsDir: string;
  let dataDir: string;
  let plain: string;
  let plainScore: ScoredStudy;
  const study = synthStudy(21, 3, { fast: true });

  beforeAll(async () => {
    console.log(ref.dir ? `pipeline tests use the reference bundle ${ref.dir}` : `pipeline tests use the fixture bundle (random weights): ${ref.why}`);
    modelsDir = ref.dir ?? makeTinyBundle();
    dataDir = mkdtempSync(path.join(tmpdir(), 'nt-worker-pipe-'));
    plain = path.join(dataDir, storeInstances(dataDir, study.StudyInstanceUID, study.files));
    plainScore = await scoreFolder(plain, { modelsDir, providers: ['cpu'] });
  });
  afterAll(() => {
    rmSync(dataDir, { recursive: true, force: true });
    if (!ref.dir) rmSync(modelsDir, { recursive: true, force: true });
  });

  it('scores every sequence of the study and records timings, model and provider', () => {
    const r = plainScore.result;
    expect(r.StudyInstanceUID).toBe(study.StudyInstanceUID);
    expect(r.sequencesUsed).toEqual(expect.arrayContaining(['T2', 'FLAIR', 'DWI', 'ADC']));
    expect(r.provider).toBe('cpu');
    expect(r.findings.length).toBeGreaterThan(0);
    for (const stage of ['decode', 'preprocess', 'inference', 'scoring', 'total'] as const) expect(r.timingsMs[stage]).toBeGreaterThanOrEqual(0);
    expect(r.series.filter((s) => s.used).length).toBe(r.sequencesUsed.length);
    expect(Object.keys(plainScore.vectors).sort()).toEqual(['combined', ...r.sequencesUsed].sort());
  });

  it('compressed and uncompressed copies of a study give the same scores', async () => {
    const compressed = path.join(dataDir, 'compressed');
    compressStudy(plain, compressed);
    const syntaxes = transferSyntaxes(compressed);
    expect(syntaxes.has(EXPLICIT_LE)).toBe(false);
    expect(syntaxes).toEqual(new Set(['1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.5']));
    expectSameScores(plainScore, await scoreFolder(compressed, { modelsDir, providers: ['cpu'] }));
  });

  it('a missing sequence is reported and lowers confidence; the study is still scored', async () => {
    const flair = new Set(study.labels.series.filter((s) => s.sequence === 'FLAIR').map((s) => s.SeriesInstanceUID));
    expect(flair.size).toBeGreaterThan(0);
    const partialDir = mkdtempSync(path.join(dataDir, 'partial-'));
    const partial = path.join(partialDir, storeInstances(partialDir, study.StudyInstanceUID, study.files.filter((f) => !flair.has(f.SeriesInstanceUID))));
    const r = (await scoreFolder(partial, { modelsDir, providers: ['cpu'] })).result;
    expect(r.sequencesMissing).toContain('FLAIR');
    expect(r.sequencesUsed).not.toContain('FLAIR');
    expect(r.confidence).toBeLessThan(plainScore.result.confidence);
  });

  it('npm run score (the built CLI) prints the same result as the in-process pipeline', () => {
    requireBuild();
    const out = execFileSync(process.execPath, [path.join(ROOT, 'dist/services/worker/score-cli.js'), plain, '--models', modelsDir, '--provider', 'cpu', '--vectors'], {
      encoding: 'utf8',
      maxBuffer: 32 << 20,
    });
    const printed = JSON.parse(out) as ScoredStudy['result'] & { vectors: Record<string, number[]> };
    const { vectors, ...result } = printed;
    expectSameScores(plainScore, { result, vectors: Object.fromEntries(Object.entries(vectors).map(([k, v]) => [k, Float32Array.from(v)])) });
  });
});
