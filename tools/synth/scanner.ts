// Scanners and protocols: vendor, model and field strength; the ranges every protocol setting is drawn from, one
// table for the training scanners and one for the held-out scanners whose settings lie outside training (see
// docs/synthetic-cohort.md); and per study the series list with names (naming.ts), timing (TR/TE/TI/flip),
// matrix, field of view, slices, stack tilt and order, coil bias field, SNR and the vendor's storage habits.
import { magnitudeImageType, seriesNames, spinEchoImageType, swiNames, type SwiImage, type Vendor } from './naming';
import type { Rng } from './prng';
import type { ScannerSet, Sequence } from './types';

export type { SwiImage, Vendor } from './naming';

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

/** Held-out scanners: other models of the training vendors, and three vendors never seen in training (Canon,
 *  United Imaging, Fujifilm/Hitachi, one of them at 1.2 T). */
const HELDOUT_MODELS: ScannerModel[] = [
  { vendor: 'SIEMENS', manufacturer: 'Siemens Healthineers', model: 'MAGNETOM Vida', fieldT: 3, software: 'syngo MR XA31', standardBValue: true },
  { vendor: 'SIEMENS', manufacturer: 'SIEMENS', model: 'Aera', fieldT: 1.5, software: 'syngo MR E11', standardBValue: false },
  { vendor: 'GE', manufacturer: 'GE MEDICAL SYSTEMS', model: 'SIGNA Premier', fieldT: 3, software: '28\\LX\\MR29.1_EA_2039.a', standardBValue: true },
  { vendor: 'PHILIPS', manufacturer: 'Philips', model: 'Ingenia Elition X', fieldT: 3, software: '5.7.1\\5.7.1.2', standardBValue: true },
  { vendor: 'CANON', manufacturer: 'CANON_MEC', model: 'Vantage Orian', fieldT: 1.5, software: 'V6.0', standardBValue: true },
  { vendor: 'CANON', manufacturer: 'CANON_MEC', model: 'Vantage Galan 3T', fieldT: 3, software: 'V7.0', standardBValue: true },
  { vendor: 'UIH', manufacturer: 'UIH', model: 'uMR 580', fieldT: 1.5, software: 'R002', standardBValue: true },
  { vendor: 'UIH', manufacturer: 'UIH', model: 'uMR 790', fieldT: 3, software: 'R004', standardBValue: true },
  { vendor: 'HITACHI', manufacturer: 'FUJIFILM Healthcare Corporation', model: 'ECHELON Smart', fieldT: 1.5, software: 'V7.0A', standardBValue: true },
  { vendor: 'HITACHI', manufacturer: 'Hitachi Medical Corporation', model: 'OASIS', fieldT: 1.2, software: 'V5.2', standardBValue: true },
];

/** A closed interval; a list of them is one setting's range (the held-out ranges often lie on both sides). */
export type Span = readonly [number, number];
export type Spans = readonly Span[];

/** What each protocol setting is drawn from. Field-dependent timings have a 1.5 T (also 1.2 T) and a 3 T range. */
export interface ProtocolRanges {
  /** Axial T2/FLAIR slice thickness (mm, drawn in 0.5 mm steps) and inter-slice gap (fraction of it). */
  thickness: Spans;
  gap: Spans;
  /** Acquisition matrix without --matrix (choices), and with --matrix M the factor applied to M. */
  matrix: readonly number[];
  matrixScale: Spans;
  dwiMatrix: readonly number[];
  fov: Spans;
  /** DWI slice thickness when not prescribed on the T2's slices (30%), mm. */
  dwiThickness: Spans;
  /** Stack tilt about the left-right axis beyond the head's own pose (degrees, either way). */
  tiltDeg: Spans;
  /** Probability of each: stacks aligned to the head (else the scanner's axes); slices stored inferior-last. */
  oblique: number;
  reversed: number;
  t2: { tr: Spans; te: Spans };
  flair: { tr: Spans; te: Spans; tiOffset: Spans };
  dwi: { tr: Spans; te15: Spans; te3: Spans };
  t1se: { tr: Spans; te: Spans };
  mprage: { tr: Spans; ti: Spans };
  swi3d: { tr15: Spans; tr3: Spans; te15: Spans; te3: Spans; flip: Spans; thickness: Spans };
  gre2d: { tr: Spans; te15: Spans; te3: Spans; flip: Spans };
  /** Multiplies every series' nominal SNR. */
  snrScale: Spans;
  /** Receive-coil bias field: log-amplitude of its two smooth components, their wavelength (mm), a linear
   *  gradient (log per 100 mm), and the central brightening at 3 T. */
  bias: { amp: Spans; wavelength: Spans; gradient: Spans; dielectric: Spans };
  /** Probability of a 2x zero-filled reconstruction of T2/FLAIR/T1 (without --matrix): GE, others. */
  recon2x: { ge: number; other: number };
  /** Probability that a vendor stores 12-bit data the other way from its habit (GE 16-bit, others 12). */
  bitsSwap: number;
  /** Display gain: stored value of white matter on T2. */
  gain: Spans;
}

export const RANGES: Record<ScannerSet, ProtocolRanges> = {
  train: {
    thickness: [[4, 6]],
    gap: [[0, 0.3]],
    matrix: [224, 256, 256, 288],
    matrixScale: [[0.875, 1.125]],
    dwiMatrix: [128, 160],
    fov: [[220, 240]],
    dwiThickness: [[4, 6]],
    tiltDeg: [[-6, 6]],
    oblique: 0.7,
    reversed: 0.5,
    t2: { tr: [[3000, 6000]], te: [[80, 105]] },
    flair: { tr: [[8000, 10000]], te: [[90, 130]], tiOffset: [[-40, 40]] },
    dwi: { tr: [[3000, 7000]], te15: [[75, 100]], te3: [[55, 75]] },
    t1se: { tr: [[420, 650]], te: [[8, 15]] },
    mprage: { tr: [[1950, 2350]], ti: [[850, 1050]] },
    swi3d: { tr15: [[40, 50]], tr3: [[27, 40]], te15: [[35, 45]], te3: [[18, 25]], flip: [[10, 15]], thickness: [[2, 3]] },
    gre2d: { tr: [[450, 800]], te15: [[15, 25]], te3: [[12, 20]], flip: [[18, 25]] },
    snrScale: [[0.7, 1.4]],
    bias: { amp: [[0.03, 0.22]], wavelength: [[220, 480]], gradient: [[-0.12, 0.12]], dielectric: [[0.05, 0.3]] },
    recon2x: { ge: 0.2, other: 0.1 },
    bitsSwap: 0.15,
    gain: [[300, 900]],
  },
  heldout: {
    thickness: [[2.5, 3.5], [6.5, 8]],
    gap: [[0, 0.3]],
    matrix: [192, 320, 384],
    matrixScale: [[0.7, 0.8], [1.2, 1.3]],
    dwiMatrix: [112, 192],
    fov: [[195, 210], [250, 260]],
    dwiThickness: [[2.5, 3.5], [6.5, 7]],
    tiltDeg: [[-15, -9], [9, 15]],
    oblique: 0.7,
    reversed: 0.5,
    t2: { tr: [[6500, 8500]], te: [[62, 75], [110, 130]] },
    flair: { tr: [[6000, 7500]], te: [[135, 155]], tiOffset: [[-120, -50]] },
    dwi: { tr: [[7500, 10000]], te15: [[102, 115]], te3: [[44, 53]] },
    t1se: { tr: [[300, 400], [700, 850]], te: [[5, 7.5], [16, 20]] },
    mprage: { tr: [[1600, 1850], [2500, 2800]], ti: [[650, 800], [1150, 1250]] },
    swi3d: { tr15: [[52, 60]], tr3: [[20, 25]], te15: [[28, 33], [48, 52]], te3: [[12, 16], [27, 32]], flip: [[7, 9], [17, 20]], thickness: [[1.5, 1.5], [3.5, 4]] },
    gre2d: { tr: [[300, 420], [850, 1000]], te15: [[27, 32]], te3: [[8, 11], [22, 26]], flip: [[12, 16], [28, 32]] },
    snrScale: [[0.4, 0.62]],
    bias: { amp: [[0.25, 0.38]], wavelength: [[140, 200]], gradient: [[-0.25, -0.15], [0.15, 0.25]], dielectric: [[0.32, 0.5]] },
    recon2x: { ge: 0.6, other: 0.5 },
    bitsSwap: 0.3,
    gain: [[120, 280], [1000, 1800]],
  },
};

/** A value in a range: a span chosen in proportion to its width (a point span counts 1 mm), then uniform in it. */
export function drawIn(rng: Rng, spans: Spans): number {
  const widths = spans.map(([a, b]) => Math.max(b - a, 1e-3));
  const total = widths.reduce((x, y) => x + y, 0);
  let r = rng.next() * total;
  for (let i = 0; i < spans.length; i++) {
    if (r < widths[i]! || i === spans.length - 1) return spans[i]![0] + (spans[i]![1] - spans[i]![0]) * Math.min(1, r / widths[i]!);
    r -= widths[i]!;
  }
  return spans[0]![0];
}

const step = (v: number, s: number): number => Math.round(v / s) * s;
const even = (v: number): number => Math.max(32, Math.round(v / 2) * 2);

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

export interface CoilField {
  k1: [number, number, number];
  ph1: number;
  k2: [number, number, number];
  ph2: number;
  amp: number;
  /** Linear log-gradient per mm (the head nearer some coil elements than others). */
  grad: [number, number, number];
  /** Central brightening (dielectric effect) at 3 T. */
  centre: number;
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
  /** Extra stack tilt about the left-right axis (degrees). */
  tiltDeg: number;
  series: SeriesProtocol[];
  coil: CoilField;
  /** Multiplies every series' nominal SNR. */
  snrScale: number;
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
  /** Share of studies with SWI or T2* gradient echo (SynthOptions.swiShare). */
  swiShare: number;
}

/** CSF-nulling inversion time for a FLAIR with repetition time tr at this field. */
export function flairTi(tr: number, fieldT: number): number {
  const t1csf = fieldT >= 2 ? 4300 : 4000;
  return Math.round(t1csf * Math.log(2 / (1 + Math.exp(-tr / t1csf))));
}

/** The coil's smooth receive field for one study. */
export function drawCoil(rng: Rng, fieldT: number, r: ProtocolRanges['bias']): CoilField {
  const dir = (): [number, number, number] => {
    const z = rng.uniform(-1, 1);
    const a = rng.uniform(0, 2 * Math.PI);
    const s = Math.sqrt(1 - z * z);
    const k = (2 * Math.PI) / drawIn(rng, r.wavelength);
    return [k * s * Math.cos(a), k * s * Math.sin(a), k * z];
  };
  const g = drawIn(rng, r.gradient) / 100;
  const gz = rng.uniform(-1, 1);
  const ga = rng.uniform(0, 2 * Math.PI);
  const gs = Math.sqrt(1 - gz * gz);
  return {
    k1: dir(), ph1: rng.uniform(0, 6.283), k2: dir(), ph2: rng.uniform(0, 6.283), amp: drawIn(rng, r.amp),
    grad: [g * gs * Math.cos(ga), g * gs * Math.sin(ga), g * gz],
    centre: fieldT >= 2 ? drawIn(rng, r.dielectric) : 0,
  };
}

export function drawProtocol(rng: Rng, opts: ProtocolOptions): StudyProtocol {
  const R = RANGES[opts.scannerSet];
  const held = opts.scannerSet === 'heldout';
  const scanner = rng.pick(held ? HELDOUT_MODELS : TRAIN_MODELS);
  const hi = scanner.fieldT >= 2;
  const v = scanner.vendor;

  // Axial T2/FLAIR stack covering skull base to vertex (~126 mm; thin slices may cover less).
  const thickness = step(drawIn(rng, R.thickness), 0.5);
  const gapFrac = step(drawIn(rng, R.gap), 0.05);
  let spacing = Math.round(thickness * (1 + gapFrac) * 10) / 10;
  let slices = Math.max(18, Math.min(44, Math.round(126 / spacing)));
  let matrix = opts.matrix !== undefined ? (opts.fast ? opts.matrix : even(opts.matrix * drawIn(rng, R.matrixScale))) : rng.pick(R.matrix);
  const fov = step(drawIn(rng, R.fov), 5);
  let dwiMatrix = opts.matrix !== undefined ? even(matrix * 0.625) : rng.pick(R.dwiMatrix);
  let dwiThickness = rng.chance(0.7) ? thickness : step(drawIn(rng, R.dwiThickness), 0.5);
  let dwiSpacing = dwiThickness === thickness ? spacing : Math.round(dwiThickness * (1 + step(drawIn(rng, R.gap), 0.05)) * 10) / 10;
  let dwiSlices = Math.max(18, Math.min(44, Math.round(126 / dwiSpacing)));
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
  // with --matrix the T1 follows it (1.25x for 2D, 0.875x with 2.5 mm partitions for 3D), else its own matrix
  const scaled = opts.matrix !== undefined && !opts.fast;
  if (t1Kind === '2D') t1 = { kind: '2D', matrix: opts.fast ? 64 : scaled ? even(matrix * 1.25) : 224, fov: 240, thickness: 5, spacing: 6, slices: opts.fast ? 10 : 21 };
  // 3D T1 at a modest 1.7 x 1.7 x 2 mm: a real MPRAGE is 1 mm isotropic, but that is 10 M voxels to simulate
  if (t1Kind === '3D') {
    const part = opts.fast ? 12 : scaled ? 2.5 : 2;
    t1 = { kind: '3D', matrix: opts.fast ? 64 : scaled ? even(matrix * 0.875) : 144, fov: 245, thickness: part, spacing: part, slices: opts.fast ? 12 : scaled ? 60 : 72 };
  }

  // SWI / T2* gradient echo in opts.swiShare of studies (40% by default): a 3D slab (thin contiguous partitions, its own
  // matrix) or 2D on the T2's slices
  const swiKind: '2D' | '3D' | null = rng.chance(opts.swiShare) ? (rng.chance(0.55) ? '3D' : '2D') : null;
  let swi: StudyProtocol['swi'] = null;
  if (swiKind === '2D') swi = { kind: '2D', matrix, fov, thickness, spacing, slices };
  if (swiKind === '3D') {
    const t = step(drawIn(rng, R.swi3d.thickness), 0.5);
    swi = opts.fast
      ? { kind: '3D', matrix, fov, thickness: 3, spacing: 10.5, slices: 12 }
      : { kind: '3D', matrix: even(matrix * 0.75), fov, thickness: t, spacing: t, slices: Math.max(28, Math.min(60, Math.round(rng.uniform(90, 115) / t))) };
  }

  const missing: Sequence | null = rng.chance(0.07) ? rng.pick<Sequence>(['T2', 'FLAIR', 'ADC', 'T1']) : null;
  const recon = (): number => (opts.fast || opts.matrix ? 1 : rng.chance(v === 'GE' ? R.recon2x.ge : R.recon2x.other) ? 2 : 1);

  const series: SeriesProtocol[] = [];
  const add = (seq: Exclude<Sequence, 'SWI' | 'SWI_PHASE'>, p: Omit<SeriesProtocol, 'sequence' | 'seriesDescription' | 'protocolName' | 'sequenceName'>): void => {
    const n = seriesNames(v, seq, t1Kind ?? undefined, rng);
    series.push({ sequence: seq, seriesDescription: n.desc, protocolName: n.proto, sequenceName: n.seqName, ...p });
  };
  const orig = spinEchoImageType(v);
  const localizer = rng.chance(0.3);
  if (localizer)
    add('LOCALIZER', {
      scanningSequence: ['GR'], sequenceVariant: ['SP'], scanOptions: [], acquisitionType: '2D',
      imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'], tr: hi ? 7.6 : 8.6, te: hi ? 3.7 : 4.0, ti: null, flip: 20, etl: 1, reconFactor: 1, snr: 14,
    });
  if (t1 && t1.kind === '2D')
    add('T1', {
      scanningSequence: ['SE'], sequenceVariant: ['SP', 'OSP'], scanOptions: ['SAT1'], acquisitionType: '2D', imageType: orig,
      tr: drawIn(rng, R.t1se.tr), te: drawIn(rng, R.t1se.te), ti: null, flip: 90, etl: 1, reconFactor: recon(), snr: 28,
    });
  add('T2', {
    scanningSequence: ['SE'], sequenceVariant: ['SK', 'SP', 'OSP'], scanOptions: ['PFP', 'FS'].slice(0, rng.int(0, 1)), acquisitionType: '2D',
    imageType: orig, tr: drawIn(rng, R.t2.tr), te: drawIn(rng, R.t2.te), ti: null, flip: 150, etl: rng.int(10, 20), reconFactor: recon(), snr: 30,
  });
  const ftr = drawIn(rng, R.flair.tr);
  add('FLAIR', {
    scanningSequence: ['SE', 'IR'], sequenceVariant: ['SK', 'SP', 'MP', 'OSP'], scanOptions: ['IR'], acquisitionType: '2D', imageType: orig,
    tr: ftr, te: drawIn(rng, R.flair.te), ti: flairTi(ftr, scanner.fieldT) + Math.round(drawIn(rng, R.flair.tiOffset)), flip: 150, etl: rng.int(14, 24),
    reconFactor: recon(), snr: 22,
  });
  const dtr = drawIn(rng, R.dwi.tr);
  const dte = drawIn(rng, hi ? R.dwi.te3 : R.dwi.te15);
  const dwiRecon = opts.fast ? 1 : rng.chance(0.3) ? 2 : 1;
  const epi = v === 'SIEMENS' || v === 'UIH' ? ['EP'] : ['SE', 'EP'];
  add('DWI', {
    scanningSequence: epi, sequenceVariant: ['SK', 'SP'], scanOptions: ['PFP', 'FS'], acquisitionType: '2D',
    imageType: v === 'SIEMENS' ? ['ORIGINAL', 'PRIMARY', 'DIFFUSION', 'TRACEW', 'ND'] : orig, tr: dtr, te: dte, ti: null, flip: 90, etl: 1,
    reconFactor: dwiRecon, snr: 26,
  });
  add('ADC', {
    scanningSequence: epi, sequenceVariant: ['SK', 'SP'], scanOptions: ['PFP', 'FS'], acquisitionType: '2D', derived: true,
    imageType: ['DERIVED', 'PRIMARY', 'DIFFUSION', 'ADC'], tr: dtr, te: dte, ti: null, flip: 90, etl: 1, reconFactor: dwiRecon, snr: 26,
  });
  if (swi) {
    const g = R.gre2d;
    const s3 = R.swi3d;
    const tr = swi.kind === '3D' ? drawIn(rng, hi ? s3.tr3 : s3.tr15) : drawIn(rng, g.tr);
    const te = swi.kind === '3D' ? drawIn(rng, hi ? s3.te3 : s3.te15) : drawIn(rng, hi ? g.te3 : g.te15);
    const flip = drawIn(rng, swi.kind === '3D' ? s3.flip : g.flip);
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
      scanningSequence: ['GR', 'IR'], sequenceVariant: ['SK', 'SP', 'MP'], scanOptions: ['IR'], acquisitionType: '3D', imageType: v === 'PHILIPS' ? magnitudeImageType(v) : orig,
      tr: drawIn(rng, R.mprage.tr), te: hi ? 2.3 : 3.1, ti: drawIn(rng, R.mprage.ti), flip: 8, etl: 1, reconFactor: 1, snr: 22,
    });
  const kept = series.filter((s) => s.sequence !== missing);
  const habit16 = v === 'GE' || v === 'UIH' || v === 'CANON';
  const bitsStored = habit16 !== rng.chance(R.bitsSwap) ? 16 : 12;
  // 12-bit storage leaves headroom for CSF at about 5x white matter only with a modest gain
  const gain = bitsStored === 12 ? Math.min(650, drawIn(rng, R.gain)) : drawIn(rng, R.gain);
  return {
    scanner,
    axial: { matrix, fov, thickness, spacing, slices },
    dwi: { matrix: dwiMatrix, fov: opts.fast ? fov : step(drawIn(rng, R.fov), 5), thickness: dwiThickness, spacing: dwiSpacing, slices: dwiSlices },
    t1,
    swi,
    localizer,
    missing: kept.length < series.length ? missing : null,
    reversed: rng.chance(R.reversed),
    oblique: rng.chance(R.oblique),
    tiltDeg: drawIn(rng, R.tiltDeg),
    series: kept,
    coil: drawCoil(rng, scanner.fieldT, R.bias),
    snrScale: drawIn(rng, R.snrScale),
    bitsStored,
    rescaleSlope: v === 'PHILIPS' ? Math.round(rng.uniform(0.8, 3.5) * 1e5) / 1e5 : 1,
    gain,
  };
}
