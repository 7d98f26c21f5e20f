// Reads one DICOM Part 10 instance (dcmjs) into the attributes this module needs and one entry per frame: classic
// single-frame MR images give one frame from the top-level attributes, Enhanced / Legacy Converted Enhanced MR
// give one per frame from the shared and per-frame functional groups. Pixel bytes stay undecoded here (see
// pixels.ts); only the frames of the series that get chosen are ever decoded.
import { dcmjs, quietDcmjsValidationLog, type DcmjsDataset } from './dcmjs';
import { DicomParseError } from './errors';

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

const NATIVE_SYNTAXES: ReadonlySet<string> = new Set([
  TRANSFER_SYNTAX.ImplicitVRLittleEndian,
  TRANSFER_SYNTAX.ExplicitVRLittleEndian,
  TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian,
  TRANSFER_SYNTAX.ExplicitVRBigEndian,
]);

/** Series- and instance-level attributes, by DICOM keyword. Absent attributes are undefined (or empty lists). */
export interface InstanceHeader {
  TransferSyntaxUID: string;
  SOPClassUID?: string;
  SOPInstanceUID?: string;
  StudyInstanceUID?: string;
  SeriesInstanceUID?: string;
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

export interface DicomInstance {
  /** Caller's name for the source (a path); used in error messages only. */
  file: string;
  header: InstanceHeader;
  frames: Frame[];
  pixelData?: PixelData;
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
  EffectiveEchoTime: '00189082',
  InversionTimes: '00189079',
  MRTimingAndRelatedParametersSequence: '00189112',
  MREchoSequence: '00189114',
  MRModifierSequence: '00189115',
  MRDiffusionSequence: '00189117',
  MRImageFrameTypeSequence: '00189226',
  SiemensBValue: '0019100C',
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
  BitsAllocated: '00280100',
  BitsStored: '00280101',
  PixelRepresentation: '00280103',
  RescaleIntercept: '00281052',
  RescaleSlope: '00281053',
  PixelMeasuresSequence: '00289110',
  PixelValueTransformationSequence: '00289145',
  GEBValue: '00431039',
  PhilipsBValue: '20011003',
  SharedFunctionalGroupsSequence: '52009229',
  PerFrameFunctionalGroupsSequence: '52009230',
  PixelData: '7FE00010',
} as const;

/** GE stores the b-value as the first of four IS values, sometimes offset by 10^9 (a known GE quirk). */
function geBValue(item: Item): number | undefined {
  const v = nums(item, T.GEBValue)[0];
  if (v === undefined) return undefined;
  return v >= 1e9 ? v % 1e9 : v % 1e5;
}

/** Siemens writes the b-value in SequenceName too ("*ep_b1000t", "ep_b0"), the last fallback. */
function bFromSequenceName(name: string | undefined): number | undefined {
  const m = name ? /ep_b(\d+)/i.exec(name) : null;
  return m ? Number(m[1]) : undefined;
}

function vendorBValue(item: Item, sequenceName: string | undefined): number | undefined {
  return num(item, T.SiemensBValue) ?? geBValue(item) ?? floatOrNumber(item, T.PhilipsBValue) ?? bFromSequenceName(sequenceName);
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
    ImageType: frameType ?? header.ImageType,
    EchoTime: inGroup(T.MREchoSequence, (it) => num(it, T.EffectiveEchoTime)) ?? header.EchoTime,
    RepetitionTime: inGroup(T.MRTimingAndRelatedParametersSequence, (it) => num(it, T.RepetitionTime)) ?? header.RepetitionTime,
    InversionTime: inGroup(T.MRModifierSequence, (it) => num(it, T.InversionTimes)) ?? header.InversionTime,
    EchoNumbers: header.EchoNumbers,
    InStackPositionNumber: inGroup(T.FrameContentSequence, (it) => num(it, T.InStackPositionNumber)),
    StackID: inGroup(T.FrameContentSequence, (it) => str(it, T.StackID)),
  };
}

/**
 * Native little-endian pixel data sits at the end of the file; dcmjs would copy it (and feed the garbage collector),
 * so the header is parsed up to PixelData and the value is located here: the PixelData element header (tag, VR,
 * length) is searched backwards near the end of the file and accepted only if its length is exactly the
 * expected size. Anything unusual falls back to dcmjs' full parse.
 */
function locateNativePixelData(bytes: Uint8Array, expected: number, explicit: boolean): Uint8Array | undefined {
  if (!(expected > 0) || bytes.byteLength < expected + 8) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = explicit ? 12 : 8;
  const lowest = Math.max(0, bytes.byteLength - expected - headerLen - 65536);
  for (let at = bytes.byteLength - expected - headerLen - (expected % 2); at >= lowest; at--) {
    if (bytes[at] !== 0xe0 || bytes[at + 1] !== 0x7f || bytes[at + 2] !== 0x10 || bytes[at + 3] !== 0x00) continue;
    if (explicit) {
      const vr = String.fromCharCode(bytes[at + 4], bytes[at + 5]);
      if (vr !== 'OW' && vr !== 'OB') continue;
    }
    const len = dv.getUint32(at + headerLen - 4, true);
    if (len !== expected && len !== expected + (expected % 2)) continue;
    if (at + headerLen + len > bytes.byteLength) continue;
    return bytes.subarray(at + headerLen, at + headerLen + expected);
  }
  return undefined;
}

/**
 * dcmjs pads a value that runs past the end of the buffer with zeros instead of failing, so a truncated file would
 * give a silently zero-filled slice. When the fast path did not find the pixel data, look for a PixelData header
 * whose declared value runs past the end of the file: that instance is truncated. (Rare path only: it scans up to
 * one frame's worth of bytes.)
 */
function truncatedPixelData(bytes: Uint8Array, expected: number, explicit: boolean): string | undefined {
  const headerLen = explicit ? 12 : 8;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lowest = Math.max(0, bytes.byteLength - expected - headerLen - 65536);
  for (let at = bytes.byteLength - headerLen; at >= lowest; at--) {
    if (bytes[at] !== 0xe0 || bytes[at + 1] !== 0x7f || bytes[at + 2] !== 0x10 || bytes[at + 3] !== 0x00) continue;
    const len = dv.getUint32(at + headerLen - 4, true);
    if (len !== 0xffffffff && at + headerLen + len > bytes.byteLength) return `pixel data truncated: ${bytes.byteLength - at - headerLen} of ${len} bytes present`;
  }
  return undefined;
}

/**
 * Parses one Part 10 instance. Throws DicomParseError for anything that is not readable DICOM; never decodes
 * pixels. `data` is not copied: keep it alive as long as the instance is used.
 */
export function readInstance(data: Uint8Array | ArrayBuffer, file = '(buffer)'): DicomInstance {
  quietDcmjsValidationLog();
  const buffer = toArrayBuffer(data);
  const bytes = new Uint8Array(buffer);
  let parsed: { meta: Item; dict: Item };
  let nativePixels: Uint8Array | undefined;
  try {
    parsed = dcmjs.data.DicomMessage.readFile(buffer, { noCopy: true, ignoreErrors: false, untilTag: T.PixelData });
    const ts = str(parsed.meta, T.TransferSyntaxUID);
    const explicitLE = ts === TRANSFER_SYNTAX.ExplicitVRLittleEndian;
    if (T.PixelData in parsed.dict && (explicitLE || ts === TRANSFER_SYNTAX.ImplicitVRLittleEndian)) {
      const d = parsed.dict;
      const expected =
        (num(d, T.Rows) ?? 0) * (num(d, T.Columns) ?? 0) * ((num(d, T.BitsAllocated) ?? 0) / 8) * (num(d, T.SamplesPerPixel) ?? 1) * Math.max(1, num(d, T.NumberOfFrames) ?? 1);
      nativePixels = Number.isInteger(expected) ? locateNativePixelData(bytes, expected, explicitLE) : undefined;
      const truncated = nativePixels || !(expected > 0) ? undefined : truncatedPixelData(bytes, expected, explicitLE);
      if (truncated) throw new Error(truncated);
    }
    // Compressed, deflated, big endian or unexpected layout: let dcmjs read the whole dataset.
    if (T.PixelData in parsed.dict && !nativePixels) {
      parsed = dcmjs.data.DicomMessage.readFile(buffer, { noCopy: true, ignoreErrors: false });
      // Encapsulated pixel data ends with a Sequence Delimitation Item; when it is the last element and that item
      // is missing, the file was cut short (dcmjs would zero-fill the last fragment rather than fail).
      const n = bytes.byteLength;
      const encapsulatedLast =
        ts !== undefined && !NATIVE_SYNTAXES.has(ts) && ts !== TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian && !Object.keys(parsed.dict).some((k) => k > T.PixelData);
      const delimited = n >= 8 && bytes[n - 8] === 0xfe && bytes[n - 7] === 0xff && bytes[n - 6] === 0xdd && bytes[n - 5] === 0xe0;
      if (encapsulatedLast && !delimited) throw new Error('encapsulated pixel data truncated (no sequence delimiter at the end of the file)');
    }
  } catch (e) {
    throw new DicomParseError(file, e instanceof Error ? e.message : String(e));
  }
  const top = parsed.dict;
  const sopClass = str(top, T.SOPClassUID);
  const header: InstanceHeader = {
    TransferSyntaxUID: str(parsed.meta, T.TransferSyntaxUID) ?? TRANSFER_SYNTAX.ImplicitVRLittleEndian,
    SOPClassUID: sopClass,
    SOPInstanceUID: str(top, T.SOPInstanceUID),
    StudyInstanceUID: str(top, T.StudyInstanceUID),
    SeriesInstanceUID: str(top, T.SeriesInstanceUID),
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

  let pixelData: PixelData | undefined = nativePixels ? { kind: 'native', bytes: nativePixels } : undefined;
  const pd = nativePixels ? [] : values(top, T.PixelData);
  if (pd.length > 0) {
    const encapsulated = !NATIVE_SYNTAXES.has(header.TransferSyntaxUID);
    pixelData = encapsulated
      ? { kind: 'encapsulated', fragments: encapsulatedFrames(pd, header.NumberOfFrames) }
      : { kind: 'native', bytes: bytesOf(pd[0]) ?? joinBytes(pd.map((p) => bytesOf(p) ?? new Uint8Array(0))) };
  }
  return { file, header, frames, pixelData };
}
