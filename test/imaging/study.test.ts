// loadStudyVolumes on a whole synthetic study: classification, b-value splitting (standard and vendor tags),
// unusable series with reasons, the choice of the best series per sequence, and the output contract.
import { loadStudyVolumes, type StudyVolumes } from '../../shared/imaging/study';
import { DEFAULT_PREPROCESSING } from '../../shared/imaging/spec';
import type { Vec3 } from '../../shared/imaging/dicom-header';
import { axialPositions, makeSeries, phantom, stackPositions, uid, type SeriesSpec } from '../../shared/imaging/synthetic';

const CENTRE: Vec3 = [0, 10, 25];
const STUDY = uid();
const head = phantom(CENTRE, [15, 0, 40]);

function s(desc: string, over: Partial<SeriesSpec> = {}): SeriesSpec {
  return { StudyInstanceUID: STUDY, SeriesInstanceUID: uid(), SeriesDescription: desc, positions: axialPositions(CENTRE, 24, 5), intensity: head, ...over };
}

const dwiPositions = axialPositions(CENTRE, 20, 5);
let n = 0;
const series = {
  localiser: s('AAHead_Scout_32ch-head-coil', { SeriesNumber: ++n, positions: axialPositions(CENTRE, 3, 20) }),
  t2: s('t2_tse_tra', { SeriesNumber: ++n }),
  t2Short: s('t2_tse_tra', { SeriesNumber: ++n, positions: axialPositions(CENTRE, 14, 5) }),
  flair: s('tirm_tra_dark-fluid', { SeriesNumber: ++n, attributes: { ScanningSequence: ['SE', 'IR'], InversionTime: 2500 } }),
  // Siemens trace series: b=0 and b=1000 images at the same positions, b in the private tag (0019,100C).
  dwi: s('ep2d_diff_3scan_trace_p2_TRACEW', {
    SeriesNumber: ++n,
    positions: [...dwiPositions, ...dwiPositions],
    attributes: { ImageType: ['DERIVED', 'PRIMARY', 'DIFFUSION', 'TRACEW'], ScanningSequence: 'EP' },
    raw: (k) => ({ '00191010': { vr: 'LO', Value: ['SIEMENS MR HEADER'] }, '0019100C': { vr: 'IS', Value: [k < 20 ? 0 : 1000] } }),
  }),
  adc: s('ep2d_diff_3scan_trace_p2_ADC', { SeriesNumber: ++n, positions: dwiPositions, attributes: { ImageType: ['DERIVED', 'PRIMARY', 'DIFFUSION', 'ADC'] } }),
  // 3D sagittal T1 (1.25 mm) and a post-contrast axial T1: the pre-contrast 3D one must win.
  t1Sag: s('t1_mprage_sag_p2_iso', { SeriesNumber: ++n, rowDirection: [0, 1, 0], columnDirection: [0, 0, -1], positions: stackPositions(CENTRE, [0, 1, 0], [0, 0, -1], 100, 1.25) }),
  t1Post: s('t1_mprage_tra_post', { SeriesNumber: ++n, attributes: { ContrastBolusAgent: 'Gadovist' } }),
  swi: s('SWI_Images', { SeriesNumber: ++n }),
  // the phase image of the same SWI acquisition: never an SWI volume
  swiPhase: s('Pha_Images', { SeriesNumber: ++n, attributes: { ImageType: ['ORIGINAL', 'PRIMARY', 'P', 'ND'] } }),
  ct: s('Head 5mm', { SeriesNumber: ++n, attributes: { Modality: 'CT', SOPClassUID: '1.2.840.10008.5.1.4.1.1.2' } }),
  spine: s('t2_tse_sag', { SeriesNumber: ++n, attributes: { BodyPartExamined: 'CSPINE' } }),
  few: s('Ax T2 FRFSE', { SeriesNumber: ++n, positions: axialPositions(CENTRE, 4, 5) }),
};

function files(list: SeriesSpec[]) {
  return list.flatMap((spec) => makeSeries(spec)).map((data, i) => ({ name: `f${i}.dcm`, data }));
}

let out: StudyVolumes;
beforeAll(async () => {
  const all = files(Object.values(series));
  out = await loadStudyVolumes([...all, { name: 'notes.txt', data: new TextEncoder().encode('not dicom') }], DEFAULT_PREPROCESSING);
});

const report = (spec: SeriesSpec) => out.series.filter((r) => r.SeriesInstanceUID === spec.SeriesInstanceUID);

describe('loadStudyVolumes', () => {
  it('finds every encoder sequence and reports nothing missing', () => {
    expect(out.StudyInstanceUID).toBe(STUDY);
    expect(out.missing).toEqual([]);
    expect(Object.keys(out.volumes).sort()).toEqual(['ADC', 'DWI', 'FLAIR', 'SWI', 'T1', 'T2']);
    expect(report(series.swi)[0]).toMatchObject({ sequence: 'SWI', used: true });
  });

  it('volumes follow the spec: [48,64,64] float32, z-scored foreground, clipped', () => {
    for (const v of Object.values(out.volumes)) {
      expect(v).toBeInstanceOf(Float32Array);
      expect(v!.length).toBe(48 * 64 * 64);
      let min = Infinity;
      let max = -Infinity;
      for (const x of v!) {
        min = Math.min(min, x);
        max = Math.max(max, x);
      }
      expect(min).toBeGreaterThanOrEqual(-5);
      expect(max).toBeLessThanOrEqual(5);
      expect(max).toBeGreaterThan(min);
    }
    expect(out.shape).toEqual([48, 64, 64]);
    expect(out.spacingMm).toEqual([3, 3, 3]);
  });

  it('splits the trace series by b-value: b=1000 is DWI, b=0 is DWI_B0', () => {
    const parts = report(series.dwi);
    expect(parts.map((p) => [p.bValue, p.sequence, p.used])).toEqual([
      [0, 'DWI_B0', false],
      [1000, 'DWI', true],
    ]);
    expect(parts[0].reason).toBe('unsupported-sequence');
    expect(parts[1].geometry?.slices).toBe(20);
    expect(out.volumeInfo.DWI?.key).toBe(`${series.dwi.SeriesInstanceUID}#b1000`);
  });

  it('prefers pre-contrast, and the longer of two axial T2s', () => {
    expect(report(series.t1Sag)[0]).toMatchObject({ sequence: 'T1', used: true });
    expect(report(series.t1Post)[0]).toMatchObject({ sequence: 'T1', used: false, reason: 'not-selected', contrastEnhanced: true });
    expect(report(series.t2)[0]).toMatchObject({ used: true });
    expect(report(series.t2Short)[0]).toMatchObject({ used: false, reason: 'not-selected' });
  });

  it.each([
    ['localiser', 'localiser'],
    ['swiPhase', 'unsupported-sequence'],
    ['ct', 'not-mr'],
    ['spine', 'not-head'],
    ['few', 'too-few-slices'],
  ] as const)('%s is recorded as %s', (key, reason) => {
    expect(report(series[key])[0]).toMatchObject({ used: false, reason });
  });

  it('lists a non-DICOM file as unreadable and carries on', () => {
    expect(out.unreadable).toHaveLength(1);
    expect(out.unreadable[0].file).toBe('notes.txt');
  });

  it('reports per-stage timings', () => {
    expect(out.timings.decodeMs).toBeGreaterThan(0);
    expect(out.timings.preprocessMs).toBeGreaterThan(0);
  });
});

describe('vendor b-values and edge cases', () => {
  it('GE (0043,1039) and Philips (2001,1003) b-values split a diffusion series', async () => {
    const p = axialPositions(CENTRE, 12, 5);
    const ge = s('DWI Asset', {
      positions: [...p, ...p],
      attributes: { ScanningSequence: 'EP' },
      raw: (k) => ({ '00431010': { vr: 'LO', Value: ['GEMS_PARM_01'] }, '00431039': { vr: 'IS', Value: [k < 12 ? 0 : 1000000000 + 1000, 8, 0, 0] } }),
    });
    const fl = new Float32Array(1);
    const philips = s('DWI_SENSE', {
      positions: [...p, ...p],
      raw: (k) => {
        fl[0] = k < 12 ? 0 : 1000;
        return { '20011003': { vr: 'FL', Value: [fl[0]] } };
      },
    });
    const res = await loadStudyVolumes(files([ge, philips]), DEFAULT_PREPROCESSING);
    const bs = (spec: SeriesSpec) => res.series.filter((r) => r.SeriesInstanceUID === spec.SeriesInstanceUID).map((r) => [r.bValue, r.sequence]);
    expect(bs(ge)).toEqual([
      [0, 'DWI_B0'],
      [1000, 'DWI'],
    ]);
    expect(bs(philips)).toEqual([
      [0, 'DWI_B0'],
      [1000, 'DWI'],
    ]);
    expect(res.volumes.DWI).toBeDefined();
  });

  it('vendor b-values survive implicit VR (private tags arrive as raw bytes)', async () => {
    const { execFileSync } = await import('node:child_process');
    const { mkdtemp, writeFile, readFile, rm } = await import('node:fs/promises');
    const path = await import('node:path');
    const os = await import('node:os');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'nt-implicit-'));
    try {
      const p = axialPositions(CENTRE, 10, 5);
      const fl = new Float32Array(1);
      const siemens = s('ep2d_diff_tra', { positions: [...p, ...p], raw: (k) => ({ '00191010': { vr: 'LO', Value: ['SIEMENS MR HEADER'] }, '0019100C': { vr: 'IS', Value: [k < 10 ? 0 : 1000] } }) });
      const philips = s('DWI_SENSE', {
        positions: [...p, ...p],
        raw: (k) => {
          fl[0] = k < 10 ? 0 : 1000;
          return { '20011003': { vr: 'FL', Value: [fl[0]] } };
        },
      });
      const implicit = await Promise.all(
        files([siemens, philips]).map(async (f) => {
          const a = path.join(dir, f.name);
          await writeFile(a, f.data);
          execFileSync('dcmconv', ['+ti', a, `${a}.ti`], { env: { ...process.env, TCP_NODELAY: '1' } });
          return { name: f.name, data: new Uint8Array(await readFile(`${a}.ti`)) };
        }),
      );
      const res = await loadStudyVolumes(implicit, DEFAULT_PREPROCESSING);
      for (const spec of [siemens, philips]) {
        expect(res.series.filter((r) => r.SeriesInstanceUID === spec.SeriesInstanceUID).map((r) => [r.bValue, r.sequence])).toEqual([
          [0, 'DWI_B0'],
          [1000, 'DWI'],
        ]);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads a vendor b-value only from its own private block (Philips PHILIPS MR/PART (0019,100C) is CCOffcenter)', async () => {
    const p = axialPositions(CENTRE, 12, 5);
    const fl = new Float32Array(1);
    // Older Philips software: no (0018,9087), b in (2001,1003) under "Philips Imaging DD 001"; the same files carry
    // the "PHILIPS MR/PART" block in group 0019, whose (0019,100C) is an offcentre in mm, not Siemens' B_value.
    const philips = s('DWI SE', {
      positions: [...p, ...p],
      raw: (k) => {
        fl[0] = k < 12 ? 0 : 1000;
        return {
          '00190010': { vr: 'LO', Value: ['PHILIPS MR/PART'] },
          '0019100C': { vr: 'DS', Value: ['60'] },
          '20010010': { vr: 'LO', Value: ['Philips Imaging DD 001'] },
          '20011003': { vr: 'FL', Value: [fl[0]] },
        };
      },
    });
    // Siemens with its creator in another block than 0x10: (0019,0011) SIEMENS MR HEADER -> B_value at (0019,110C).
    const siemens = s('ep2d_diff_tra', {
      positions: [...p, ...p],
      raw: (k) => ({ '00190011': { vr: 'LO', Value: ['SIEMENS MR HEADER'] }, '0019110C': { vr: 'IS', Value: [k < 12 ? 0 : 1000] } }),
    });
    const res = await loadStudyVolumes(files([philips, siemens]), DEFAULT_PREPROCESSING);
    for (const spec of [philips, siemens]) {
      expect(res.series.filter((r) => r.SeriesInstanceUID === spec.SeriesInstanceUID).map((r) => [r.bValue, r.sequence])).toEqual([
        [0, 'DWI_B0'],
        [1000, 'DWI'],
      ]);
    }
  });

  it('a thin slab (IAC CISS / DRIVE) with more slices never replaces the whole-brain T2', async () => {
    const brain = s('t2_tse_tra', { SeriesNumber: 3, positions: axialPositions(CENTRE, 24, 5) });
    // 64 slices of 0.7 mm = 45 mm over the posterior fossa, acquired later (higher SeriesNumber)
    const iac = s('t2_ciss3d_tra_IAC', { SeriesNumber: 9, positions: axialPositions([CENTRE[0], CENTRE[1], CENTRE[2] - 30], 64, 0.7) });
    const res = await loadStudyVolumes(files([iac, brain]), DEFAULT_PREPROCESSING);
    expect(res.volumeInfo.T2?.SeriesInstanceUID).toBe(brain.SeriesInstanceUID);
    expect(res.series.find((r) => r.SeriesInstanceUID === iac.SeriesInstanceUID)).toMatchObject({ sequence: 'T2', reason: 'not-selected' });
  });

  it('Siemens 3-scan trace with directional images saved: the DERIVED TRACEW wins over the ORIGINAL directions', async () => {
    const p = axialPositions(CENTRE, 12, 5);
    const trace = s('ep2d_diff_3scan_trace_p2_TRACEW', {
      SeriesNumber: 5,
      positions: [...p, ...p],
      attributes: { ImageType: ['DERIVED', 'PRIMARY', 'DIFFUSION', 'TRACEW', 'ND', 'NORM'], ScanningSequence: 'EP' },
      perSlice: (k) => ({ DiffusionBValue: k < 12 ? 0 : 1000 }),
    });
    // b=0 and three directions at b=1000, the same positions, ORIGINAL, one series number earlier
    const directions = s('ep2d_diff_3scan_trace_p2', {
      SeriesNumber: 4,
      positions: [...p, ...p, ...p, ...p],
      attributes: { ImageType: ['ORIGINAL', 'PRIMARY', 'DIFFUSION', 'NONE', 'ND', 'NORM'], ScanningSequence: 'EP' },
      perSlice: (k) => ({ DiffusionBValue: k < 12 ? 0 : 1000, DiffusionDirectionality: k < 12 ? 'NONE' : 'DIRECTIONAL' }),
    });
    const res = await loadStudyVolumes(files([directions, trace]), DEFAULT_PREPROCESSING);
    expect(res.volumeInfo.DWI?.key).toBe(`${trace.SeriesInstanceUID}#b1000`);
    expect(res.series.find((r) => r.key === `${directions.SeriesInstanceUID}#b1000`)).toMatchObject({ sequence: 'DWI', reason: 'not-selected' });
  });

  it("GE's exam-level ProtocolName does not classify a series, and a b-less 'DWI' never beats one with b-values", async () => {
    const p = axialPositions(CENTRE, 24, 5);
    const exam = { ProtocolName: 'BRAIN STROKE/DWI' };
    const geB = (k: number) => ({ '00430010': { vr: 'LO', Value: ['GEMS_PARM_01'] }, '00431039': { vr: 'IS', Value: [k < 24 ? 0 : 1000000000 + 1000, 8, 0, 0] } });
    const t2 = s('AX T2 FRFSE', { SeriesNumber: 3, attributes: { ...exam, ScanningSequence: 'SE', RepetitionTime: 4000, EchoTime: 100 } });
    const dwi = s('AX DWI ASSET', { SeriesNumber: 4, positions: [...p, ...p], attributes: { ...exam, ScanningSequence: 'EP', RepetitionTime: 6000, EchoTime: 80 }, raw: geB });
    // GE MERGE: multi-echo T2* gradient echo, a description no text rule knows
    const merge = s('Ax MERGE', { SeriesNumber: 6, attributes: { ...exam, ScanningSequence: 'GR', RepetitionTime: 600, EchoTime: 15 } });
    const res = await loadStudyVolumes(files([t2, dwi, merge]), DEFAULT_PREPROCESSING);
    expect(res.volumeInfo.DWI?.key).toBe(`${dwi.SeriesInstanceUID}#b1000`);
    expect(res.series.find((r) => r.SeriesInstanceUID === merge.SeriesInstanceUID)).toMatchObject({ sequence: 'SWI', rule: 'ph-t2star' });
  });

  it('prefers b=1000 over another shell', async () => {
    const p = axialPositions(CENTRE, 12, 5);
    const multi = s('ep2d_diff_b500_b1000_TRACEW', {
      positions: [...p, ...p, ...p],
      attributes: { ImageType: ['DERIVED', 'PRIMARY', 'DIFFUSION', 'TRACEW'] },
      perSlice: (k) => ({ DiffusionBValue: [0, 500, 1000][Math.floor(k / 12)] }),
    });
    const res = await loadStudyVolumes(files([multi]), DEFAULT_PREPROCESSING);
    expect(res.volumeInfo.DWI?.key).toBe(`${multi.SeriesInstanceUID}#b1000`);
    expect(res.series.find((r) => r.bValue === 500)?.reason).toBe('not-selected');
  });

  it('a study with nothing usable returns no volumes and every sequence missing, without throwing', async () => {
    const res = await loadStudyVolumes(files([series.localiser, series.ct]), DEFAULT_PREPROCESSING);
    expect(res.volumes).toEqual({});
    expect(res.missing).toEqual(['T1', 'T2', 'FLAIR', 'DWI', 'ADC', 'SWI']);
  });

  it('reads files from disk by path', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const path = await import('node:path');
    const os = await import('node:os');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'nt-study-'));
    try {
      const paths = await Promise.all(
        makeSeries(s('T2W_TSE', { positions: axialPositions(CENTRE, 12, 5) })).map(async (data, i) => {
          const f = path.join(dir, `${i}.dcm`);
          await writeFile(f, data);
          return f;
        }),
      );
      const res = await loadStudyVolumes([...paths, path.join(dir, 'missing.dcm')], DEFAULT_PREPROCESSING);
      expect(res.volumes.T2).toBeDefined();
      expect(res.unreadable.map((u) => path.basename(u.file))).toEqual(['missing.dcm']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('diffusion series without any b-value', () => {
  it('keeps the later image at each position (the diffusion-weighted one, after b=0)', async () => {
    const p = axialPositions(CENTRE, 12, 5);
    // Instances 1-12 (b=0) and 13-24 (b=1000, a lesion elsewhere): nothing in the headers says which is which.
    const dwi = s('DWI Asset', { positions: [...p, ...p], perSlice: (k) => ({ InstanceNumber: k + 1 }), intensity: head });
    const dark = s('DWI Asset', { SeriesInstanceUID: dwi.SeriesInstanceUID, positions: [...p, ...p], intensity: phantom(CENTRE, [-20, -10, 20]) });
    const b0Files = makeSeries(dwi).slice(0, 12);
    const b1000Files = makeSeries(dark).slice(12);
    const res = await loadStudyVolumes([...b1000Files, ...b0Files].map((data, i) => ({ name: `${i}`, data })), DEFAULT_PREPROCESSING);
    const only1000 = await loadStudyVolumes(b1000Files.map((data, i) => ({ name: `${i}`, data })), DEFAULT_PREPROCESSING);
    const used = res.series.find((r) => r.used)!;
    expect(used.sequence).toBe('DWI');
    expect(used.geometry?.notes.duplicatesDropped).toBe(12);
    expect(res.volumes.DWI).toEqual(only1000.volumes.DWI);
  });
});

describe('damaged input', () => {
  it('a truncated instance is set aside (never a zero-filled slice) and the study goes on', async () => {
    const t2 = makeSeries(s('t2_tse_tra', { positions: axialPositions(CENTRE, 12, 5) }));
    const flair = makeSeries(s('FLAIR_longTR', { positions: axialPositions(CENTRE, 12, 5) }));
    const broken = t2.map((f, i) => (i === 5 ? f.slice(0, f.byteLength - 1000) : f));
    const res = await loadStudyVolumes([...broken, ...flair].map((data, i) => ({ name: `${i}.dcm`, data })), DEFAULT_PREPROCESSING);
    expect(res.volumes.FLAIR).toBeDefined();
    expect(res.unreadable).toHaveLength(1);
    expect(res.unreadable[0].detail).toMatch(/truncated/);
    expect(res.series.find((r) => r.sequence === 'T2')).toMatchObject({ used: true, geometry: { slices: 11, notes: { gaps: 1 } } });
  });
});

describe('lossy history', () => {
  // Lossy-compressed earlier (a ratio 7 JPEG round trip) and sent on decompressed in Explicit VR Little Endian:
  // only Lossy Image Compression (0028,2110) "01" says so.
  const lossy = { LossyImageCompression: '01', LossyImageCompressionRatio: 7, LossyImageCompressionMethod: 'ISO_10918_1' };
  it('marks a series with an image of (0028,2110) "01" lossyCompressed, one of "00" or without it not; a used series by the images of its stack', async () => {
    const p = axialPositions(CENTRE, 12, 5);
    const flair = s('FLAIR_longTR', { positions: p, perSlice: (k) => (k === 3 ? lossy : {}) });
    const t2 = s('t2_tse_tra', { SeriesNumber: 5, positions: p, attributes: { LossyImageCompression: '00' } });
    const t2Short = s('t2_tse_tra', { SeriesNumber: 6, positions: p.slice(0, 10), attributes: lossy });
    // the 13th image repeats the first position and is left out (duplicate-position): its lossy history is not in the volume
    const t1 = s('t1_se_tra', { positions: [...p, p[0]], perSlice: (k) => (k === 12 ? lossy : {}) });
    const res = await loadStudyVolumes([flair, t2, t2Short, t1].flatMap(makeSeries).map((data, i) => ({ name: `${i}.dcm`, data })), DEFAULT_PREPROCESSING);
    const of = (spec: SeriesSpec) => res.series.find((r) => r.SeriesInstanceUID === spec.SeriesInstanceUID)!;
    expect(of(flair)).toMatchObject({ sequence: 'FLAIR', used: true, lossyCompressed: true });
    expect(of(t2)).toMatchObject({ sequence: 'T2', used: true });
    expect(of(t2)).not.toHaveProperty('lossyCompressed');
    expect(of(t2Short)).toMatchObject({ sequence: 'T2', used: false, reason: 'not-selected', lossyCompressed: true });
    expect(of(t1)).toMatchObject({ sequence: 'T1', used: true, dropped: [{ images: 1, reason: 'duplicate-position' }] });
    expect(of(t1)).not.toHaveProperty('lossyCompressed');
  });
});
