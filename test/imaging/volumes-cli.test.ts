// tools/volumes.ts: study folders in, <out>/<StudyInstanceUID>/<SEQ>.f32 and index.jsonl out (in-process mode;
// the worker-thread mode runs the same processStudy from the compiled file).
import { spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runVolumes, type IndexRecord } from '../../tools/volumes';
import { DEFAULT_PREPROCESSING, parsePreprocessing } from '../../shared/imaging/spec';
import { PreprocessingSpecError } from '../../shared/imaging/errors';
import { loadStudyVolumes } from '../../shared/imaging/study';
import { axialPositions, makeSeries, phantom, uid } from '../../shared/imaging/synthetic';
import type { Vec3 } from '../../shared/imaging/dicom-header';

const CENTRE: Vec3 = [0, 0, 20];
let root: string;
let out: string;
const studyA = uid();
const studyB = uid();

async function writeStudy(folder: string, study: string, descs: string[]) {
  for (const desc of descs) {
    const series = uid();
    const dir = path.join(root, folder, series);
    await mkdir(dir, { recursive: true });
    const files = makeSeries({ StudyInstanceUID: study, SeriesInstanceUID: series, SeriesDescription: desc, positions: axialPositions(CENTRE, 12, 5), intensity: phantom(CENTRE, [10, 10, 30]) });
    await Promise.all(files.map((f, i) => writeFile(path.join(dir, `${i}.dcm`), f)));
  }
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'nt-vol-in-'));
  out = await mkdtemp(path.join(tmpdir(), 'nt-vol-out-'));
  // Folder names need not be the UIDs: the index is keyed by the StudyInstanceUID in the headers.
  await writeStudy('b-study', studyB, ['T2W_TSE']);
  await writeStudy('a-study', studyA, ['t2_tse_tra', 'tirm_tra_dark-fluid']);
  await mkdir(path.join(root, 'junk'));
  await writeFile(path.join(root, 'junk', 'readme.txt'), 'not dicom');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(out, { recursive: true, force: true });
});

describe('volumes CLI', () => {
  let summary: Awaited<ReturnType<typeof runVolumes>>;
  let index: IndexRecord[];
  beforeAll(async () => {
    summary = await runVolumes({ root, out, spec: DEFAULT_PREPROCESSING, concurrency: 2, threads: false });
    index = (await readFile(path.join(out, 'index.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as IndexRecord);
  });

  it('writes one index line per readable study, sorted by StudyInstanceUID', () => {
    expect(summary.studies).toBe(3);
    expect(summary.written).toBe(2);
    expect(summary.failed.map((f) => f.folder)).toEqual(['junk']);
    expect(index.map((r) => r.StudyInstanceUID)).toEqual([studyA, studyB].sort());
    const a = index.find((r) => r.StudyInstanceUID === studyA)!;
    expect(Object.keys(a.sequences).sort()).toEqual(['FLAIR', 'T2']);
    expect(a.missing).toEqual(['T1', 'DWI', 'ADC', 'SWI']);
    expect(a.shape).toEqual([48, 64, 64]);
    expect(a.spacing).toEqual([3, 3, 3]);
    expect(a.folder).toBe('a-study');
    expect(summary.perSequence).toEqual({ T2: 2, FLAIR: 1 });
  });

  it('each .f32 is raw little-endian float32 [D,H,W], equal to what the worker would compute', async () => {
    const a = index.find((r) => r.StudyInstanceUID === studyA)!;
    const bytes = await readFile(path.join(out, a.sequences.T2!.file));
    expect(bytes.byteLength).toBe(48 * 64 * 64 * 4);
    const fromFile = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const { readdir } = await import('node:fs/promises');
    const files: string[] = [];
    for (const s of await readdir(path.join(root, 'a-study'))) for (const f of await readdir(path.join(root, 'a-study', s))) files.push(path.join(root, 'a-study', s, f));
    const direct = await loadStudyVolumes(files, DEFAULT_PREPROCESSING);
    expect(fromFile).toEqual(direct.volumes.T2);
  });

  it('takes the spec from a model manifest', async () => {
    const spec = parsePreprocessing({ bundleId: 'x', preprocessing: { ...DEFAULT_PREPROCESSING, shape: [16, 24, 32], spacingMm: [6, 6, 6] } });
    const out2 = await mkdtemp(path.join(tmpdir(), 'nt-vol-out2-'));
    try {
      await runVolumes({ root, out: out2, spec, concurrency: 1, threads: false });
      const first = JSON.parse((await readFile(path.join(out2, 'index.jsonl'), 'utf8')).split('\n')[0]) as IndexRecord;
      expect(first.shape).toEqual([16, 24, 32]);
      const bytes = await readFile(path.join(out2, first.sequences.T2!.file));
      expect(bytes.byteLength).toBe(16 * 24 * 32 * 4);
    } finally {
      await rm(out2, { recursive: true, force: true });
    }
  });

  it('refuses an invalid spec with a typed error', () => {
    expect(() => parsePreprocessing({ ...DEFAULT_PREPROCESSING, shape: [0, 1, 1] })).toThrow(PreprocessingSpecError);
  });
});

describe('the built command\'s arguments', () => {
  const MAIN = path.resolve(__dirname, '..', '..', 'dist', 'tools', 'volumes.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 30_000 });

  it('--help prints the usage and exits 0', () => {
    const r = run('--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: npm run volumes -- <dicom root/);
  });

  it('an unknown option or a --concurrency that is not a count: exit 2 saying which, with the usage; nothing written', async () => {
    const unknown = run(root, '--out', out, '--threads', '4');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/^volumes: Unknown option '--threads'/);
    const target = path.join(out, 'not-written');
    const bad = run(root, '--out', target, '--concurrency', 'abc', '--quiet');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('volumes: --concurrency must be a whole number from 1 to 9999, got "abc"');
    await expect(readFile(path.join(target, 'index.jsonl'))).rejects.toThrow(/ENOENT/);
  });
});
