// Localisation through the worker's own pipeline (real decoding, real ONNX Runtime sessions of the reference
// bundle): a synthetic acute infarct study (tools/synth, which knows the lesion centre) is scored; the flagged
// finding must carry a location on a slice of the DWI series it was scored on, near the lesion, while findings that
// are not flagged carry none and no score changes. The bundle's atlas gives the candidates; without it the block
// search still places the finding. The figures over a whole held-out cohort are bench:localise's
// (docs/benchmarks.md), not asserted here.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Vec3 } from '../../shared/imaging';
import { createInlineLoader } from '../../services/worker/load-pool';
import { loadWorkerModels, type WorkerModels } from '../../services/worker/models';
import { scoreStudyFolder, type ScoredStudy } from '../../services/worker/pipeline';
import { manifestQuerySet, type QuerySet } from '../../services/worker/query-vectors';
import { referenceBundle } from './bundle';
import { storeInstances } from './helpers';
import { findStudyIndex, synthStudy } from './studies';

const ref = referenceBundle();
const SEED = 6061;
const study = synthStudy(SEED, findStudyIndex(SEED, ['acute_infarct']), { fast: true });
const lesion = study.labels.findings[0].center_mm as Vec3;

let dataDir: string;
let folder: string;
let models: WorkerModels;
let querySet: QuerySet;
let scored: ScoredStudy;

(ref.dir ? describe : describe.skip)('localisation of a flagged finding (reference bundle)', () => {
  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'nt-localise-'));
    folder = path.join(dataDir, storeInstances(dataDir, study.StudyInstanceUID, study.files));
    models = await loadWorkerModels(ref.dir!, { providers: ['cpu'], threads: 1 });
    querySet = await manifestQuerySet(models.manifest, models.text);
    const loader = createInlineLoader({ preprocessing: models.manifest.preprocessing, sequences: models.sequences });
    scored = await scoreStudyFolder({ loader, models }, folder, querySet);
  }, 120_000);
  afterAll(async () => {
    await models?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('puts the infarct on a slice of the DWI series it was scored on, near the lesion centre', () => {
    const infarct = scored.result.findings.find((f) => f.queryId === 'acute_infarct')!;
    expect(infarct.flagged).toBe(true);
    const loc = infarct.location!;
    expect(loc).toBeDefined();
    const dwi = scored.result.series.find((s) => s.used && s.sequence.startsWith('DWI'))!;
    expect(loc.sequence).toBe('DWI');
    expect(loc.SeriesInstanceUID).toBe(dwi.SeriesInstanceUID);
    expect(study.files.filter((f) => f.SeriesInstanceUID === dwi.SeriesInstanceUID).map((f) => f.SOPInstanceUID)).toContain(loc.SOPInstanceUID);
    expect(loc.sliceIndex).toBeGreaterThanOrEqual(0);
    expect(loc.sliceIndex).toBeLessThan(loc.sliceCount);
    expect(loc.scoreDrop).toBeGreaterThan(0);
    expect(loc.radiusMm).toBeGreaterThan(0);
    const d = Math.hypot(...([0, 1, 2] as const).map((a) => loc.patientMm[a] - lesion[a]));
    expect(d).toBeLessThan(20);
    expect(scored.result.timingsMs.localise).toBeGreaterThan(0);
  });

  it('uses the bundle atlas (a few encoder runs), and falls back to block occlusion without one', async () => {
    expect(models.atlas?.DWI).toBeDefined();
    const count = (m: WorkerModels) => {
      const c = { runs: 0 };
      return { c, models: { ...m, image: { embed: (s: Parameters<WorkerModels['image']['embed']>[0], v: Float32Array[]) => ((c.runs += v.length), m.image.embed(s, v)) } } };
    };
    const withAtlas = count(models);
    const a = await scoreStudyFolder({ loader: createInlineLoader({ preprocessing: models.manifest.preprocessing, sequences: models.sequences }), models: withAtlas.models }, folder, querySet);
    const blocks = count({ ...models, atlas: null });
    const b = await scoreStudyFolder({ loader: createInlineLoader({ preprocessing: models.manifest.preprocessing, sequences: models.sequences }), models: blocks.models }, folder, querySet);
    const scoring = models.sequences.length;
    // The atlas search tries a handful of candidates per finding; the block search tens of blocks.
    expect(blocks.c.runs - scoring).toBeGreaterThan(3 * (withAtlas.c.runs - scoring));
    const infarct = b.result.findings.find((f) => f.queryId === 'acute_infarct')!.location!;
    expect(infarct.sequence).toBe('DWI');
    expect(Math.hypot(...([0, 1, 2] as const).map((k) => infarct.patientMm[k] - lesion[k]))).toBeLessThan(30);
    expect(a.result.findings.find((f) => f.queryId === 'acute_infarct')!.location).toEqual(scored.result.findings.find((f) => f.queryId === 'acute_infarct')!.location);
  }, 60_000);

  it('locates only flagged findings, and never changes a score', async () => {
    for (const f of scored.result.findings) if (!f.flagged) expect(f.location).toBeUndefined();
    const loader = createInlineLoader({ preprocessing: models.manifest.preprocessing, sequences: models.sequences });
    const plain = await scoreStudyFolder({ loader, models, localise: false }, folder, querySet);
    expect(plain.result.findings.every((f) => f.location === undefined)).toBe(true);
    expect(plain.result.timingsMs.localise).toBeUndefined();
    expect(plain.result.findings.map((f) => [f.queryId, f.similarity, f.flagged])).toEqual(scored.result.findings.map((f) => [f.queryId, f.similarity, f.flagged]));
  }, 60_000);
});
