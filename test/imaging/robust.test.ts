// loadStudyVolumes on studies written to disk: only the chosen series' pixel data is read; size claims and limits
// stop a series before its volume is allocated; images left out of a stack are listed with their reason; Philips
// diffusion series use the isotropic (trace) image by DiffusionDirectionality; Legacy Converted Enhanced MR reads
// like the classic series it was converted from.
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileSource, type ByteSource, type Vec3 } from '../../shared/imaging/dicom-header';
import { DEFAULT_PREPROCESSING } from '../../shared/imaging/spec';
import { INCOMPLETE_DROP_REASONS, loadStudyVolumes } from '../../shared/imaging/study';
import { axialPositions, makeEnhancedSeries, makeSeries, phantom, stackPositions, uid, type SeriesSpec } from '../../shared/imaging/synthetic';

const CENTRE: Vec3 = [0, 10, 25];
const STUDY = uid();
const head = phantom(CENTRE, [15, 0, 40]);

function s(desc: string, over: Partial<SeriesSpec> = {}): SeriesSpec {
  return { StudyInstanceUID: STUDY, SeriesInstanceUID: uid(), SeriesDescription: desc, positions: axialPositions(CENTRE, 16, 5), intensity: head, ...over };
}

let dir: string;
beforeAll(async () => (dir = await mkdtemp(path.join(tmpdir(), 'nt-robust-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Writes each series into <dir>/<name>/<SeriesInstanceUID>/<k>.dcm and returns the paths. */
async function onDisk(name: string, series: { spec: SeriesSpec; files: Uint8Array[] }[]): Promise<string[]> {
  const out: string[] = [];
  for (const { spec, files } of series) {
    const d = path.join(dir, name, spec.SeriesInstanceUID);
    await import('node:fs/promises').then((fs) => fs.mkdir(d, { recursive: true }));
    for (const [k, data] of files.entries()) {
      const f = path.join(d, `${k}.dcm`);
      await writeFile(f, data);
      out.push(f);
    }
  }
  return out;
}

/** The file system, counting the bytes read from each file. */
function countingOpen(counts: Map<string, number>) {
  return async (file: string): Promise<ByteSource> => {
    const src = fileSource(file, (await stat(file)).size);
    return {
      size: src.size,
      read: (offset, length) => {
        counts.set(file, (counts.get(file) ?? 0) + length);
        return src.read(offset, length);
      },
    };
  };
}

describe('header first: pixel data is read only for the series that become volumes', () => {
  it('reads headers of every file, pixels only of the chosen T2', async () => {
    const big = { rows: 256, columns: 256, pixelSpacing: [0.9, 0.9] as [number, number] };
    const t2 = s('t2_tse_tra', { ...big, positions: axialPositions(CENTRE, 16, 5, 256, 256, [0.9, 0.9]) });
    const perfusion = s('ep2d_perf', { ...big, positions: axialPositions(CENTRE, 40, 3, 256, 256, [0.9, 0.9]) });
    const t2Repeat = s('t2_tse_tra', { ...big, SeriesNumber: 0, positions: axialPositions(CENTRE, 10, 5, 256, 256, [0.9, 0.9]) });
    const paths = await onDisk('header-first', [t2, perfusion, t2Repeat].map((spec) => ({ spec, files: makeSeries(spec) })));
    const counts = new Map<string, number>();
    const res = await loadStudyVolumes(paths, DEFAULT_PREPROCESSING, { openFile: countingOpen(counts) });
    expect(res.volumeInfo.T2?.SeriesInstanceUID).toBe(t2.SeriesInstanceUID);
    const fileSize = 256 * 256 * 2 + 600;
    for (const p of paths) {
      const read = counts.get(p)!;
      if (p.includes(t2.SeriesInstanceUID)) expect(read).toBeGreaterThan(256 * 256 * 2); // header + one frame
      else expect(read).toBeLessThanOrEqual(16 * 1024); // the first header read, never the pixel data
    }
    expect([...counts.values()].reduce((a, b) => a + b, 0)).toBeLessThan(paths.length * fileSize * 0.5);
  });
});

describe('size limits and claims', () => {
  it('a stack over the slice limit is too-large, before its volume is allocated; the next candidate is used', async () => {
    const many = s('t2_tse_tra', { positions: axialPositions(CENTRE, 40, 2) });
    const few = s('t2_tse_tra', { positions: axialPositions(CENTRE, 16, 5) });
    const files = [...makeSeries(many), ...makeSeries(few)].map((data, i) => ({ name: `${i}.dcm`, data }));
    const res = await loadStudyVolumes(files, DEFAULT_PREPROCESSING, { limits: { maxSlices: 30, maxVoxels: 1 << 30 } });
    expect(res.series.find((r) => r.SeriesInstanceUID === many.SeriesInstanceUID)).toMatchObject({ used: false, reason: 'too-large', detail: expect.stringMatching(/40 slices of 64x64/) });
    expect(res.volumeInfo.T2?.SeriesInstanceUID).toBe(few.SeriesInstanceUID);
  });

  it('Rows and NumberOfFrames claims larger than the pixel bytes make the file unreadable, not a huge allocation', async () => {
    const rows = makeSeries(s('t2_tse_tra', { positions: axialPositions(CENTRE, 1, 5) }))[0].slice();
    // Rows (0028,0010) US -> 65535
    const dv = new DataView(rows.buffer);
    for (let i = 132; i < rows.byteLength - 10; i++) if (dv.getUint16(i, true) === 0x0028 && dv.getUint16(i + 2, true) === 0x0010) dv.setUint16(i + 8, 65535, true);
    const frames = makeSeries(s('t2_tse_tra', { positions: axialPositions(CENTRE, 1, 5), attributes: { NumberOfFrames: 100000 } }))[0];
    const res = await loadStudyVolumes([{ name: 'rows.dcm', data: rows }, { name: 'frames.dcm', data: frames }], DEFAULT_PREPROCESSING);
    expect(res.unreadable.map((u) => [u.file, u.kind])).toEqual([['rows.dcm', 'corrupt'], ['frames.dcm', 'corrupt']]);
    expect(res.unreadable[0].detail).toMatch(/pixel data holds 8192 bytes; 1 frame\(s\) of 65535x64/);
    expect(res.unreadable[1].detail).toMatch(/100000 frame\(s\)/);
  });
});

describe('images left out of a stack are listed', () => {
  it('mixed orientations: the axial stack is kept, the sagittal images are other-stack', async () => {
    const axial = s('t2_tse_tra', { positions: axialPositions(CENTRE, 16, 5) });
    const sag = { ...axial, rowDirection: [0, 1, 0] as Vec3, columnDirection: [0, 0, -1] as Vec3, positions: stackPositions(CENTRE, [0, 1, 0], [0, 0, -1], 6, 5) };
    const files = [...makeSeries(axial), ...makeSeries(sag).map((f) => f)];
    const res = await loadStudyVolumes(files.map((data, i) => ({ name: `${i}.dcm`, data })), DEFAULT_PREPROCESSING);
    const r = res.series.find((x) => x.used)!;
    expect(r.geometry?.slices).toBe(16);
    expect(r.dropped).toEqual([{ images: 6, reason: 'other-stack' }]);
  });

  it('positions missing inside the stack (an interrupted transfer) are missing-slices, not a silent interpolation', async () => {
    const p = axialPositions(CENTRE, 16, 5);
    const holed = s('t2_tse_tra', { positions: [...p.slice(0, 6), ...p.slice(9)] }); // 3 of 16 positions not received
    const res = await loadStudyVolumes(makeSeries(holed).map((data, i) => ({ name: `${i}.dcm`, data })), DEFAULT_PREPROCESSING);
    const r = res.series.find((x) => x.SeriesInstanceUID === holed.SeriesInstanceUID)!;
    expect(r.used).toBe(true);
    expect(r.dropped).toEqual([{ images: 3, reason: 'missing-slices' }]);
    expect(INCOMPLETE_DROP_REASONS).toContain('missing-slices');
  });

  it('a repeated position is duplicate-position; a second echo is other-echo', async () => {
    const p = axialPositions(CENTRE, 12, 5);
    const dup = s('t2_tse_tra', { positions: [...p, p[3]] });
    const echoes = s('t2_tse_tra', { positions: [...p, ...p], perSlice: (k) => ({ EchoNumbers: k < 12 ? 1 : 2 }) });
    const res = await loadStudyVolumes([...makeSeries(dup), ...makeSeries(echoes)].map((data, i) => ({ name: `${i}.dcm`, data })), DEFAULT_PREPROCESSING);
    expect(res.series.find((r) => r.SeriesInstanceUID === dup.SeriesInstanceUID)?.dropped).toEqual([{ images: 1, reason: 'duplicate-position' }]);
    expect(res.series.find((r) => r.SeriesInstanceUID === echoes.SeriesInstanceUID)?.dropped).toEqual([{ images: 12, reason: 'other-echo' }]);
  });
});

describe('Philips diffusion: isotropic and directional images at one b-value', () => {
  it('uses the isotropic (trace) images, not the lowest InstanceNumber', async () => {
    const p = axialPositions(CENTRE, 12, 5);
    const series = uid();
    const common = { SeriesInstanceUID: series, SeriesDescription: 'DWI_SENSE', attributes: { ScanningSequence: 'EP', Manufacturer: 'Philips Medical Systems' } };
    // b=0, then three directions at b=1000 (InstanceNumber 13-48), then the isotropic image (49-60), each a
    // different lesion so the volume says which images were used.
    const b0 = s('', { ...common, positions: p, perSlice: (k) => ({ InstanceNumber: k + 1, DiffusionBValue: 0, DiffusionDirectionality: 'NONE' }) });
    const directional = s('', {
      ...common,
      positions: [...p, ...p, ...p],
      intensity: phantom(CENTRE, [-25, 10, 20]),
      perSlice: (k) => ({ InstanceNumber: 13 + k, DiffusionBValue: 1000, DiffusionDirectionality: 'DIRECTIONAL' }),
    });
    const isotropic = s('', { ...common, positions: p, intensity: phantom(CENTRE, [25, -10, 30]), perSlice: (k) => ({ InstanceNumber: 49 + k, DiffusionBValue: 1000, DiffusionDirectionality: 'ISOTROPIC' }) });
    const named = (list: Uint8Array[], prefix: string) => list.map((data, i) => ({ name: `${prefix}${i}.dcm`, data }));
    const all = [...named(makeSeries(b0), 'b'), ...named(makeSeries(directional), 'd'), ...named(makeSeries(isotropic), 'i')];
    const res = await loadStudyVolumes(all, DEFAULT_PREPROCESSING);
    const trace = await loadStudyVolumes([...named(makeSeries(b0), 'b'), ...named(makeSeries(isotropic), 'i')], DEFAULT_PREPROCESSING);
    const dwi = res.series.find((r) => r.sequence === 'DWI')!;
    expect(dwi).toMatchObject({ used: true, bValue: 1000, dropped: [{ images: 36, reason: 'directional' }], geometry: { slices: 12 } });
    expect(res.volumes.DWI).toEqual(trace.volumes.DWI);
  });
});

describe('Legacy Converted Enhanced MR (1.2.840.10008.5.1.4.1.1.4.4)', () => {
  it('a multi-frame legacy converted instance gives the volume of the classic series it holds', async () => {
    const spec = s('t2_tse_tra', { positions: axialPositions(CENTRE, 16, 5) });
    const legacy = makeEnhancedSeries({ ...spec, attributes: { SOPClassUID: '1.2.840.10008.5.1.4.1.1.4.4', ImageType: ['ORIGINAL', 'PRIMARY', 'M', 'NONE'] } });
    const classic = makeSeries(spec);
    const paths = await onDisk('legacy', [{ spec, files: [legacy] }]);
    const fromLegacy = await loadStudyVolumes(paths, DEFAULT_PREPROCESSING);
    const fromClassic = await loadStudyVolumes(classic.map((data, i) => ({ name: `${i}.dcm`, data })), DEFAULT_PREPROCESSING);
    expect(fromLegacy.series[0]).toMatchObject({ sequence: 'T2', used: true, frames: 16, geometry: { slices: 16 } });
    const a = fromLegacy.volumes.T2!;
    const b = fromClassic.volumes.T2!;
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    expect(maxDiff).toBeLessThan(1e-4);
  });
});
