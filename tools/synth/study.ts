// One synthetic study, in memory: draws findings, subject and scanner protocol from the study's seeded streams,
// renders each acquisition geometry once, makes every series' images (signal, bias, noise, ADC fit, SWI phase
// mask, mIP and phase, interpolation, quantisation), encodes them as DICOM, and writes the matching report and
// ground-truth labels.
// generateStudy(seed, index, options) is deterministic and independent of any other study.
import { drawFindingTypes, drawSubject, type Subject, type Vec3 } from './anatomy';
import { createDicomWriter, MR_IMAGE_STORAGE, type DicomWriter, type PrivateElement } from './dicom';
import { makeStack, stackGrid, type Stack, type StackSpec } from './geometry';
import { addRicianNoise, biasField, fitAdc, minimumProjection, phaseImage, quantise, signal, swiPhaseMask, upsample, whiteMatterSignal } from './imaging';
import { foldTable, renderTissue, resampleInPlane, type FoldTable, type TissueMaps } from './phantom';
import { derivedUid, hashWords, Rng } from './prng';
import { writeReport } from './report';
import { drawProtocol, type SeriesProtocol, type StudyProtocol } from './scanner';
import { T, tissueTable } from './tissue';
import { DEFAULT_OPTIONS, type DicomFile, type GeneratedStudy, type PreviewSlice, type SeriesLabel, type StudyLabels, type SynthOptions } from './types';

export const GENERATOR_VERSION = '1.1.0';
const B_VALUE = 1000;

export interface StudyContext {
  writer: DicomWriter;
}

export function createStudyContext(): StudyContext {
  return { writer: createDicomWriter() };
}

const SURNAMES = ['ALPHA', 'BRAVO', 'CEDAR', 'DELTA', 'EMBER', 'FJORD', 'GLADE', 'HARBOR', 'INDIGO', 'JUNIPER', 'KESTREL', 'LARCH', 'MAPLE', 'NOVA', 'ORCHID', 'PEBBLE', 'QUARTZ', 'RAVEN', 'SPRUCE', 'TUNDRA', 'UMBER', 'VESPER', 'WILLOW', 'YARROW', 'ZEPHYR'];
const GIVEN = ['ASH', 'BLAIR', 'CORIN', 'DALE', 'EDEN', 'FINN', 'GRAY', 'HOLLIS', 'IVY', 'JUDE', 'KIT', 'LANE', 'MORGAN', 'NOEL', 'OAKLEY', 'PARKER', 'QUINN', 'REESE', 'SAGE', 'TATE'];

const pad = (v: number, n = 2): string => String(v).padStart(n, '0');
const ymd = (d: Date): string => `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}`;
const hms = (d: Date): string => `${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}`;
const ds = (v: number, digits = 4): string => String(Math.round(v * 10 ** digits) / 10 ** digits);

/** Accession number for a study: unique per (seed, index), at most 16 characters. */
export function accessionNumber(seed: number | string, index: number): string {
  const w = hashWords('accession', seed);
  return `A${pad(w[0]! % 10000, 4)}${pad(index, 7)}`;
}

export function studyInstanceUid(seed: number | string, index: number): string {
  return derivedUid(seed, index, 'study');
}

interface SeriesOutput {
  label: SeriesLabel;
  files: DicomFile[];
  preview: PreviewSlice | null;
}

export interface StudyPlan {
  opts: SynthOptions;
  protocol: StudyProtocol;
  subject: Subject;
}

/** The cheap part of a study: findings, subject and protocol, without any image. */
export function planStudy(seed: number | string, index: number, options: Partial<SynthOptions> = {}): StudyPlan {
  const opts: SynthOptions = { ...DEFAULT_OPTIONS, ...options };
  const findingTypes = drawFindingTypes(new Rng(seed, index, 'findings', opts.normalFraction), opts.normalFraction);
  const protocol = drawProtocol(new Rng(seed, index, 'scanner', opts.scannerSet), { fast: opts.fast, matrix: opts.matrix, scannerSet: opts.scannerSet, swiShare: opts.swiShare });
  const subject = drawSubject(new Rng(seed, index, 'anatomy'), findingTypes, protocol.scanner.fieldT);
  return { opts, protocol, subject };
}

/** Report text for a plan's labels (series are only needed for the technique line). */
export function reportFor(seed: number | string, index: number, plan: StudyPlan, labels: StudyLabels): string {
  // a phase image is not a sequence a report lists
  const sequences = (labels.series.length ? labels.series.map((s) => s.sequence) : plan.protocol.series.map((s) => s.sequence)).filter((s) => s !== 'SWI_PHASE');
  return writeReport(labels, new Rng(seed, index, 'report', plan.opts.phrasingSet), plan.opts.phrasingSet, {
    sequences,
    fieldT: plan.protocol.scanner.fieldT,
  });
}

export function generateStudy(seed: number | string, index: number, options: Partial<SynthOptions> = {}, ctx: StudyContext = createStudyContext()): GeneratedStudy {
  const plan = planStudy(seed, index, options);
  const { opts, protocol, subject } = plan;
  const fieldT = protocol.scanner.fieldT;
  const noiseRng = new Rng(seed, index, 'noise');
  const coil = protocol.coil;

  const StudyInstanceUID = studyInstanceUid(seed, index);
  const AccessionNumber = accessionNumber(seed, index);
  const FrameOfReferenceUID = derivedUid(seed, index, 'frame');
  const base = new Date(Date.UTC(2025, 0, 1) + (hashWords('date', seed)[0]! % 300) * 86400000);
  const studyStart = new Date(base.getTime() + Math.floor(index / 24) * 86400000 + (7 * 3600 + (index % 24) * 1500) * 1000);
  const personRng = new Rng(seed, index, 'person');
  const birth = new Date(studyStart.getTime() - (subject.age * 365.25 + personRng.int(0, 364)) * 86400000);
  const patient = {
    PatientName: `SYNTH-${personRng.pick(SURNAMES)}^${personRng.pick(GIVEN)}`,
    PatientID: `SYN${pad(hashWords('pid', seed, index)[0]! % 100000000, 8)}`,
    PatientBirthDate: ymd(birth),
    PatientSex: subject.sex,
    PatientAge: `${pad(subject.age, 3)}Y`,
  };

  const centre = subjectCentre(subject);
  const axialSpec: StackSpec = { plane: 'axial', centre: [0, 8, 15], fov: protocol.axial.fov, matrix: protocol.axial.matrix, slices: protocol.axial.slices, thickness: protocol.axial.thickness, spacing: protocol.axial.spacing, oblique: protocol.oblique, tiltDeg: protocol.tiltDeg, reversed: protocol.reversed };
  const dwiSpec: StackSpec = { ...axialSpec, fov: protocol.dwi.fov, matrix: protocol.dwi.matrix, slices: protocol.dwi.slices, thickness: protocol.dwi.thickness, spacing: protocol.dwi.spacing };
  const swi = protocol.swi;
  const swiSpec: StackSpec | null = swi && { ...axialSpec, fov: swi.fov, matrix: swi.matrix, slices: swi.slices, thickness: swi.thickness, spacing: swi.spacing };
  // veins, sinus and skull-base dephasing are drawn only where a T2*-weighted series will show them
  const susceptibility = (key: string): boolean => key === 'swi' || (key === 'axial' && swi?.kind === '2D');
  const fold = foldTable(subject, protocol.axial.fov / protocol.axial.matrix > 2 ? 3 : 1.5);
  const stacks = new Map<string, Stack>();
  const maps = new Map<string, TissueMaps>();
  const geometry = (key: string, spec: StackSpec): { stack: Stack; maps: TissueMaps } => {
    if (!stacks.has(key)) {
      const st = makeStack(subject, spec);
      stacks.set(key, st);
      maps.set(key, renderTissue(subject, fieldT, stackGrid(st), fold, { susceptibility: susceptibility(key) }));
    }
    return { stack: stacks.get(key)!, maps: maps.get(key)! };
  };

  const biasCache = new Map<Stack, Float32Array>();
  const bias = (st: Stack): Float32Array => {
    if (!biasCache.has(st)) biasCache.set(st, biasField(stackGrid(st), coil, centre));
    return biasCache.get(st)!;
  };
  const pairs = new Map<Stack, { s0: Float32Array; s1: Float32Array; sigma: number }>();
  const swiAcquisitions = new Map<Stack, { clean: Float32Array; mag: Float32Array }>();
  const outputs: SeriesOutput[] = [];
  let seriesNumber = 0;
  let lastSeriesNumber = 0;
  let acquisitionMinutes = 0;
  const common = {
    SpecificCharacterSet: 'ISO_IR 100',
    SOPClassUID: MR_IMAGE_STORAGE,
    StudyDate: ymd(studyStart),
    StudyTime: hms(studyStart),
    AccessionNumber,
    Modality: 'MR',
    Manufacturer: protocol.scanner.manufacturer,
    InstitutionName: 'Synthetic General Hospital',
    ReferringPhysicianName: '',
    StationName: `SYNMR${protocol.scanner.vendor.slice(0, 2)}${Math.round(fieldT * 10)}`,
    StudyDescription: new Rng(seed, index, 'studydesc').pick(['MRI BRAIN', 'MR HEAD WITHOUT CONTRAST', 'MRI BRAIN STROKE PROTOCOL', 'MR BRAIN ROUTINE']),
    ManufacturerModelName: protocol.scanner.model,
    ...patient,
    BodyPartExamined: 'BRAIN',
    MagneticFieldStrength: fieldT,
    ImagingFrequency: ds(42.577478 * fieldT, 6),
    ImagedNucleus: '1H',
    SoftwareVersions: protocol.scanner.software,
    DeviceSerialNumber: String(10000 + (hashWords('device', seed, protocol.scanner.model)[0]! % 90000)),
    PatientPosition: 'HFS',
    StudyInstanceUID,
    StudyID: String(1 + (index % 9999)),
    FrameOfReferenceUID,
    PositionReferenceIndicator: '',
  };

  for (const sp of protocol.series) {
    seriesNumber = nextSeriesNumber(protocol, sp, seriesNumber, lastSeriesNumber);
    const derived = sp.sequence === 'ADC' || sp.derived === true;
    if (!derived) lastSeriesNumber = seriesNumber;
    acquisitionMinutes += sp.sequence === 'LOCALIZER' ? 0.5 : derived ? 0 : 2.5 + (index % 3) * 0.3;
    const seriesTime = new Date(studyStart.getTime() + acquisitionMinutes * 60000);
    const SeriesInstanceUID = derivedUid(seed, index, 'series', seriesNumber);
    const seriesCommon: Record<string, unknown> = {
      ...common,
      SeriesDate: ymd(seriesTime),
      SeriesTime: hms(seriesTime),
      AcquisitionDate: ymd(seriesTime),
      AcquisitionTime: hms(seriesTime),
      ContentDate: ymd(seriesTime),
      ContentTime: hms(seriesTime),
      SeriesDescription: sp.seriesDescription,
      ProtocolName: sp.protocolName,
      SequenceName: sp.sequenceName,
      ScanningSequence: sp.scanningSequence,
      SequenceVariant: sp.sequenceVariant,
      ScanOptions: sp.scanOptions.length ? sp.scanOptions : '',
      MRAcquisitionType: sp.acquisitionType,
      RepetitionTime: ds(sp.tr, 1),
      EchoTime: ds(sp.te, 2),
      EchoTrainLength: sp.etl,
      NumberOfAverages: sp.sequence === 'DWI' || sp.sequence === 'ADC' ? 3 : 1,
      EchoNumbers: 1,
      FlipAngle: sp.flip,
      PercentSampling: 100,
      PercentPhaseFieldOfView: 100,
      PixelBandwidth: sp.sequence === 'DWI' || sp.sequence === 'ADC' ? 1500 : 200,
      ImageType: sp.imageType,
      SeriesInstanceUID,
      SeriesNumber: seriesNumber,
      AcquisitionNumber: 1,
      SamplesPerPixel: 1,
      PhotometricInterpretation: 'MONOCHROME2',
      BitsAllocated: 16,
      BitsStored: protocol.bitsStored,
      HighBit: protocol.bitsStored - 1,
      PixelRepresentation: 0,
    };
    if (sp.ti !== null) seriesCommon.InversionTime = ds(sp.ti, 1);
    const ctxSeries: SeriesContext = { seed, index, sp, seriesCommon, SeriesInstanceUID, StudyInstanceUID, protocol, fieldT, bias, pairs, swiAcquisitions, noiseRng, writer: ctx.writer, fold };
    if (sp.sequence === 'LOCALIZER') {
      outputs.push(makeLocalizer(ctxSeries, subject, opts.fast));
    } else if (sp.sequence === 'T1') {
      const t1 = protocol.t1!;
      const spec: StackSpec = { plane: 'sagittal', centre: [0, 6, t1.kind === '3D' ? 8 : 5], fov: t1.fov, matrix: t1.matrix, slices: t1.slices, thickness: t1.thickness, spacing: t1.spacing, oblique: protocol.oblique, tiltDeg: protocol.tiltDeg, reversed: false };
      const g = geometry('t1', spec);
      outputs.push(makeSeries(ctxSeries, g.stack, g.maps, 0));
    } else if (sp.sequence === 'DWI' || sp.sequence === 'ADC') {
      const sameSlices = dwiSpec.slices === axialSpec.slices && dwiSpec.spacing === axialSpec.spacing && dwiSpec.matrix < axialSpec.matrix;
      if (sameSlices && !stacks.has('dwi')) {
        // DWI prescribed on the T2's slices: resample the finer T2 maps instead of rendering again
        const ax = geometry('axial', axialSpec);
        const st = makeStack(subject, dwiSpec);
        stacks.set('dwi', st);
        maps.set('dwi', resampleInPlane(stackGrid(ax.stack), ax.maps, stackGrid(st)));
      }
      const g = geometry('dwi', dwiSpec);
      outputs.push(makeSeries(ctxSeries, g.stack, g.maps, B_VALUE));
    } else if (sp.sequence === 'SWI' || sp.sequence === 'SWI_PHASE') {
      const g = swi!.kind === '3D' ? geometry('swi', swiSpec!) : geometry('axial', axialSpec);
      outputs.push(makeSeries(ctxSeries, g.stack, g.maps, 0));
    } else {
      const g = geometry('axial', axialSpec);
      outputs.push(makeSeries(ctxSeries, g.stack, g.maps, 0));
    }
  }

  const labels: StudyLabels = {
    AccessionNumber,
    StudyInstanceUID,
    normal: subject.findings.length === 0,
    findings: subject.findings,
    age: subject.age,
    sex: subject.sex,
    manufacturer: protocol.scanner.manufacturer,
    model: protocol.scanner.model,
    fieldStrength: fieldT,
    series: outputs.map((o) => o.label),
  };
  const text = reportFor(seed, index, plan, labels);
  return {
    index,
    StudyInstanceUID,
    AccessionNumber,
    files: outputs.flatMap((o) => o.files),
    report: { AccessionNumber, StudyInstanceUID, text },
    labels,
    preview: outputs.map((o) => o.preview).filter((p): p is PreviewSlice => p !== null),
  };
}

function nextSeriesNumber(p: StudyProtocol, sp: SeriesProtocol, prev: number, lastAcquired: number): number {
  const v = p.scanner.vendor;
  if (sp.sequence === 'ADC' || sp.derived) {
    if (v === 'GE') return lastAcquired * 100;
    if (v === 'PHILIPS') return lastAcquired + 1;
    return Math.max(prev, lastAcquired) + 1;
  }
  if (v === 'PHILIPS') return (Math.floor(Math.max(prev, lastAcquired) / 100) + 1) * 100 + 1;
  return (v === 'GE' ? Math.max(lastAcquired, prev > 99 ? lastAcquired : prev) : prev) + 1;
}

/** The head centre in patient space (for the 3 T central-brightening bias). */
function subjectCentre(s: Subject): Vec3 {
  return [s.trans[0], s.trans[1], s.trans[2] + 10];
}

interface SeriesContext {
  seed: number | string;
  index: number;
  sp: SeriesProtocol;
  seriesCommon: Record<string, unknown>;
  SeriesInstanceUID: string;
  StudyInstanceUID: string;
  protocol: StudyProtocol;
  fieldT: number;
  bias: (st: Stack) => Float32Array;
  /** The noisy b=0/b=1000 pair of a DWI stack, shared by the DWI and ADC series. */
  pairs: Map<Stack, { s0: Float32Array; s1: Float32Array; sigma: number }>;
  /** The noise-free and noisy T2* magnitude of an SWI stack, shared by its magnitude, SWI, mIP and phase series. */
  swiAcquisitions: Map<Stack, { clean: Float32Array; mag: Float32Array }>;
  noiseRng: Rng;
  writer: DicomWriter;
  fold: FoldTable;
}

/** Noise-free signal of one sequence on a stack, with the coil's bias field. */
function cleanSignal(c: SeriesContext, st: Stack, m: TissueMaps, b: number): Float32Array {
  const img = new Float32Array(m.pd.length);
  signal(c.sp, m, b, img);
  const bf = c.bias(st);
  for (let i = 0; i < img.length; i++) img[i]! *= bf[i]!;
  return img;
}

/** Noisy magnitude image of one sequence on a stack, before interpolation and quantisation. */
function acquire(c: SeriesContext, st: Stack, m: TissueMaps, b: number, sigma: number): Float32Array {
  const img = cleanSignal(c, st, m, b);
  addRicianNoise(img, sigma, c.noiseRng);
  return img;
}

function noiseSigma(c: SeriesContext, st: Stack, wm: number): number {
  const voxel = st.pixelSpacing[0] * st.pixelSpacing[1] * st.sliceThickness;
  const snr = Math.max(4, Math.min(80, c.sp.snr * c.protocol.snrScale * (c.fieldT >= 2 ? 1.6 : 1) * (voxel / 4.05) ** 0.8));
  return wm / snr;
}

function makeSeries(c: SeriesContext, st: Stack, m: TissueMaps, b: number): SeriesOutput {
  const { sp, protocol } = c;
  const f = sp.reconFactor;
  const wm0 = whiteMatterSignal(sp, c.fieldT, 0);
  const sigma = noiseSigma(c, st, wm0);
  const gainRng = new Rng(c.seed, c.index, 'gain', sp.sequence);
  const gain = (protocol.gain / wm0) * gainRng.uniform(0.85, 1.2);
  const rows = st.rows * f;
  const cols = st.cols * f;
  const n = rows * cols;
  // images in instance order: [pixels, b-value or null]
  const images: Array<{ px: Uint16Array; slice: number; b: number | null; slope: number; intercept?: number }> = [];
  if (sp.sequence === 'DWI' || sp.sequence === 'ADC') {
    // Both series come from the same acquisition: draw the noisy pair once per study (seeded by the study, so
    // DWI and ADC agree however the series are ordered or dropped).
    if (!c.pairs.has(st)) {
      const cc = { ...c, noiseRng: new Rng(c.seed, c.index, 'dwi-pair'), sp: { ...sp, sequence: 'DWI' as const } };
      c.pairs.set(st, { s0: acquire(cc, st, m, 0, sigma), s1: acquire(cc, st, m, b, sigma), sigma });
    }
    const { s0, s1 } = c.pairs.get(st)!;
    if (sp.sequence === 'DWI') {
      const q0 = quantise(upsample(s0, st.rows, st.cols, st.slices, f), gain, protocol.rescaleSlope, protocol.bitsStored);
      const q1 = quantise(upsample(s1, st.rows, st.cols, st.slices, f), gain, protocol.rescaleSlope, protocol.bitsStored);
      const interleave = protocol.scanner.vendor === 'GE';
      if (interleave) {
        for (let k = 0; k < st.slices; k++) {
          images.push({ px: q0.subarray(k * n, (k + 1) * n), slice: k, b: 0, slope: protocol.rescaleSlope });
          images.push({ px: q1.subarray(k * n, (k + 1) * n), slice: k, b, slope: protocol.rescaleSlope });
        }
      } else {
        for (let k = 0; k < st.slices; k++) images.push({ px: q0.subarray(k * n, (k + 1) * n), slice: k, b: 0, slope: protocol.rescaleSlope });
        for (let k = 0; k < st.slices; k++) images.push({ px: q1.subarray(k * n, (k + 1) * n), slice: k, b, slope: protocol.rescaleSlope });
      }
    } else {
      const adc = fitAdc(s0, s1, b, 4 * sigma);
      const q = quantise(upsample(adc, st.rows, st.cols, st.slices, f), 1, 1, 16);
      for (let k = 0; k < st.slices; k++) images.push({ px: q.subarray(k * n, (k + 1) * n), slice: k, b: null, slope: 1 });
    }
  } else if (sp.sequence === 'SWI' || sp.sequence === 'SWI_PHASE') {
    // every image of the SWI acquisition comes from one noisy magnitude, drawn once per study
    if (!c.swiAcquisitions.has(st)) {
      const cc = { ...c, sp: { ...sp, sequence: 'SWI' as const } };
      const clean = cleanSignal(cc, st, m, 0);
      const mag = clean.slice();
      addRicianNoise(mag, sigma, new Rng(c.seed, c.index, 'swi'));
      c.swiAcquisitions.set(st, { clean, mag });
    }
    const { clean, mag } = c.swiAcquisitions.get(st)!;
    const base = tissueTable(c.fieldT).r2p[T.WM]!;
    if (sp.swiImage === 'phase') {
      // stored 0..4095; Siemens rescales to -4096..4094
      const q = phaseImage(clean, m, sp.te, base, sigma, new Rng(c.seed, c.index, 'swi-phase'));
      const siemens = protocol.scanner.vendor === 'SIEMENS';
      for (let k = 0; k < st.slices; k++) images.push({ px: q.subarray(k * n, (k + 1) * n), slice: k, b: null, slope: siemens ? 2 : 1, intercept: siemens ? -4096 : 0 });
    } else {
      let img = sp.swiImage === 'magnitude' ? mag : swiPhaseMask(mag, m, sp.te, base);
      if (sp.swiImage === 'mip') img = minimumProjection(img, st.rows, st.cols, st.slices, 4);
      const q = quantise(upsample(img, st.rows, st.cols, st.slices, f), gain, protocol.rescaleSlope, protocol.bitsStored);
      for (let k = 0; k < st.slices; k++) images.push({ px: q.subarray(k * n, (k + 1) * n), slice: k, b: null, slope: protocol.rescaleSlope });
    }
  } else {
    const img = acquire(c, st, m, 0, sigma);
    const q = quantise(upsample(img, st.rows, st.cols, st.slices, f), gain, protocol.rescaleSlope, protocol.bitsStored);
    for (let k = 0; k < st.slices; k++) images.push({ px: q.subarray(k * n, (k + 1) * n), slice: k, b: null, slope: protocol.rescaleSlope });
  }

  const ps: [number, number] = [st.pixelSpacing[0] / f, st.pixelSpacing[1] / f];
  const shift = (st.pixelSpacing[0] - ps[0]) / 2;
  const wmStored = Math.round((wm0 * gain) / protocol.rescaleSlope);
  const files: DicomFile[] = [];
  images.forEach((im, i) => {
    const p0 = st.positions[im.slice]!;
    const pos: Vec3 = [0, 1, 2].map((a) => p0[a]! - shift * st.rowDir[a]! - shift * st.colDir[a]!) as Vec3;
    const SOPInstanceUID = derivedUid(c.seed, c.index, 'sop', c.SeriesInstanceUID, i + 1);
    const dataset: Record<string, unknown> = {
      ...c.seriesCommon,
      SOPInstanceUID,
      InstanceNumber: i + 1,
      ImagePositionPatient: pos.map((v) => ds(v, 4)),
      ImageOrientationPatient: [...st.rowDir, ...st.colDir].map((v) => ds(v, 6)),
      SliceThickness: ds(st.sliceThickness, 3),
      SpacingBetweenSlices: ds(st.spacingBetweenSlices, 3),
      SliceLocation: ds(pos[0] * st.normal[0] + pos[1] * st.normal[1] + pos[2] * st.normal[2], 4),
      Rows: rows,
      Columns: cols,
      PixelSpacing: ps.map((v) => ds(v, 6)),
      AcquisitionMatrix: [0, st.cols, st.rows, 0],
      InPlanePhaseEncodingDirection: 'COL',
      RescaleIntercept: String(im.intercept ?? 0),
      RescaleSlope: ds(im.slope, 5),
      RescaleType: sp.sequence === 'ADC' ? '10^-6 mm2/s' : 'US',
      WindowCenter: sp.sequence === 'ADC' ? '1000' : sp.sequence === 'SWI_PHASE' ? String(2048 * im.slope + (im.intercept ?? 0)) : String(Math.round(wmStored * 1.4)),
      WindowWidth: sp.sequence === 'ADC' ? '2000' : sp.sequence === 'SWI_PHASE' ? String(4096 * im.slope) : String(Math.round(wmStored * 3)),
      PixelData: [im.px.slice().buffer],
    };
    const priv: PrivateElement[] = [];
    if (im.b !== null) {
      if (protocol.scanner.standardBValue) dataset.DiffusionBValue = im.b;
      priv.push(...privateBValue(protocol.scanner.vendor, protocol.scanner.model, im.b));
      if (protocol.scanner.vendor === 'SIEMENS') dataset.SequenceName = im.b > 0 ? `*ep_b${im.b}t` : '*ep_b0';
    }
    files.push({
      path: `dicom/${c.StudyInstanceUID}/${c.SeriesInstanceUID}/${SOPInstanceUID}.dcm`,
      SeriesInstanceUID: c.SeriesInstanceUID,
      SOPInstanceUID,
      data: c.writer.write(dataset, priv),
    });
  });

  // preview: middle slice of the series (the b=1000 image for DWI)
  const mid = Math.floor(st.slices / 2);
  const pick = images.find((im) => im.slice === mid && (sp.sequence !== 'DWI' || (im.b ?? 0) > 0)) ?? images[0]!;
  const label = sp.sequence === 'DWI' ? `DWI B${b}`
    : sp.sequence === 'T1' && sp.acquisitionType === '3D' ? 'T1 3D'
    : sp.sequence === 'SWI' ? (sp.acquisitionType === '2D' ? 'T2* GRE' : sp.swiImage === 'mip' ? 'SWI MIP' : 'SWI') : sp.sequence;
  return {
    label: { SeriesInstanceUID: c.SeriesInstanceUID, SeriesNumber: c.seriesCommon.SeriesNumber as number, SeriesDescription: sp.seriesDescription, sequence: sp.sequence, instances: files.length },
    files,
    preview: { sequence: sp.sequence, label, width: cols, height: rows, pixels: window8(pick.px) },
  };
}

function privateBValue(vendor: string, model: string, b: number): PrivateElement[] {
  switch (vendor) {
    case 'SIEMENS':
      return [
        { tag: '00190010', vr: 'LO', value: ['SIEMENS MR HEADER'] },
        { tag: '0019100C', vr: 'IS', value: [b] },
        { tag: '0019100D', vr: 'CS', value: [b > 0 ? 'DIRECTIONAL' : 'NONE'] },
      ];
    case 'GE':
      // GEMS_PARM_01 slop_int_6..9; newer software adds 10^9 to the b-value
      return [
        { tag: '00430010', vr: 'LO', value: ['GEMS_PARM_01'] },
        { tag: '00431039', vr: 'IS', value: [model === 'Signa HDxt' ? b : 1000000000 + b, 8, 0, 0] },
      ];
    case 'PHILIPS':
      return [
        { tag: '20010010', vr: 'LO', value: ['Philips Imaging DD 001'] },
        { tag: '20011003', vr: 'FL', value: [b] },
      ];
    default:
      return [];
  }
}

/** 8-bit window from the 0.5th to 99.5th percentile of the non-zero pixels (from a 1024-bin histogram). */
export function window8(px: Uint16Array | Float32Array): Uint8Array {
  const out = new Uint8Array(px.length);
  let max = 0;
  let count = 0;
  for (let i = 0; i < px.length; i++) {
    if (px[i]! > max) max = px[i]!;
    if (px[i]! > 0) count++;
  }
  if (count === 0) return out;
  const bins = new Uint32Array(1024);
  const scale = 1023 / max;
  for (let i = 0; i < px.length; i++) if (px[i]! > 0) bins[Math.floor(px[i]! * scale)]!++;
  const quantile = (q: number): number => {
    let acc = 0;
    for (let b = 0; b < 1024; b++) {
      acc += bins[b]!;
      if (acc >= q * count) return b / scale;
    }
    return max;
  };
  const lo = quantile(0.005);
  const hi = quantile(0.995);
  const k = 255 / Math.max(1e-6, hi - lo);
  for (let i = 0; i < px.length; i++) out[i] = Math.max(0, Math.min(255, Math.round((px[i]! - lo) * k)));
  return out;
}

/** Three-plane localiser: one sagittal, one coronal and one axial image in a single series. */
function makeLocalizer(c: SeriesContext, s: Subject, fast: boolean): SeriesOutput {
  const matrix = fast ? 48 : 160;
  const files: DicomFile[] = [];
  let preview: PreviewSlice | null = null;
  (['sagittal', 'coronal', 'axial'] as const).forEach((plane, i) => {
    const st = makeStack(s, { plane, centre: [0, 5, 10], fov: 280, matrix, slices: 1, thickness: 8, spacing: 8, oblique: false, reversed: false });
    const m = renderTissue(s, c.fieldT, stackGrid(st), c.fold);
    const wm = whiteMatterSignal(c.sp, c.fieldT);
    const img = acquire(c, st, m, 0, noiseSigma(c, st, wm));
    const q = quantise(img, c.protocol.gain / wm, c.protocol.rescaleSlope, c.protocol.bitsStored);
    const SOPInstanceUID = derivedUid(c.seed, c.index, 'sop', c.SeriesInstanceUID, i + 1);
    const pos = st.positions[0]!;
    const dataset: Record<string, unknown> = {
      ...c.seriesCommon,
      SOPInstanceUID,
      InstanceNumber: i + 1,
      ImagePositionPatient: pos.map((v) => ds(v, 4)),
      ImageOrientationPatient: [...st.rowDir, ...st.colDir].map((v) => ds(v, 6)),
      SliceThickness: '8',
      SliceLocation: ds(pos[0] * st.normal[0] + pos[1] * st.normal[1] + pos[2] * st.normal[2], 4),
      Rows: matrix,
      Columns: matrix,
      PixelSpacing: st.pixelSpacing.map((v) => ds(v, 6)),
      AcquisitionMatrix: [0, matrix, matrix, 0],
      InPlanePhaseEncodingDirection: 'ROW',
      RescaleIntercept: '0',
      RescaleSlope: ds(c.protocol.rescaleSlope, 5),
      RescaleType: 'US',
      PixelData: [q.buffer],
    };
    files.push({ path: `dicom/${c.StudyInstanceUID}/${c.SeriesInstanceUID}/${SOPInstanceUID}.dcm`, SeriesInstanceUID: c.SeriesInstanceUID, SOPInstanceUID, data: c.writer.write(dataset) });
    if (plane === 'sagittal') preview = { sequence: 'LOCALIZER', label: 'LOCALISER', width: matrix, height: matrix, pixels: window8(q) };
  });
  return {
    label: { SeriesInstanceUID: c.SeriesInstanceUID, SeriesNumber: c.seriesCommon.SeriesNumber as number, SeriesDescription: c.sp.seriesDescription, sequence: 'LOCALIZER', instances: files.length },
    files,
    preview,
  };
}
