// Reads one DICOM Part 10 instance (dcmjs) into the attributes this module needs and one entry per frame: classic
// single-frame MR images give one frame from the top-level attributes, Enhanced / Legacy Converted Enhanced MR
// give one per frame from the shared and per-frame functional groups. The file's structure is checked first
// (part10.ts) and its size claims (Rows x Columns x frames against the pixel bytes present) before anything is
// allocated from them. From a file, only the header is read (readInstanceHeader); pixel bytes are read later, per
// frame, for the series that get chosen (pixels.ts).
import { open } from 'node:fs/promises';
import { dcmjs, quietDcmjsLog, type DcmjsDataset } from './dcmjs';
import { DicomParseError } from './errors';
import { encapsulatedItems, NeedMoreBytes, scanPart10, withDefinedLengthUn, type Part10Layout, type PixelDataLocation } from './part10';
import { MAX_HEADER_BYTES } from './limits';

export type Vec3 = [number, number, number];

export const SOP_CLASS = {
  MRImage: '1.2.840.10008.5.1.4.1.1.4',
  EnhancedMRImage: '1.2.840.10008.5.1.4.1.1.4.1',
  LegacyConvertedEnhancedMRImage: '1.2.840.10008.5.1.4.1.1.4.4',
} as const;
const IMAGE_SOP_CLASSES: ReadonlySet<string> = new Set(Object.values(SOP_CLASS));

export const TRANSFER_SYNTAX = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
  JpegBaselineProcess1: '1.2.840.10008.1.2.4.50',
  JpegLosslessProcess14: '1.2.840.10008.1.2.4.57',
  JpegLosslessProcess14SV1: '1.2.840.10008.1.2.4.70',
  JpegLsLossless: '1.2.840.10008.1.2.4.80',
  JpegLsNearLossless: '1.2.840.10008.1.2.4.81',
  Jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  Jpeg2000: '1.2.840.10008.1.2.4.91',
  RleLossless: '1.2.840.10008.1.2.5',
} as const;

/**
 * Transfer syntaxes whose pixel data may have lost information: JPEG baseline and extended (8/12-bit), JPEG-LS
 * near-lossless, JPEG 2000 (lossy allowed), its Part 2 multi-component form, and HTJ2K (lossy allowed). The
 * decoder reads JPEG baseline, JPEG-LS near-lossless, JPEG 2000 and HTJ2K (pixels.ts); the listener refuses them
 * all, but `npm run score` reads files placed by hand.
 */
export const LOSSY_TRANSFER_SYNTAXES: ReadonlySet<string> = new Set([
  TRANSFER_SYNTAX.JpegBaselineProcess1,
  '1.2.840.10008.1.2.4.51', // JPEG Extended (Process 2 & 4)
  TRANSFER_SYNTAX.JpegLsNearLossless,
  TRANSFER_SYNTAX.Jpeg2000,
  '1.2.840.10008.1.2.4.93', // JPEG 2000 Part 2 Multi-component
  '1.2.840.10008.1.2.4.203', // High-Throughput JPEG 2000
]);

/** Series- and instance-level attributes, by DICOM keyword. Absent attributes are undefined (or empty lists). */
export interface InstanceHeader {
  TransferSyntaxUID: string;
  SOPClassUID?: string;
  SOPInstanceUID?: string;
  StudyInstanceUID?: string;
  SeriesInstanceUID?: string;
  /** The study's key in the RIS (SH, decoded by its Specific Character Set as dcmjs reads it). */
  AccessionNumber?: string;
  /** Patient coordinates are shared by the series of one frame of reference (SR SCOORD3D references it). */
  FrameOfReferenceUID?: string;
  Modality?: string;
  Manufacturer?: string;
  SeriesDescription?: string;
  ProtocolName?: string;
  SeriesNumber?: number;
  InstanceNumber?: number;
  ScanningSequence: string[];
  SequenceVariant: string[];
  SequenceName?: string;
  ImageType: string[];
  MRAcquisitionType?: string;
  /** Enhanced MR (0008,9209): T1, T2, PROTON_DENSITY, DIFFUSION, FLUID_ATTENUATED, ... */
  AcquisitionContrast?: string;
  EchoTime?: number;
  RepetitionTime?: number;
  InversionTime?: number;
  EchoNumbers?: number;
  BodyPartExamined?: string;
  ContrastBolusAgent?: string;
  /** (0028,2110) "01": the pixel data has been lossy-compressed at some time, whatever syntax it arrives in now. */
  LossyImageCompression?: string;
  SliceThickness?: number;
  SpacingBetweenSlices?: number;
  Rows?: number;
  Columns?: number;
  BitsAllocated?: number;
  BitsStored?: number;
  PixelRepresentation?: number;
  SamplesPerPixel?: number;
  PhotometricInterpretation?: string;
  PlanarConfiguration?: number;
  NumberOfFrames: number;
  isImageStorage: boolean;
  isEnhanced: boolean;
}

/** One 2D image: a classic instance, or one frame of a multi-frame instance. */
export interface Frame {
  /** Index of the frame inside its instance's pixel data. */
  index: number;
  ImagePositionPatient?: Vec3;
  /** Row direction cosines then column direction cosines. */
  ImageOrientationPatient?: [number, number, number, number, number, number];
  /** [spacing between rows, spacing between columns] in mm. */
  PixelSpacing?: [number, number];
  RescaleSlope: number;
  RescaleIntercept: number;
  /** Standard DiffusionBValue or, failing that, the vendor private b-value. */
  DiffusionBValue?: number;
  /** (0018,9075) ISOTROPIC (trace), DIRECTIONAL, BMATRIX or NONE; Philips' private direction 'I' reads as ISOTROPIC. */
  DiffusionDirectionality?: string;
  /** ImageType, or FrameType for Enhanced MR frames. */
  ImageType: string[];
  EchoTime?: number;
  InversionTime?: number;
  RepetitionTime?: number;
  EchoNumbers?: number;
  InStackPositionNumber?: number;
  StackID?: string;
}

export type PixelData =
  | { kind: 'native'; bytes: Uint8Array }
  /** One entry per frame as the encapsulated pixel data gives them (fragments of one frame already joined). */
  | { kind: 'encapsulated'; fragments: Uint8Array[] };

/** Positioned reads of the instance's source, for pixel data read after the header. */
export interface ByteSource {
  size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
}

export interface DicomInstance {
  /** Caller's name for the source (a path); used in error messages only. */
  file: string;
  header: InstanceHeader;
  frames: Frame[];
  /** Pixel data in memory: readInstance() of bytes. Undefined when only the header was read from a file. */
  pixelData?: PixelData;
  /** Where PixelData lies in the source; undefined when the instance has none. */
  pixelLocation?: PixelDataLocation;
  /** The file, for reading pixel data later (readInstanceHeader). */
  source?: ByteSource;
}

type Item = DcmjsDataset;

const latin1 = new TextDecoder('latin1');

function bytesOf(v: unknown): Uint8Array | undefined {
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return undefined;
}

function values(item: Item | undefined, tag: string): unknown[] {
  const v = item?.[tag]?.Value;
  return Array.isArray(v) ? v : [];
}

/** Text of an attribute; VR UN (implicit VR private tags) arrives as bytes and is read as ASCII. */
function strings(item: Item | undefined, tag: string): string[] {
  const vals = values(item, tag);
  const out: string[] = [];
  for (const v of vals) {
    if (typeof v === 'string') out.push(v.trim());
    else if (typeof v === 'number') out.push(String(v));
    else if (v && typeof v === 'object' && 'Alphabetic' in v) continue; // person names: never needed here
    else {
      const b = bytesOf(v);
      if (b) for (const s of latin1.decode(b).replace(/\0/g, '').split('\\')) out.push(s.trim());
    }
  }
  return out;
}

function str(item: Item | undefined, tag: string): string | undefined {
  const s = strings(item, tag)[0];
  return s === undefined || s === '' ? undefined : s;
}

function nums(item: Item | undefined, tag: string): number[] {
  const vals = values(item, tag);
  const out: number[] = [];
  for (const v of vals) {
    if (typeof v === 'number') out.push(v);
    else if (typeof v === 'string') {
      if (v.trim() !== '') out.push(Number(v));
    } else {
      const b = bytesOf(v);
      if (b) for (const s of latin1.decode(b).replace(/\0/g, '').split('\\')) if (s.trim() !== '') out.push(Number(s));
    }
  }
  return out.filter((n) => Number.isFinite(n));
}

function num(item: Item | undefined, tag: string): number | undefined {
  return nums(item, tag)[0];
}

function seqItem(item: Item | undefined, tag: string, index = 0): Item | undefined {
  const v = values(item, tag)[index];
  return v && typeof v === 'object' && !(v instanceof ArrayBuffer) ? (v as Item) : undefined;
}

/** Philips (2001,1003) is FL: a binary float32, raw bytes when the file is implicit VR. */
function floatOrNumber(item: Item | undefined, tag: string): number | undefined {
  const vals = values(item, tag);
  const v = vals[0];
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  const b = bytesOf(v);
  if (b && b.byteLength === 4) {
    const f = new DataView(b.buffer, b.byteOffset, 4).getFloat32(0, true);
    return Number.isFinite(f) ? f : undefined;
  }
  return num(item, tag);
}

const T = {
  TransferSyntaxUID: '00020010',
  ImageType: '00080008',
  SOPClassUID: '00080016',
  SOPInstanceUID: '00080018',
  AccessionNumber: '00080050',
  Modality: '00080060',
  Manufacturer: '00080070',
  SeriesDescription: '0008103E',
  FrameType: '00089007',
  AcquisitionContrast: '00089209',
  ScanningSequence: '00180020',
  SequenceVariant: '00180021',
  MRAcquisitionType: '00180023',
  SequenceName: '00180024',
  ContrastBolusAgent: '00180010',
  BodyPartExamined: '00180015',
  SliceThickness: '00180050',
  RepetitionTime: '00180080',
  EchoTime: '00180081',
  InversionTime: '00180082',
  EchoNumbers: '00180086',
  SpacingBetweenSlices: '00180088',
  ProtocolName: '00181030',
  DiffusionBValue: '00189087',
  DiffusionDirectionality: '00189075',
  EffectiveEchoTime: '00189082',
  InversionTimes: '00189079',
  MRTimingAndRelatedParametersSequence: '00189112',
  MREchoSequence: '00189114',
  MRModifierSequence: '00189115',
  MRDiffusionSequence: '00189117',
  MRImageFrameTypeSequence: '00189226',
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  FrameOfReferenceUID: '00200052',
  SeriesNumber: '00200011',
  InstanceNumber: '00200013',
  ImagePositionPatient: '00200032',
  ImageOrientationPatient: '00200037',
  FrameContentSequence: '00209111',
  StackID: '00209056',
  InStackPositionNumber: '00209057',
  PlanePositionSequence: '00209113',
  PlaneOrientationSequence: '00209116',
  SamplesPerPixel: '00280002',
  PhotometricInterpretation: '00280004',
  PlanarConfiguration: '00280006',
  NumberOfFrames: '00280008',
  Rows: '00280010',
  Columns: '00280011',
  PixelSpacing: '00280030',
  LossyImageCompression: '00282110',
  BitsAllocated: '00280100',
  BitsStored: '00280101',
  PixelRepresentation: '00280103',
  RescaleIntercept: '00281052',
  RescaleSlope: '00281053',
  PixelMeasuresSequence: '00289110',
  PixelValueTransformationSequence: '00289145',
  SharedFunctionalGroupsSequence: '52009229',
  PerFrameFunctionalGroupsSequence: '52009230',
  PixelData: '7FE00010',
} as const;

/**
 * The key of private element `gggg,xxEE` in the block whose creator (gggg,00xx) is `creator` (PS3.5 7.8.1): an
 * element number means nothing without its block's owner (Philips' "PHILIPS MR/PART" (0019,100C) is CCOffcenter in
 * mm, Siemens' "SIEMENS MR HEADER" (0019,100C) is B_value). A file without any creator for the usual block 0x10 is
 * read there (files written without their creator); a block owned by someone else never is.
 */
function privateKey(item: Item, group: string, creator: RegExp, element: string): string | undefined {
  for (const key of Object.keys(item)) {
    if (key.length !== 8 || !key.toUpperCase().startsWith(`${group}00`)) continue;
    const block = key.slice(6).toUpperCase();
    if (parseInt(block, 16) >= 0x10 && creator.test(str(item, key) ?? '')) return `${group}${block}${element}`;
  }
  return str(item, `${group}0010`) === undefined ? `${group}10${element}` : undefined;
}

const SIEMENS_MR_HEADER = /^SIEMENS MR HEADER$/i;
const GEMS_PARM = /^GEMS_PARM_01$/i;
const PHILIPS_IMAGING = /^PHILIPS IMAGING DD 001$/i;

/** GE stores the b-value as the first of four IS values, sometimes offset by 10^9 (a known GE quirk). */
function geBValue(item: Item): number | undefined {
  const key = privateKey(item, '0043', GEMS_PARM, '39');
  const v = key ? nums(item, key)[0] : undefined;
  if (v === undefined) return undefined;
  return v >= 1e9 ? v % 1e9 : v % 1e5;
}

/** Siemens writes the b-value in SequenceName too ("*ep_b1000t", "ep_b0"), the last fallback. */
function bFromSequenceName(name: string | undefined): number | undefined {
  const m = name ? /ep_b(\d+)/i.exec(name) : null;
  return m ? Number(m[1]) : undefined;
}

function vendorBValue(item: Item, sequenceName: string | undefined): number | undefined {
  const siemens = privateKey(item, '0019', SIEMENS_MR_HEADER, '0C');
  const philips = privateKey(item, '2001', PHILIPS_IMAGING, '03');
  return (siemens ? num(item, siemens) : undefined) ?? geBValue(item) ?? (philips ? floatOrNumber(item, philips) : undefined) ?? bFromSequenceName(sequenceName);
}

/** Philips' private diffusion direction (2001,1004): 'I' is the isotropic (trace) image. */
function philipsDirection(item: Item): string | undefined {
  const key = privateKey(item, '2001', PHILIPS_IMAGING, '04');
  return key ? str(item, key) : undefined;
}

function vec3(a: number[]): Vec3 | undefined {
  return a.length >= 3 ? [a[0], a[1], a[2]] : undefined;
}
function iop(a: number[]): Frame['ImageOrientationPatient'] {
  return a.length >= 6 ? [a[0], a[1], a[2], a[3], a[4], a[5]] : undefined;
}
function spacing(a: number[]): [number, number] | undefined {
  return a.length >= 2 ? [a[0], a[1]] : undefined;
}

function toArrayBuffer(data: Uint8Array | ArrayBuffer): ArrayBuffer {
  if (data instanceof ArrayBuffer) return data;
  if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer) return data.buffer;
  // Buffer.slice() is a view, not a copy: a pooled Buffer would hand over the whole pool. Copy into a fresh buffer.
  return new Uint8Array(data).buffer as ArrayBuffer;
}

function joinBytes(parts: Uint8Array[]): Uint8Array {
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** Encapsulated frames: with no offset table dcmjs returns fragments; one frame takes them all. */
function encapsulatedFrames(raw: unknown[], numberOfFrames: number): Uint8Array[] {
  const parts = raw.map((v) => (Array.isArray(v) ? joinBytes(v.map((x) => bytesOf(x) ?? new Uint8Array(0))) : bytesOf(v) ?? new Uint8Array(0)));
  if (parts.length === numberOfFrames) return parts;
  if (numberOfFrames === 1) return [joinBytes(parts)];
  // Multi-frame without an offset table and fragments != frames: a frame starts where a JPEG SOI / J2K SOC marker
  // starts a fragment (PS3.5 A.4: a fragment never holds the end of one frame and the start of the next).
  const frames: Uint8Array[][] = [];
  for (const p of parts) {
    const starts = p.byteLength >= 2 && p[0] === 0xff && (p[1] === 0xd8 || p[1] === 0x4f);
    if (starts || frames.length === 0) frames.push([p]);
    else frames[frames.length - 1].push(p);
  }
  return frames.map(joinBytes);
}

function frameFromItems(items: (Item | undefined)[], index: number, top: Item, header: InstanceHeader): Frame {
  // Per-frame functional group items shadow shared ones; top-level attributes are the fallback for classic images.
  const inGroup = <R>(seqTag: string, read: (it: Item) => R | undefined): R | undefined => {
    for (const g of items) {
      const it = seqItem(g, seqTag);
      if (it) {
        const r = read(it);
        if (r !== undefined) return r;
      }
    }
    return undefined;
  };
  const ipp = inGroup(T.PlanePositionSequence, (it) => vec3(nums(it, T.ImagePositionPatient))) ?? vec3(nums(top, T.ImagePositionPatient));
  const orientation =
    inGroup(T.PlaneOrientationSequence, (it) => iop(nums(it, T.ImageOrientationPatient))) ?? iop(nums(top, T.ImageOrientationPatient));
  const ps = inGroup(T.PixelMeasuresSequence, (it) => spacing(nums(it, T.PixelSpacing))) ?? spacing(nums(top, T.PixelSpacing));
  const slope = inGroup(T.PixelValueTransformationSequence, (it) => num(it, T.RescaleSlope)) ?? num(top, T.RescaleSlope) ?? 1;
  const intercept = inGroup(T.PixelValueTransformationSequence, (it) => num(it, T.RescaleIntercept)) ?? num(top, T.RescaleIntercept) ?? 0;
  const bStd = inGroup(T.MRDiffusionSequence, (it) => num(it, T.DiffusionBValue)) ?? num(top, T.DiffusionBValue);
  const directionality =
    inGroup(T.MRDiffusionSequence, (it) => str(it, T.DiffusionDirectionality)) ?? str(top, T.DiffusionDirectionality) ?? (philipsDirection(top) === 'I' ? 'ISOTROPIC' : undefined);
  const frameType = inGroup(T.MRImageFrameTypeSequence, (it) => {
    const s = strings(it, T.FrameType);
    return s.length ? s : undefined;
  });
  return {
    index,
    ImagePositionPatient: ipp,
    ImageOrientationPatient: orientation,
    PixelSpacing: ps,
    RescaleSlope: slope === 0 ? 1 : slope,
    RescaleIntercept: intercept,
    DiffusionBValue: bStd ?? vendorBValue(top, header.SequenceName),
    DiffusionDirectionality: directionality?.toUpperCase(),
    ImageType: frameType ?? header.ImageType,
    EchoTime: inGroup(T.MREchoSequence, (it) => num(it, T.EffectiveEchoTime)) ?? header.EchoTime,
    RepetitionTime: inGroup(T.MRTimingAndRelatedParametersSequence, (it) => num(it, T.RepetitionTime)) ?? header.RepetitionTime,
    InversionTime: inGroup(T.MRModifierSequence, (it) => num(it, T.InversionTimes)) ?? header.InversionTime,
    EchoNumbers: header.EchoNumbers,
    InStackPositionNumber: inGroup(T.FrameContentSequence, (it) => num(it, T.InStackPositionNumber)),
    StackID: inGroup(T.FrameContentSequence, (it) => str(it, T.StackID)),
  };
}

/** Parses the header bytes (meta group and dataset up to PixelData) that scanPart10 has checked. */
function parseHeader(bytes: Uint8Array, layout: Part10Layout, file: string): { meta: Item; dict: Item } {
  // Deflated: dcmjs inflates the whole file itself (scanPart10 has already inflated it once, with a size cap).
  const header = withDefinedLengthUn(layout.inflated ? bytes : bytes.subarray(0, layout.headerEnd), layout);
  try {
    return dcmjs.data.DicomMessage.readFile(toArrayBuffer(header), { noCopy: true, ignoreErrors: false, untilTag: T.PixelData });
  } catch (e) {
    throw new DicomParseError(file, e instanceof Error ? e.message : String(e));
  }
}

function headerOf(parsed: { meta: Item; dict: Item }): InstanceHeader {
  const top = parsed.dict;
  const sopClass = str(top, T.SOPClassUID);
  return {
    TransferSyntaxUID: str(parsed.meta, T.TransferSyntaxUID) ?? TRANSFER_SYNTAX.ImplicitVRLittleEndian,
    SOPClassUID: sopClass,
    SOPInstanceUID: str(top, T.SOPInstanceUID),
    StudyInstanceUID: str(top, T.StudyInstanceUID),
    SeriesInstanceUID: str(top, T.SeriesInstanceUID),
    AccessionNumber: str(top, T.AccessionNumber)?.trim() || undefined,
    FrameOfReferenceUID: str(top, T.FrameOfReferenceUID),
    Modality: str(top, T.Modality),
    Manufacturer: str(top, T.Manufacturer),
    SeriesDescription: str(top, T.SeriesDescription),
    ProtocolName: str(top, T.ProtocolName),
    SeriesNumber: num(top, T.SeriesNumber),
    InstanceNumber: num(top, T.InstanceNumber),
    ScanningSequence: strings(top, T.ScanningSequence).filter(Boolean),
    SequenceVariant: strings(top, T.SequenceVariant).filter(Boolean),
    SequenceName: str(top, T.SequenceName),
    ImageType: strings(top, T.ImageType).filter(Boolean),
    MRAcquisitionType: str(top, T.MRAcquisitionType),
    AcquisitionContrast: str(top, T.AcquisitionContrast),
    EchoTime: num(top, T.EchoTime),
    RepetitionTime: num(top, T.RepetitionTime),
    InversionTime: num(top, T.InversionTime),
    EchoNumbers: num(top, T.EchoNumbers),
    BodyPartExamined: str(top, T.BodyPartExamined),
    ContrastBolusAgent: str(top, T.ContrastBolusAgent),
    LossyImageCompression: str(top, T.LossyImageCompression),
    SliceThickness: num(top, T.SliceThickness),
    SpacingBetweenSlices: num(top, T.SpacingBetweenSlices),
    Rows: num(top, T.Rows),
    Columns: num(top, T.Columns),
    BitsAllocated: num(top, T.BitsAllocated),
    BitsStored: num(top, T.BitsStored),
    PixelRepresentation: num(top, T.PixelRepresentation),
    SamplesPerPixel: num(top, T.SamplesPerPixel),
    PhotometricInterpretation: str(top, T.PhotometricInterpretation),
    PlanarConfiguration: num(top, T.PlanarConfiguration),
    NumberOfFrames: Math.max(1, Math.round(num(top, T.NumberOfFrames) ?? 1)),
    isImageStorage: sopClass === undefined ? true : IMAGE_SOP_CLASSES.has(sopClass),
    isEnhanced: sopClass === SOP_CLASS.EnhancedMRImage || sopClass === SOP_CLASS.LegacyConvertedEnhancedMRImage,
  };
}

/**
 * Whether an instance's pixels have lossy history: Lossy Image Compression (0028,2110) is "01" (lossy-compressed
 * earlier, e.g. sent on decompressed in Explicit VR Little Endian), or the file itself is in a lossy transfer syntax.
 */
export function hasLossyHistory(h: Pick<InstanceHeader, 'LossyImageCompression' | 'TransferSyntaxUID'>): boolean {
  return h.LossyImageCompression === '01' || LOSSY_TRANSFER_SYNTAXES.has(h.TransferSyntaxUID);
}

/**
 * Bytes of one native frame (BitsAllocated 1 packs 8 pixels a byte; YBR_FULL_422 holds two samples a pixel, PS3.5
 * 8.2.1, as the listener counts them before Success).
 */
export function nativeFrameBytes(h: Pick<InstanceHeader, 'Rows' | 'Columns' | 'BitsAllocated' | 'SamplesPerPixel' | 'PhotometricInterpretation'>): number {
  const samples = h.PhotometricInterpretation === 'YBR_FULL_422' ? 2 : (h.SamplesPerPixel ?? 1);
  const pixels = (h.Rows ?? 0) * (h.Columns ?? 0) * samples;
  const bits = h.BitsAllocated ?? 16;
  return bits === 1 ? Math.ceil(pixels / 8) : pixels * Math.ceil(bits / 8);
}

/**
 * The header's size claims against the bytes the file holds, before any frame list or buffer is sized from them:
 * Rows x Columns x SamplesPerPixel x BitsAllocated x NumberOfFrames must fit in native pixel data, and encapsulated
 * pixel data needs at least one 8-byte item per frame.
 */
function checkSizeClaims(top: Item, h: InstanceHeader, loc: PixelDataLocation | undefined, fileSize: number, file: string): void {
  const claimed = num(top, T.NumberOfFrames);
  if (claimed !== undefined && !(Number.isInteger(claimed) && claimed >= 1)) throw new DicomParseError(file, `NumberOfFrames ${claimed} is not a positive integer`);
  if (!loc) return;
  const rows = h.Rows ?? 0;
  const cols = h.Columns ?? 0;
  if (!(Number.isInteger(rows) && rows >= 1 && Number.isInteger(cols) && cols >= 1)) throw new DicomParseError(file, `pixel data with Rows ${h.Rows ?? 'absent'} and Columns ${h.Columns ?? 'absent'}`);
  const frames = h.NumberOfFrames;
  if (loc.encapsulated) {
    const room = Math.floor((fileSize - loc.offset) / 8);
    if (frames > room) throw new DicomParseError(file, `NumberOfFrames ${frames} cannot fit in the ${fileSize - loc.offset} bytes of encapsulated pixel data`);
    return;
  }
  const need = nativeFrameBytes(h) * frames;
  // Exactly what the claims give (one pad byte to even length allowed), as the listener requires: longer data means
  // another Rows, Columns or BitsAllocated than the header says, and would be read with the wrong stride.
  if ((loc.length ?? 0) < need || (loc.length ?? 0) > need + (need % 2)) {
    throw new DicomParseError(file, `pixel data holds ${loc.length} bytes; ${frames} frame(s) of ${rows}x${cols} at ${h.BitsAllocated ?? 16} bits need ${need}`);
  }
}

function instanceFrom(parsed: { meta: Item; dict: Item }, loc: PixelDataLocation | undefined, fileSize: number, file: string): DicomInstance {
  const top = parsed.dict;
  const header = headerOf(parsed);
  checkSizeClaims(top, header, loc, fileSize, file);
  const shared = seqItem(top, T.SharedFunctionalGroupsSequence);
  const perFrame = values(top, T.PerFrameFunctionalGroupsSequence);
  const frames: Frame[] = [];
  for (let f = 0; f < header.NumberOfFrames; f++) {
    const pf = perFrame[f] && typeof perFrame[f] === 'object' ? (perFrame[f] as Item) : undefined;
    frames.push(frameFromItems([pf, shared], f, top, header));
  }
  // Enhanced MR keeps echo time, b-value and type per frame; lift the first frame's values so that
  // series-level classification sees them too.
  if (header.isEnhanced && frames.length > 0) {
    header.EchoTime ??= frames[0].EchoTime;
    header.RepetitionTime ??= frames[0].RepetitionTime;
    header.InversionTime ??= frames[0].InversionTime;
    if (header.ImageType.length === 0) header.ImageType = frames[0].ImageType;
  }
  return { file, header, frames, ...(loc ? { pixelLocation: loc } : {}) };
}

/** Pixel data bytes in memory -> one entry per frame (encapsulated) or the native value. */
export function pixelDataIn(bytes: Uint8Array, loc: PixelDataLocation, numberOfFrames: number, file: string): PixelData {
  if (!loc.encapsulated) return { kind: 'native', bytes: bytes.subarray(loc.offset, loc.offset + (loc.length ?? 0)) };
  const { offsetTable, fragments } = encapsulatedItems(bytes, loc.offset, file);
  if (fragments.length < numberOfFrames) throw new DicomParseError(file, `${numberOfFrames} frames claimed, ${fragments.length} fragments present`);
  // A Basic Offset Table gives each frame's first fragment; without one, fragments are split by codec markers.
  const table = offsetTable.length >= 4 * numberOfFrames && numberOfFrames > 1 ? offsetTableFrames(bytes, offsetTable, fragments, numberOfFrames) : undefined;
  return { kind: 'encapsulated', fragments: table ?? encapsulatedFrames(fragments.map((f) => bytes.subarray(f.offset, f.offset + f.length)), numberOfFrames) };
}

function offsetTableFrames(bytes: Uint8Array, bot: { offset: number; length: number }, fragments: { offset: number; length: number }[], n: number): Uint8Array[] | undefined {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const first = fragments[0].offset - 8;
  const starts = Array.from({ length: n }, (_, i) => dv.getUint32(bot.offset + 4 * i, true) + first);
  const frames: Uint8Array[][] = starts.map(() => []);
  for (const f of fragments) {
    let k = -1;
    for (let i = 0; i < n; i++) if (f.offset - 8 >= starts[i]) k = i;
    if (k < 0) return undefined;
    frames[k].push(bytes.subarray(f.offset, f.offset + f.length));
  }
  return frames.some((f) => f.length === 0) ? undefined : frames.map(joinBytes);
}

/**
 * Parses one Part 10 instance held in memory, pixel data included (not copied: keep `data` alive as long as the
 * instance is used). Throws DicomParseError for anything that is not well-formed DICOM or whose size claims do
 * not match its bytes; never decodes pixels.
 */
export function readInstance(data: Uint8Array | ArrayBuffer, file = '(buffer)'): DicomInstance {
  quietDcmjsLog();
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data;
  const layout = scanPart10(bytes, { file });
  const inst = instanceFrom(parseHeader(bytes, layout, file), layout.pixelData, layout.inflated?.byteLength ?? bytes.byteLength, file);
  if (layout.pixelData) inst.pixelData = pixelDataIn(layout.inflated ?? bytes, layout.pixelData, inst.header.NumberOfFrames, file);
  return inst;
}

/** First read of a file's header (classic MR headers are 2-20 KB); doubled until the walk reaches PixelData. */
const FIRST_READ_BYTES = 16 * 1024;

/** Positioned reads of a file, each opening it (a study has thousands of files: no handle is kept open). */
export function fileSource(path: string, size: number): ByteSource {
  return {
    size,
    async read(offset, length) {
      const fh = await open(path, 'r');
      try {
        const out = new Uint8Array(length);
        const { bytesRead } = await fh.read(out, 0, length, offset);
        if (bytesRead < length) throw new DicomParseError(path, `the file is shorter than its header said (changed while being read?)`);
        return out;
      } finally {
        await fh.close();
      }
    },
  };
}

/** A ByteSource over bytes in memory. */
export function memorySource(bytes: Uint8Array): ByteSource {
  return { size: bytes.byteLength, read: async (offset, length) => bytes.subarray(offset, offset + length) };
}

/**
 * Reads only the header of an instance: its structure is checked up to PixelData and PixelData's length against
 * the file's size, then the header is parsed; pixel bytes stay in the file (`pixelLocation`, `source`) until a
 * frame is decoded. Deflated files are the exception: they are read whole.
 */
export async function readInstanceHeader(source: ByteSource, file: string): Promise<DicomInstance> {
  quietDcmjsLog();
  let length = Math.min(source.size, FIRST_READ_BYTES);
  for (;;) {
    const prefix = await source.read(0, length);
    let layout: Part10Layout;
    try {
      layout = scanPart10(prefix, { file, fileSize: source.size, stopAtPixelData: true });
    } catch (e) {
      if (!(e instanceof NeedMoreBytes)) throw e;
      // Doubling stops at the limit: a header that fits in it is read (doubling past it refused a 40 MB header in a
      // file over 64 MB, and one the listener had acknowledged).
      if (e.needed > MAX_HEADER_BYTES) throw new DicomParseError(file, `the header is larger than ${MAX_HEADER_BYTES / 1048576} MB`, 'too-large');
      length = Math.min(source.size, Math.max(e.needed, Math.min(2 * length, MAX_HEADER_BYTES)));
      continue;
    }
    const inst = instanceFrom(parseHeader(prefix, layout, file), layout.pixelData, layout.inflated?.byteLength ?? source.size, file);
    if (layout.inflated && layout.pixelData) inst.pixelData = pixelDataIn(layout.inflated, layout.pixelData, inst.header.NumberOfFrames, file);
    else inst.source = source;
    return inst;
  }
}
