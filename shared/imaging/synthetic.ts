// Synthetic MR series for tests and the imaging benchmark, written with dcmjs so the true geometry is known:
// every pixel's value is a function of its patient (LPS mm) position, so a bright blob placed at a known point
// must come out at a known canonical voxel whatever the acquisition orientation or slice order. No PHI; pixel
// values are deterministic (only UIDs are random). The realistic cohort generator is tools/synth; this one is
// geometry-exact and has no dependencies beyond dcmjs.
import { randomUUID } from 'node:crypto';
import { dcmjs } from './dcmjs';
import type { Vec3 } from './dicom-header';
import { add, cross, scale, unit } from './geometry';

export type Intensity = (p: Vec3) => number;
type RawElements = Record<string, { vr: string; Value: unknown[] }>;

/** A head-sized ellipsoid (value 800) with a bright sphere (3000) at `blob`: enough structure to find it again. */
export function phantom(centre: Vec3, blob: Vec3, blobRadius = 7): Intensity {
  return (p) => {
    const dx = (p[0] - centre[0]) / 70;
    const dy = (p[1] - centre[1]) / 85;
    const dz = (p[2] - centre[2]) / 60;
    const inHead = dx * dx + dy * dy + dz * dz <= 1;
    const db = Math.hypot(p[0] - blob[0], p[1] - blob[1], p[2] - blob[2]);
    return db <= blobRadius ? 3000 : inHead ? 800 : 0;
  };
}

export interface SeriesSpec {
  StudyInstanceUID?: string;
  SeriesInstanceUID: string;
  SeriesNumber?: number;
  SeriesDescription?: string;
  rows?: number;
  columns?: number;
  /** [between rows, between columns] mm */
  pixelSpacing?: [number, number];
  rowDirection?: Vec3;
  columnDirection?: Vec3;
  /** ImagePositionPatient of each slice, in file order. */
  positions: Vec3[];
  intensity: Intensity;
  /** Extra top-level attributes by keyword (e.g. EchoTime, ImageType, BodyPartExamined). */
  attributes?: Record<string, unknown>;
  /** Extra per-slice attributes by keyword. */
  perSlice?: (k: number) => Record<string, unknown>;
  /** Private or raw elements by tag hex, e.g. { '0019100C': { vr: 'IS', Value: [1000] } }. */
  raw?: RawElements | ((k: number) => RawElements);
  signed?: boolean;
  rescale?: { slope: number; intercept: number };
}

/** A fresh UID under the 2.25 (UUID-derived) root: unique without any module state. */
export function uid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
}

/** Slice positions along `normal` from `first`, `count` slices `spacing` mm apart. */
export function slicePositions(first: Vec3, normal: Vec3, spacing: number, count: number): Vec3[] {
  return Array.from({ length: count }, (_, k) => add(first, scale(unit(normal), k * spacing)));
}

/** ImagePositionPatient of a slice whose centre lies at `centre`. */
export function cornerFor(centre: Vec3, r: Vec3, c: Vec3, rows: number, cols: number, ps: [number, number]): Vec3 {
  return add(add(centre, scale(r, (-(cols - 1) / 2) * ps[1])), scale(c, (-(rows - 1) / 2) * ps[0]));
}

function slicePixels(s: SeriesSpec, ipp: Vec3, rows: number, cols: number, ps: [number, number], r: Vec3, c: Vec3): ArrayBuffer {
  const slope = s.rescale?.slope ?? 1;
  const intercept = s.rescale?.intercept ?? 0;
  const px = s.signed ? new Int16Array(rows * cols) : new Uint16Array(rows * cols);
  for (let j = 0; j < rows; j++) {
    for (let i = 0; i < cols; i++) {
      const p: Vec3 = [
        ipp[0] + i * ps[1] * r[0] + j * ps[0] * c[0],
        ipp[1] + i * ps[1] * r[1] + j * ps[0] * c[1],
        ipp[2] + i * ps[1] * r[2] + j * ps[0] * c[2],
      ];
      px[j * cols + i] = Math.round((s.intensity(p) - intercept) / slope);
    }
  }
  return px.buffer;
}

function part10(dataset: Record<string, unknown>, raw: RawElements | undefined, transferSyntax = '1.2.840.10008.1.2.1'): Uint8Array {
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: dataset.SOPClassUID,
    MediaStorageSOPInstanceUID: dataset.SOPInstanceUID,
    TransferSyntaxUID: transferSyntax,
    ImplementationClassUID: '1.2.826.0.1.3680043.10.1.99',
  };
  const dict = new dcmjs.data.DicomDict(dcmjs.data.DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = dcmjs.data.DicomMetaDictionary.denaturalizeDataset(dataset);
  for (const [tag, el] of Object.entries(raw ?? {})) dict.dict[tag] = el;
  return new Uint8Array(dict.write());
}

function baseAttributes(s: SeriesSpec, rows: number, cols: number): Record<string, unknown> {
  return {
    StudyInstanceUID: s.StudyInstanceUID ?? '1.2.826.0.1.3680043.10.1.1',
    SeriesInstanceUID: s.SeriesInstanceUID,
    SeriesNumber: s.SeriesNumber ?? 1,
    SeriesDescription: s.SeriesDescription ?? 't2_tse_tra',
    Modality: 'MR',
    BodyPartExamined: 'HEAD',
    ImageType: ['ORIGINAL', 'PRIMARY', 'M', 'ND'],
    EchoTime: 100,
    RepetitionTime: 4000,
    ScanningSequence: 'SE',
    Rows: rows,
    Columns: cols,
    BitsAllocated: 16,
    BitsStored: 16,
    HighBit: 15,
    PixelRepresentation: s.signed ? 1 : 0,
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    ...(s.rescale ? { RescaleSlope: s.rescale.slope, RescaleIntercept: s.rescale.intercept } : {}),
  };
}

/** DS holds 16 characters: round so dcmjs writes what the pixels were computed from. */
const ds = (v: number): number => Number(v.toFixed(6));
const ds3 = (v: Vec3): Vec3 => [ds(v[0]), ds(v[1]), ds(v[2])];

/** One classic MR Image Storage instance per slice, explicit VR little endian. */
export function makeSeries(s: SeriesSpec): Uint8Array[] {
  const rows = s.rows ?? 64;
  const cols = s.columns ?? 64;
  const ps = s.pixelSpacing ?? [3.5, 3.5];
  const r = ds3(unit(s.rowDirection ?? [1, 0, 0]));
  const c = ds3(unit(s.columnDirection ?? [0, 1, 0]));
  return s.positions.map(ds3).map((ipp, k) =>
    part10(
      {
        ...baseAttributes(s, rows, cols),
        SOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
        SOPInstanceUID: `${s.SeriesInstanceUID}.${k + 1}`,
        InstanceNumber: k + 1,
        ImagePositionPatient: ipp,
        ImageOrientationPatient: [...r, ...c],
        PixelSpacing: ps,
        SliceThickness: 5,
        ...s.attributes,
        ...s.perSlice?.(k),
        PixelData: slicePixels(s, ipp, rows, cols, ps, r, c),
        _vrMap: { PixelData: 'OW' },
      },
      typeof s.raw === 'function' ? s.raw(k) : s.raw,
    ),
  );
}

/** One Enhanced MR Image Storage instance holding every slice as a frame (functional groups). */
export function makeEnhancedSeries(s: SeriesSpec): Uint8Array {
  const rows = s.rows ?? 64;
  const cols = s.columns ?? 64;
  const ps = s.pixelSpacing ?? [3.5, 3.5];
  const r = ds3(unit(s.rowDirection ?? [1, 0, 0]));
  const c = ds3(unit(s.columnDirection ?? [0, 1, 0]));
  const positions = s.positions.map(ds3);
  const frames = positions.map((ipp) => new Uint8Array(slicePixels(s, ipp, rows, cols, ps, r, c)));
  const all = new Uint8Array(frames.reduce((n, f) => n + f.byteLength, 0));
  frames.forEach((f, k) => all.set(f, k * f.byteLength));
  const base = baseAttributes(s, rows, cols);
  delete base.EchoTime;
  delete base.RepetitionTime;
  return part10(
    {
      ...base,
      SOPClassUID: '1.2.840.10008.5.1.4.1.1.4.1',
      SOPInstanceUID: `${s.SeriesInstanceUID}.1`,
      InstanceNumber: 1,
      NumberOfFrames: frames.length,
      ImageType: ['ORIGINAL', 'PRIMARY', 'M', 'NONE'],
      ...s.attributes,
      SharedFunctionalGroupsSequence: [
        {
          PlaneOrientationSequence: [{ ImageOrientationPatient: [...r, ...c] }],
          PixelMeasuresSequence: [{ PixelSpacing: ps, SliceThickness: 5 }],
          MRTimingAndRelatedParametersSequence: [{ RepetitionTime: 4000 }],
          MREchoSequence: [{ EffectiveEchoTime: 100 }],
          MRImageFrameTypeSequence: [{ FrameType: ['ORIGINAL', 'PRIMARY', 'M', 'NONE'] }],
        },
      ],
      PerFrameFunctionalGroupsSequence: positions.map((ipp, k) => ({
        PlanePositionSequence: [{ ImagePositionPatient: ipp }],
        FrameContentSequence: [{ InStackPositionNumber: k + 1, StackID: '1' }],
        ...s.perSlice?.(k),
      })),
      PixelData: all.buffer,
      _vrMap: { PixelData: 'OW' },
    },
    typeof s.raw === 'function' ? s.raw(0) : s.raw,
  );
}

/** Axial slices through `centre` (IPP at slice corners), `count` slices `spacing` mm apart along +Z. */
export function axialPositions(centre: Vec3, count: number, spacing: number, rows = 64, cols = 64, ps: [number, number] = [3.5, 3.5]): Vec3[] {
  const r: Vec3 = [1, 0, 0];
  const c: Vec3 = [0, 1, 0];
  const n = cross(r, c);
  const first = add(cornerFor(centre, r, c, rows, cols, ps), scale(n, (-(count - 1) / 2) * spacing));
  return slicePositions(first, n, spacing, count);
}

/** Positions for an arbitrary orientation, centred on `centre`. */
export function stackPositions(centre: Vec3, r: Vec3, c: Vec3, count: number, spacing: number, rows = 64, cols = 64, ps: [number, number] = [3.5, 3.5]): Vec3[] {
  const n = unit(cross(unit(r), unit(c)));
  const first = add(cornerFor(centre, unit(r), unit(c), rows, cols, ps), scale(n, (-(count - 1) / 2) * spacing));
  return slicePositions(first, n, spacing, count);
}

/**
 * A realistic-size study for benchmarks: T2, FLAIR, DWI (b0 + b1000 in one trace series), ADC and T1, each
 * 256x256 pixels of 0.9 mm, 25 axial slices of 5 mm (150 instances, ~20 MB).
 */
export function benchmarkStudy(StudyInstanceUID = uid()): { name: string; data: Uint8Array }[] {
  const centre: Vec3 = [0, 0, 20];
  const blob: Vec3 = [25, -20, 35];
  const rows = 256;
  const ps: [number, number] = [0.9, 0.9];
  const pos = axialPositions(centre, 25, 5, rows, rows, ps);
  const base = phantom(centre, blob, 8);
  const contrast = (k: number) => (p: Vec3) => base(p) * k;
  const specs: Omit<SeriesSpec, 'SeriesInstanceUID'>[] = [
    { SeriesDescription: 't2_tse_tra', intensity: contrast(1), positions: pos },
    { SeriesDescription: 'tirm_tra_dark-fluid', intensity: contrast(0.8), positions: pos },
    {
      SeriesDescription: 'ep2d_diff_3scan_trace_p2_TRACEW',
      intensity: contrast(0.5),
      positions: [...pos, ...pos],
      attributes: { ImageType: ['DERIVED', 'PRIMARY', 'DIFFUSION', 'TRACEW'] },
      perSlice: (k) => ({ DiffusionBValue: k < 25 ? 0 : 1000 }),
    },
    { SeriesDescription: 'ep2d_diff_3scan_trace_p2_ADC', intensity: contrast(1.2), positions: pos, attributes: { ImageType: ['DERIVED', 'PRIMARY', 'DIFFUSION', 'ADC'] } },
    { SeriesDescription: 't1_se_tra', intensity: contrast(0.6), positions: pos },
  ];
  return specs.flatMap((s, i) =>
    makeSeries({ ...s, StudyInstanceUID, SeriesInstanceUID: `${StudyInstanceUID}.${i + 1}`, SeriesNumber: i + 1, rows, columns: rows, pixelSpacing: ps }).map((data, k) => ({
      name: `s${i + 1}/i${k + 1}.dcm`,
      data,
    })),
  );
}
