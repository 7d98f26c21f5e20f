// Scanners and protocols: vendor, model and field strength, and for each series the naming a hospital archive
// shows (SeriesDescription, ProtocolName, SequenceName in Siemens/GE/Philips styles, Canon in the held-out set),
// timing (TR/TE/TI/b), matrix, field of view, slices and the vendor's pixel storage habits.
import type { Rng } from './prng';
import type { ScannerSet, Sequence } from './types';

export type Vendor = 'SIEMENS' | 'GE' | 'PHILIPS' | 'CANON';

export interface ScannerModel {
  vendor: Vendor;
  manufacturer: string;
  model: string;
  fieldT: number;
  software: string;
  /** Writes the standard DiffusionBValue (0018,9087) in addition to its private b-value. */
  standardBValue: boolean;
}

const TRAIN_MODELS: ScannerModel[] = [
  { vendor: 'SIEMENS', manufacturer: 'SIEMENS', model: 'Avanto', fieldT: 1.5, software: 'syngo MR B17', standardBValue: false },
  { vendor: 'SIEMENS', manufacturer: 'SIEMENS', model: 'Skyra', fieldT: 3, software: 'syngo MR E11', standardBValue: true },
  { vendor: 'GE', manufacturer: 'GE MEDICAL SYSTEMS', model: 'Signa HDxt', fieldT: 1.5, software: '15\\LX\\MR Software release:15.0_M4_0910.a', standardBValue: true },
  { vendor: 'GE', manufacturer: 'GE MEDICAL SYSTEMS', model: 'DISCOVERY MR750', fieldT: 3, software: '25\\LX\\MR Software release:DV25.0_R02_1549.b', standardBValue: true },
  { vendor: 'PHILIPS', manufacturer: 'Philips Medical Systems', model: 'Achieva', fieldT: 1.5, software: '5.1.7\\5.1.7.2', standardBValue: true },
  { vendor: 'PHILIPS', manufacturer: 'Philips Medical Systems', model: 'Ingenia', fieldT: 3, software: '5.4.1\\5.4.1.0', standardBValue: true },
];

/** Held-out scanners: other models, a fourth vendor, other timing and resolution. */
const HELDOUT_MODELS: ScannerModel[] = [
  { vendor: 'SIEMENS', manufacturer: 'Siemens Healthineers', model: 'MAGNETOM Vida', fieldT: 3, software: 'syngo MR XA31', standardBValue: true },
  { vendor: 'SIEMENS', manufacturer: 'SIEMENS', model: 'Aera', fieldT: 1.5, software: 'syngo MR E11', standardBValue: false },
  { vendor: 'GE', manufacturer: 'GE MEDICAL SYSTEMS', model: 'SIGNA Premier', fieldT: 3, software: '28\\LX\\MR29.1_EA_2039.a', standardBValue: true },
  { vendor: 'PHILIPS', manufacturer: 'Philips', model: 'Ingenia Elition X', fieldT: 3, software: '5.7.1\\5.7.1.2', standardBValue: true },
  { vendor: 'CANON', manufacturer: 'CANON_MEC', model: 'Vantage Orian', fieldT: 1.5, software: 'V6.0', standardBValue: true },
];

/** Which image of an SWI acquisition a series holds: the T2* magnitude, the SWI-processed (phase-masked)
 *  magnitude, its minimum-intensity projection, or the phase. */
export type SwiImage = 'magnitude' | 'swi' | 'mip' | 'phase';

export interface SeriesProtocol {
  sequence: Sequence;
  /** Made from an earlier series' acquisition (ADC, SWI derived images): no scan time of its own. */
  derived?: boolean;
  swiImage?: SwiImage;
  seriesDescription: string;
  protocolName: string;
  sequenceName: string;
  scanningSequence: string[];
  sequenceVariant: string[];
  scanOptions: string[];
  acquisitionType: '2D' | '3D';
  imageType: string[];
  tr: number;
  te: number;
  ti: number | null;
  flip: number;
  etl: number;
  /** Reconstructed matrix as a multiple of the acquired one (zero-fill interpolation). */
  reconFactor: number;
  snr: number;
}

export interface StudyProtocol {
  scanner: ScannerModel;
  /** Axial T2/FLAIR stack: acquisition matrix, FOV, slice thickness and gap. */
  axial: { matrix: number; fov: number; thickness: number; spacing: number; slices: number };
  dwi: { matrix: number; fov: number; thickness: number; spacing: number; slices: number };
  t1: null | { kind: '2D' | '3D'; matrix: number; fov: number; thickness: number; spacing: number; slices: number };
  /** Susceptibility-weighted series: a 3D SWI slab of its own, or a 2D T2* gradient echo on the T2's slices. */
  swi: null | { kind: '2D' | '3D'; matrix: number; fov: number; thickness: number; spacing: number; slices: number };
  localizer: boolean;
  missing: Sequence | null;
  reversed: boolean;
  oblique: boolean;
  series: SeriesProtocol[];
  /** How pixel values are stored. */
  bitsStored: number;
  /** Philips-style non-unity RescaleSlope for magnitude images. */
  rescaleSlope: number;
  /** Display gain: stored value of white matter on T2. */
  gain: number;
}

export interface ProtocolOptions {
  fast: boolean;
  matrix?: number;
  scannerSet: ScannerSet;
}

/** CSF-nulling inversion time for a FLAIR with repetition time tr at this field. */
export function flairTi(tr: number, fieldT: number): number {
  const t1csf = fieldT >= 2 ? 4300 : 4000;
  return Math.round(t1csf * Math.log(2 / (1 + Math.exp(-tr / t1csf))));
}

function names(v: Vendor, seq: Sequence, extra: { t1kind?: '2D' | '3D'; rng: Rng }): { desc: string; proto: string; seqName: string } {
  const { rng } = extra;
  switch (v) {
    case 'SIEMENS':
      switch (seq) {
        case 'T2': { const d = rng.pick(['t2_tse_tra', 't2_tse_tra_p2', 't2_tse_tra_512', 'T2 TSE TRA']); return { desc: d, proto: d, seqName: '*tse2d1_15' }; }
        case 'FLAIR': { const d = rng.pick(['t2_tirm_tra_dark-fluid', 't2_tirm_tra_dark-fluid_p2', 'T2 FLAIR TRA']); return { desc: d, proto: d, seqName: '*tir2d1_15' }; }
        case 'DWI': { const d = rng.pick(['ep2d_diff_3scan_trace_p2', 'ep2d_diff_tra_b1000', 'DWI TRA']); return { desc: d, proto: d, seqName: '*ep_b1000t' }; }
        case 'ADC': { const d = rng.pick(['ep2d_diff_3scan_trace_p2_ADC', 'ep2d_diff_tra_b1000_ADC', 'DWI TRA_ADC']); return { desc: d, proto: d.replace(/_ADC$/, ''), seqName: '*ep_b1000t' }; }
        case 'T1': return extra.t1kind === '3D'
          ? { desc: 't1_mprage_sag_p2_iso', proto: 't1_mprage_sag_p2_iso', seqName: '*tfl3d1_16ns' }
          : { desc: 't1_se_sag', proto: 't1_se_sag', seqName: '*se2d1' };
        case 'LOCALIZER': return { desc: rng.pick(['localizer', 'AAHead_Scout_64ch-head-coil']), proto: 'localizer', seqName: '*fl2d1' };
      }
      break;
    case 'GE':
      switch (seq) {
        case 'T2': { const d = rng.pick(['Ax T2 FSE', 'AX T2 FRFSE', 'Ax T2 PROPELLER']); return { desc: d, proto: `BRAIN/${d}`, seqName: d.includes('PROP') ? 'PROPELLER' : 'FSE' }; }
        case 'FLAIR': { const d = rng.pick(['Ax T2 FLAIR', 'AX FLAIR', 'Ax T2 FLAIR fs']); return { desc: d, proto: `BRAIN/${d}`, seqName: 'FSE-IR' }; }
        case 'DWI': { const d = rng.pick(['Ax DWI 1000b', 'AX DWI ASSET', 'Ax DIFFUSION']); return { desc: d, proto: `BRAIN/${d}`, seqName: 'EPI' }; }
        case 'ADC': return { desc: rng.pick(['Apparent Diffusion Coefficient (mm2/s)', 'ADC (10^-6 mm2/s)']), proto: 'BRAIN/Ax DWI 1000b', seqName: 'EPI' };
        case 'T1': return extra.t1kind === '3D'
          ? { desc: 'Sag 3D T1 BRAVO', proto: 'BRAIN/Sag 3D T1 BRAVO', seqName: 'BRAVO' }
          : { desc: rng.pick(['Sag T1 FLAIR', 'SAG T1 SE']), proto: 'BRAIN/Sag T1', seqName: 'SE' };
        case 'LOCALIZER': return { desc: '3Plane Loc SSFSE', proto: 'BRAIN/3Plane Loc', seqName: 'SSFSE' };
      }
      break;
    case 'PHILIPS':
      switch (seq) {
        case 'T2': { const d = rng.pick(['T2W_TSE', 'T2W_TSE_TRA', 'AX T2W TSE']); return { desc: d, proto: d, seqName: 'TSE' }; }
        case 'FLAIR': { const d = rng.pick(['T2W_FLAIR', 'FLAIR_longTR', 'AX FLAIR']); return { desc: d, proto: d, seqName: 'IR_TSE' }; }
        case 'DWI': { const d = rng.pick(['DWI_SENSE', 'DWI_b1000', 'DWI SE']); return { desc: d, proto: d, seqName: 'DwiSE' }; }
        case 'ADC': return { desc: rng.pick(['dADC', 'DWI_SENSE_ADC', 'ADC']), proto: 'DWI_SENSE', seqName: 'DwiSE' };
        case 'T1': return extra.t1kind === '3D'
          ? { desc: 'T1W_3D_TFE', proto: 'T1W_3D_TFE', seqName: 'T1TFE' }
          : { desc: 'T1W_SE_SAG', proto: 'T1W_SE_SAG', seqName: 'SE' };
        case 'LOCALIZER': return { desc: 'Survey', proto: 'SURVEY', seqName: 'FFE' };
      }
      break;
    case 'CANON':
      switch (seq) {
        case 'T2': return { desc: 'T2W_FSE_AX', proto: 'Brain T2 AX', seqName: 'FSE2D' };
        case 'FLAIR': return { desc: 'FLAIR_AX', proto: 'Brain FLAIR AX', seqName: 'FLAIR2D' };
        case 'DWI': return { desc: 'DWI_AX_b1000', proto: 'Brain DWI AX', seqName: 'SE_EPI' };
        case 'ADC': return { desc: 'ADC_map', proto: 'Brain DWI AX', seqName: 'SE_EPI' };
        case 'T1': return extra.t1kind === '3D'
          ? { desc: '3D_T1W_SAG', proto: 'Brain 3D T1', seqName: 'FFE3D' }
          : { desc: 'T1W_SE_SAG', proto: 'Brain T1 SAG', seqName: 'SE2D' };
        case 'LOCALIZER': return { desc: 'Locator', proto: 'Locator', seqName: 'FFE2D' };
      }
  }
  throw new Error(`no naming for ${v} ${seq}`);
}

interface SwiName {
  desc: string;
  proto: string;
  seqName: string;
  imageType: string[];
  image: SwiImage;
}

const M = (v: Vendor, ...rest: string[]): string[] => (v === 'PHILIPS' ? ['ORIGINAL', 'PRIMARY', 'M_FFE', 'M', 'FFE', ...rest] : v === 'SIEMENS' ? ['ORIGINAL', 'PRIMARY', 'M', 'ND', 'NORM', ...rest] : ['ORIGINAL', 'PRIMARY', 'OTHER', ...rest]);

/**
 * The series an SWI or T2* acquisition leaves in the archive, as each vendor names and types them: Siemens SWI
 * stores magnitude, phase, SWI and mIP (or a subset), GE SWAN a combined magnitude (sometimes a filtered phase,
 * told apart only by its name), Philips SWIp magnitude and phase under one name (told apart by ImageType), Canon
 * FSBB; 2D T2* gradient echo is one magnitude series everywhere.
 */
function swiNames(v: Vendor, kind: '2D' | '3D', rng: Rng): SwiName[] {
  const one = (desc: string, proto: string, seqName: string, imageType: string[], image: SwiImage = 'magnitude'): SwiName => ({ desc, proto, seqName, imageType, image });
  if (kind === '2D') {
    switch (v) {
      case 'SIEMENS': { const d = rng.pick(['t2_fl2d_tra_hemo', 'T2* HEMO TRA', 't2_fl2d_tra_p2']); return [one(d, d, '*fl2d1', M(v))]; }
      case 'GE': { const d = rng.pick(['AX T2* GRE', 'Ax GRE T2*', 'AX T2* HEMO']); return [one(d, `BRAIN/${d}`, 'GRE', M(v))]; }
      case 'PHILIPS': { const d = rng.pick(['T2*_FFE', 'T2*W_FFE_TRA', 'FFE T2* TRA']); return [one(d, d, 'FFE', M(v))]; }
      case 'CANON': { const d = rng.pick(['T2*W_AX', 'T2*_FE_AX']); return [one(d, `Brain ${d}`, 'FE2D', M(v))]; }
    }
  }
  switch (v) {
    case 'SIEMENS': {
      const proto = rng.pick(['t2_swi_tra_p2', 'SWI_tra_p2', 't2_swi_tra_p2_1.5mm']);
      const mag = one('Mag_Images', proto, '*swi3d1r', M(v));
      const pha = one('Pha_Images', proto, '*swi3d1r', ['ORIGINAL', 'PRIMARY', 'P', 'ND'], 'phase');
      const swi = one('SWI_Images', proto, '*swi3d1r', ['DERIVED', 'PRIMARY', 'SWI', 'ND', 'NORM'], 'swi');
      const mip = one('mIP_Images(SW)', proto, '*swi3d1r', ['DERIVED', 'PRIMARY', 'MNIP', 'ND', 'NORM'], 'mip');
      return rng.weighted<SwiName[]>([[[mag, pha, swi, mip], 0.4], [[swi, mip], 0.35], [[one(proto, proto, '*swi3d1r', M(v, 'SWI'), 'swi')], 0.25]]);
    }
    case 'GE': {
      const d = rng.pick(['SWAN', 'Ax SWAN', 'AX SWAN 3D']);
      const mag = one(d, `BRAIN/${d}`, 'SWAN', M(v));
      return rng.chance(0.15) ? [mag, one(`${d} Filt_Phase`, `BRAIN/${d}`, 'SWAN', M(v), 'phase')] : [mag];
    }
    case 'PHILIPS': {
      const d = rng.pick(['SWIp', 'SWIp', 'SWI_3D']);
      const mag = one(d, d, 'FFE', M(v), 'swi');
      return d === 'SWIp' && rng.chance(0.5) ? [mag, one(d, d, 'FFE', ['ORIGINAL', 'PRIMARY', 'P_FFE', 'P', 'FFE'], 'phase')] : [mag];
    }
    case 'CANON': { const d = rng.pick(['FSBB', 'FSBB_AX', 'SWI_AX']); return [one(d, `Brain ${d}`, 'FE3D', M(v))]; }
  }
}

export function drawProtocol(rng: Rng, opts: ProtocolOptions): StudyProtocol {
  const held = opts.scannerSet === 'heldout';
  const scanner = rng.pick(held ? HELDOUT_MODELS : TRAIN_MODELS);
  const hi = scanner.fieldT >= 2;
  const v = scanner.vendor;

  // Axial T2/FLAIR stack covering skull base to vertex (~126 mm).
  const thickness = held ? rng.pick([3, 4, 6]) : rng.pick([4, 5, 5, 5]);
  const gapFrac = rng.pick([0, 0.1, 0.2, 0.3]);
  let spacing = Math.round(thickness * (1 + gapFrac) * 10) / 10;
  let slices = Math.max(18, Math.min(34, Math.round(126 / spacing)));
  let matrix = opts.matrix ?? (held ? rng.pick([288, 320]) : rng.pick([256, 256, 256, 288]));
  const fov = rng.pick(held ? [210, 220, 250] : [220, 230, 240]);
  let dwiMatrix = opts.matrix ? Math.max(32, Math.round((opts.matrix * 0.625) / 2) * 2) : held ? rng.pick([144, 192]) : rng.pick([128, 160]);
  let dwiThickness = rng.chance(0.7) ? thickness : 5;
  let dwiSpacing = dwiThickness === thickness ? spacing : rng.pick([5, 6, 6.5]);
  let dwiSlices = Math.max(18, Math.min(34, Math.round(126 / dwiSpacing)));
  if (opts.fast) {
    matrix = opts.matrix ?? 64;
    dwiMatrix = opts.matrix ?? 64;
    slices = 12;
    spacing = 10.5;
    dwiSlices = 12;
    dwiSpacing = 10.5;
    dwiThickness = Math.min(dwiThickness, 6);
  }

  const t1Kind: '2D' | '3D' | null = rng.chance(0.35) ? (rng.chance(0.7) ? '2D' : '3D') : null;
  let t1: StudyProtocol['t1'] = null;
  if (t1Kind === '2D') t1 = { kind: '2D', matrix: opts.fast ? 64 : 224, fov: 240, thickness: 5, spacing: 6, slices: opts.fast ? 10 : 21 };
  // 3D T1 at a modest 1.7 x 1.7 x 2 mm: a real MPRAGE is 1 mm isotropic, but that is 10 M voxels to simulate
  if (t1Kind === '3D') t1 = { kind: '3D', matrix: opts.fast ? 64 : 144, fov: 245, thickness: opts.fast ? 12 : 2, spacing: opts.fast ? 12 : 2, slices: opts.fast ? 12 : 72 };

  // SWI / T2* gradient echo in 40% of studies: a 3D slab (thin contiguous slices, its own matrix) or 2D on the
  // T2's slices
  const swiKind: '2D' | '3D' | null = rng.chance(0.4) ? (rng.chance(0.55) ? '3D' : '2D') : null;
  let swi: StudyProtocol['swi'] = null;
  if (swiKind === '2D') swi = { kind: '2D', matrix, fov, thickness, spacing, slices };
  if (swiKind === '3D') {
    const t = opts.fast ? 10.5 : rng.pick([2, 2.5, 3]);
    swi = { kind: '3D', matrix: opts.fast ? matrix : Math.max(32, Math.round((matrix * 0.875) / 2) * 2), fov, thickness: opts.fast ? 3 : t, spacing: t, slices: opts.fast ? 12 : Math.max(32, Math.min(60, Math.round(rng.uniform(96, 120) / t))) };
  }

  const missing: Sequence | null = rng.chance(0.07) ? rng.pick<Sequence>(['T2', 'FLAIR', 'ADC', 'T1']) : null;
  const recon = (): number => (opts.fast || opts.matrix ? 1 : v === 'GE' && rng.chance(held ? 0.6 : 0.2) ? 2 : 1);

  const series: SeriesProtocol[] = [];
  const add = (seq: Sequence, p: Omit<SeriesProtocol, 'sequence' | 'seriesDescription' | 'protocolName' | 'sequenceName'>): void => {
    const n = names(v, seq, { t1kind: t1Kind ?? undefined, rng });
    series.push({ sequence: seq, seriesDescription: n.desc, protocolName: n.proto, sequenceName: n.seqName, ...p });
  };
  const orig = ['ORIGINAL', 'PRIMARY', v === 'PHILIPS' ? 'M_SE' : 'M', v === 'PHILIPS' ? 'M' : 'ND'];
  const localizer = rng.chance(0.3);
  if (localizer)
    add('LOCALIZER', {
      scanningSequence: ['GR'], sequenceVariant: ['SP'], scanOptions: [], acquisitionType: '2D',
      imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'], tr: hi ? 7.6 : 8.6, te: hi ? 3.7 : 4.0, ti: null, flip: 20, etl: 1, reconFactor: 1, snr: 14,
    });
  if (t1 && t1.kind === '2D')
    add('T1', {
      scanningSequence: ['SE'], sequenceVariant: ['SP', 'OSP'], scanOptions: ['SAT1'], acquisitionType: '2D', imageType: orig,
      tr: rng.uniform(420, 650), te: rng.uniform(8, 15), ti: null, flip: 90, etl: 1, reconFactor: recon(), snr: 28,
    });
  const t2tr = held ? rng.uniform(5500, 7500) : rng.uniform(3500, 6000);
  add('T2', {
    scanningSequence: ['SE'], sequenceVariant: ['SK', 'SP', 'OSP'], scanOptions: ['PFP', 'FS'].slice(0, rng.int(0, 1)), acquisitionType: '2D',
    imageType: orig, tr: t2tr, te: held ? rng.uniform(100, 120) : rng.uniform(85, 105), ti: null, flip: 150, etl: rng.int(10, 20), reconFactor: recon(), snr: 30,
  });
  const ftr = held ? rng.uniform(10000, 12000) : rng.uniform(8000, 10000);
  add('FLAIR', {
    scanningSequence: ['SE', 'IR'], sequenceVariant: ['SK', 'SP', 'MP', 'OSP'], scanOptions: ['IR'], acquisitionType: '2D', imageType: orig,
    tr: ftr, te: held ? rng.uniform(130, 150) : rng.uniform(95, 130), ti: flairTi(ftr, scanner.fieldT) + rng.int(-40, 40), flip: 150, etl: rng.int(14, 24),
    reconFactor: recon(), snr: 22,
  });
  const dtr = rng.uniform(3000, 7000);
  const dte = hi ? rng.uniform(55, 75) : rng.uniform(75, 100);
  const dwiRecon = opts.fast ? 1 : rng.chance(0.3) ? 2 : 1;
  add('DWI', {
    scanningSequence: v === 'SIEMENS' ? ['EP'] : ['SE', 'EP'], sequenceVariant: ['SK', 'SP'], scanOptions: ['PFP', 'FS'], acquisitionType: '2D',
    imageType: v === 'SIEMENS' ? ['ORIGINAL', 'PRIMARY', 'DIFFUSION', 'TRACEW', 'ND'] : orig, tr: dtr, te: dte, ti: null, flip: 90, etl: 1,
    reconFactor: dwiRecon, snr: 26,
  });
  add('ADC', {
    scanningSequence: v === 'SIEMENS' ? ['EP'] : ['SE', 'EP'], sequenceVariant: ['SK', 'SP'], scanOptions: ['PFP', 'FS'], acquisitionType: '2D',
    imageType: ['DERIVED', 'PRIMARY', 'DIFFUSION', 'ADC'], tr: dtr, te: dte, ti: null, flip: 90, etl: 1, reconFactor: dwiRecon, snr: 26,
  });
  if (swi) {
    const tr = swi.kind === '3D' ? (hi ? rng.uniform(27, 40) : rng.uniform(40, 50)) : rng.uniform(450, 800);
    const te = swi.kind === '3D' ? (hi ? rng.uniform(18, 25) : rng.uniform(35, 45)) : hi ? rng.uniform(12, 20) : rng.uniform(15, 25);
    const flip = swi.kind === '3D' ? rng.uniform(10, 15) : rng.uniform(18, 25);
    swiNames(v, swi.kind, rng).forEach((n, i) =>
      series.push({
        sequence: n.image === 'phase' ? 'SWI_PHASE' : 'SWI', derived: i > 0, swiImage: n.image, seriesDescription: n.desc, protocolName: n.proto, sequenceName: n.seqName,
        scanningSequence: ['GR'], sequenceVariant: swi.kind === '3D' ? ['SP'] : ['SP', 'OSP'], scanOptions: [], acquisitionType: swi.kind, imageType: n.imageType,
        tr, te, ti: null, flip, etl: 1, reconFactor: 1, snr: swi.kind === '3D' ? 26 : 20,
      }),
    );
  }
  if (t1 && t1.kind === '3D')
    add('T1', {
      scanningSequence: ['GR', 'IR'], sequenceVariant: ['SK', 'SP', 'MP'], scanOptions: ['IR'], acquisitionType: '3D', imageType: orig,
      tr: hi ? 2300 : 2000, te: hi ? 2.3 : 3.1, ti: hi ? 900 : 1000, flip: 8, etl: 1, reconFactor: 1, snr: 22,
    });
  const kept = series.filter((s) => s.sequence !== missing);
  return {
    scanner,
    axial: { matrix, fov, thickness, spacing, slices },
    dwi: { matrix: dwiMatrix, fov: opts.fast ? fov : rng.pick([220, 230, 240]), thickness: dwiThickness, spacing: dwiSpacing, slices: dwiSlices },
    t1,
    swi,
    localizer,
    missing: kept.length < series.length ? missing : null,
    reversed: rng.chance(0.3),
    oblique: rng.chance(0.7),
    series: kept,
    bitsStored: v === 'GE' ? 16 : 12,
    rescaleSlope: v === 'PHILIPS' ? Math.round(rng.uniform(0.8, 3.5) * 1e5) / 1e5 : 1,
    gain: rng.uniform(300, 900),
  };
}
