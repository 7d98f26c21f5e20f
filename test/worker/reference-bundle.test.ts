// With the trained reference bundle (onnx-models/manifest.json): a synthetic acute-infarct study comes out STAT and
// a normal one ROUTINE. Skipped only when the bundle is absent, saying so; studies are generated in-process.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { scoreFolder } from '../../services/worker/score-cli';
import { referenceBundle } from './bundle';
import { storeInstances } from './helpers';
import { findingTypes, findStudyIndex, synthStudy } from './studies';

const ref = referenceBundle();
if (!ref.dir) console.log(`reference-bundle tests skipped: ${ref.why}`);
const withBundle = ref.dir ? describe : describe.skip;

// Realistic coverage (the protocol's slices and field of view) with a smaller in-plane matrix to keep it quick.
const SEED = 7;
const OPTIONS = { matrix: 96 };
// Each test generates a study and starts the score CLI's pipeline (models and a fresh loader process): on a loaded
// 2-core CI machine that has taken close to a minute.
jest.setTimeout(180_000);

withBundle('reference bundle: priority of synthetic studies', () => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'nt-worker-ref-'));
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  const score = async (index: number) => {
    const study = synthStudy(SEED, index, OPTIONS);
    const dir = path.join(dataDir, storeInstances(dataDir, study.StudyInstanceUID, study.files));
    return { study, scored: await scoreFolder(dir, { modelsDir: ref.dir!, providers: ['cpu'] }) };
  };

  it('an acute infarct study is STAT, with the infarct query flagged', async () => {
    const { study, scored } = await score(findStudyIndex(SEED, ['acute_infarct']));
    expect(findingTypes(study)).toEqual(['acute_infarct']);
    const infarct = scored.result.findings.find((f) => f.queryId === 'acute_infarct');
    expect(infarct?.flagged).toBe(true);
    expect(scored.result.priority).toBe('STAT');
  });

  it('a normal study is ROUTINE', async () => {
    const { study, scored } = await score(findStudyIndex(SEED, []));
    expect(findingTypes(study)).toEqual([]);
    expect(scored.result.findings.filter((f) => f.flagged && f.priority !== 'ROUTINE')).toEqual([]);
    expect(scored.result.priority).toBe('ROUTINE');
  });
});
