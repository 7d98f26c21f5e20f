// Pixel decoding: native (implicit/explicit little endian, deflated, explicit big endian) read directly,
// compressed transfer syntaxes through dcmjs-codecs' WebAssembly codecs (JPEG lossless, JPEG-LS, JPEG 2000,
// RLE, ...). Output is float32 in rescaled units (RescaleSlope/Intercept, signed or unsigned, BitsStored honoured),
// written straight into the caller's volume buffer.
import path from 'node:path';
import { Context, NativeCodecs } from 'dcmjs-codecs';
import { codestreamSize } from './codestream-size';
import { nativeFrameBytes, pixelDataIn, TRANSFER_SYNTAX, type DicomInstance, type Frame } from './dicom-header';
import { UnusableSeriesError } from './errors';

type CodecName = 'rle' | 'jpeg' | 'jpegls' | 'j2k' | 'htj2k';

const NATIVE: ReadonlySet<string> = new Set([
  TRANSFER_SYNTAX.ImplicitVRLittleEndian,
  TRANSFER_SYNTAX.ExplicitVRLittleEndian,
  TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian,
  TRANSFER_SYNTAX.ExplicitVRBigEndian,
]);

const COMPRESSED: Readonly<Record<string, CodecName>> = {
  [TRANSFER_SYNTAX.RleLossless]: 'rle',
  [TRANSFER_SYNTAX.JpegBaselineProcess1]: 'jpeg',
  [TRANSFER_SYNTAX.JpegLosslessProcess14]: 'jpeg',
  [TRANSFER_SYNTAX.JpegLosslessProcess14SV1]: 'jpeg',
  [TRANSFER_SYNTAX.JpegLsLossless]: 'jpegls',
  [TRANSFER_SYNTAX.JpegLsNearLossless]: 'jpegls',
  [TRANSFER_SYNTAX.Jpeg2000Lossless]: 'j2k',
  [TRANSFER_SYNTAX.Jpeg2000]: 'j2k',
  '1.2.840.10008.1.2.4.201': 'htj2k',
  '1.2.840.10008.1.2.4.202': 'htj2k',
  '1.2.840.10008.1.2.4.203': 'htj2k',
};

/** Transfer syntaxes this module decodes (documented in docs/imaging.md). */
export const SUPPORTED_TRANSFER_SYNTAXES: readonly string[] = [...NATIVE, ...Object.keys(COMPRESSED)];

export function isCompressed(transferSyntaxUID: string): boolean {
  return transferSyntaxUID in COMPRESSED;
}

/** One frame's stored bytes: native values, or one compressed frame (its fragments joined). */
export type FrameBytes = { kind: 'native'; bytes: Uint8Array } | { kind: 'encapsulated'; bytes: Uint8Array };

export interface PixelDecoder {
  /** Loads the codec WebAssembly (once per thread, ~50 ms); required before decoding compressed frames. */
  ready(): Promise<void>;
  /** Decodes one frame of an instance whose pixel data is in memory into out[offset .. offset + Rows*Columns). Throws UnusableSeriesError on failure. */
  decodeFrameInto(instance: DicomInstance, frame: Frame, out: Float32Array, offset: number): void;
  /** The same from one frame's bytes read on their own (readFrameBytes), for instances read header first. */
  decodeFrameBytesInto(instance: DicomInstance, frame: Frame, data: FrameBytes, out: Float32Array, offset: number): void;
}

/** The file's name for a reason or log line: never its path on the server. */
const fileName = (inst: DicomInstance): string => path.basename(inst.file);

interface Layout {
  rows: number;
  cols: number;
  bitsAllocated: number;
  bitsStored: number;
  signed: boolean;
  monochrome1: boolean;
}

function layoutOf(inst: DicomInstance): Layout {
  const h = inst.header;
  const rows = h.Rows ?? 0;
  const cols = h.Columns ?? 0;
  const bitsAllocated = h.BitsAllocated ?? 16;
  if (!(rows > 0 && cols > 0)) throw new UnusableSeriesError('corrupt', `${fileName(inst)}: no Rows/Columns`);
  if ((h.SamplesPerPixel ?? 1) !== 1) throw new UnusableSeriesError('colour', `${fileName(inst)}: SamplesPerPixel ${h.SamplesPerPixel}`);
  if (![8, 16, 32].includes(bitsAllocated)) throw new UnusableSeriesError('corrupt', `${fileName(inst)}: BitsAllocated ${bitsAllocated}`);
  // As the listener requires: 0 would mask every pixel to 0 (read as a blank scan), more than allocated is a lie.
  const bitsStored = h.BitsStored ?? bitsAllocated;
  if (!(bitsStored >= 1 && bitsStored <= bitsAllocated)) throw new UnusableSeriesError('corrupt', `${fileName(inst)}: BitsStored ${bitsStored} does not fit BitsAllocated ${bitsAllocated}`);
  return {
    rows,
    cols,
    bitsAllocated,
    bitsStored,
    signed: h.PixelRepresentation === 1,
    monochrome1: h.PhotometricInterpretation === 'MONOCHROME1',
  };
}

/**
 * MONOCHROME1 is decoded inverted, v -> (max + min) - v on the stored value before rescale (the models see dark as
 * low), so a decoded value d is K - r, r the rescaled value the header's windows speak of. K, or undefined for other
 * photometric interpretations.
 */
export function monochrome1Reflection(inst: DicomInstance, frame: Frame): number | undefined {
  const l = layoutOf(inst);
  if (!l.monochrome1) return undefined;
  const maxPlusMin = l.signed ? -1 : 2 ** l.bitsStored - 1;
  return maxPlusMin * frame.RescaleSlope + 2 * frame.RescaleIntercept;
}

/** Raw stored values (little or big endian) -> rescaled float32. */
function storeFrame(bytes: Uint8Array, byteOffset: number, littleEndian: boolean, l: Layout, frame: Frame, out: Float32Array, offset: number): void {
  const n = l.rows * l.cols;
  const slope = frame.RescaleSlope;
  const intercept = frame.RescaleIntercept;
  const bs = l.bitsStored;
  const shift = 32 - bs;
  const mask = bs >= 32 ? 0xffffffff : 2 ** bs - 1;
  const partial = bs < l.bitsAllocated;
  const maxStored = l.signed ? 2 ** (bs - 1) - 1 : mask;
  const minStored = l.signed ? -(2 ** (bs - 1)) : 0;
  const dv = new DataView(bytes.buffer, bytes.byteOffset + byteOffset, n * (l.bitsAllocated / 8));
  for (let p = 0; p < n; p++) {
    let v: number;
    if (l.bitsAllocated === 16) v = l.signed && !partial ? dv.getInt16(p * 2, littleEndian) : dv.getUint16(p * 2, littleEndian);
    else if (l.bitsAllocated === 8) v = l.signed && !partial ? dv.getInt8(p) : dv.getUint8(p);
    else v = l.signed && !partial ? dv.getInt32(p * 4, littleEndian) : dv.getUint32(p * 4, littleEndian);
    if (partial) v = l.signed ? ((v << shift) >> shift) : v & mask;
    if (l.monochrome1) v = maxStored + minStored - v;
    out[offset + p] = v * slope + intercept;
  }
}

/** Fast path for the common case: 16 bits allocated, little endian (typed-array reads, no DataView). */
function storeFrame16LE(bytes: Uint8Array, byteOffset: number, l: Layout, frame: Frame, out: Float32Array, offset: number): boolean {
  if (l.bitsAllocated !== 16) return false;
  const n = l.rows * l.cols;
  let start = bytes.byteOffset + byteOffset;
  let buffer = bytes.buffer;
  if (start % 2 !== 0) {
    buffer = bytes.slice(byteOffset, byteOffset + 2 * n).buffer;
    start = 0;
  }
  const slope = frame.RescaleSlope;
  const intercept = frame.RescaleIntercept;
  const bs = l.bitsStored;
  if (bs === 16 && !l.monochrome1) {
    // All 16 bits meaningful: a typed-array view converts without masking.
    const src = l.signed ? new Int16Array(buffer, start, n) : new Uint16Array(buffer, start, n);
    if (slope === 1 && intercept === 0) out.set(src, offset);
    else for (let p = 0; p < n; p++) out[offset + p] = src[p] * slope + intercept;
    return true;
  }
  const src = new Uint16Array(buffer, start, n);
  const mask = 2 ** bs - 1;
  const shift = 32 - bs;
  if (!l.signed && !l.monochrome1) {
    for (let p = 0; p < n; p++) out[offset + p] = (src[p] & mask) * slope + intercept;
    return true;
  }
  const signed = l.signed;
  const m1 = l.monochrome1;
  const flip = signed ? -1 : mask; // MONOCHROME1: v -> (max + min) - v
  for (let p = 0; p < n; p++) {
    let v = src[p] & mask;
    if (signed) v = (v << shift) >> shift;
    if (m1) v = flip - v;
    out[offset + p] = v * slope + intercept;
  }
  return true;
}

function decodeCompressed(codec: CodecName, encoded: Uint8Array, inst: DicomInstance, l: Layout): Uint8Array {
  const ctx = new Context({
    width: l.cols,
    height: l.rows,
    bitsAllocated: l.bitsAllocated,
    bitsStored: l.bitsStored,
    samplesPerPixel: 1,
    pixelRepresentation: l.signed ? 1 : 0,
    planarConfiguration: 0,
    photometricInterpretation: inst.header.PhotometricInterpretation ?? 'MONOCHROME2',
    encodedBuffer: encoded,
  });
  const decoded =
    codec === 'rle'
      ? NativeCodecs.decodeRle(ctx)
      : codec === 'jpeg'
        ? NativeCodecs.decodeJpeg(ctx)
        : codec === 'jpegls'
          ? NativeCodecs.decodeJpegLs(ctx)
          : codec === 'j2k'
            ? NativeCodecs.decodeJpeg2000(ctx)
            : NativeCodecs.decodeHtJpeg2000(ctx);
  const buf = decoded.getDecodedBuffer();
  if (!buf) throw new Error('codec returned no data');
  return buf;
}

/** One frame's bytes -> rescaled float32 at out[offset..]. */
function decodeFrameBytes(inst: DicomInstance, frame: Frame, data: FrameBytes, out: Float32Array, offset: number): void {
  const ts = inst.header.TransferSyntaxUID;
  const l = layoutOf(inst);
  const frameBytes = l.rows * l.cols * (l.bitsAllocated / 8);
  if (NATIVE.has(ts)) {
    if (data.kind !== 'native') throw new UnusableSeriesError('corrupt', `${fileName(inst)}: encapsulated pixel data in a native transfer syntax`);
    if (data.bytes.byteLength < frameBytes) throw new UnusableSeriesError('corrupt', `${fileName(inst)}: pixel data shorter than frame ${frame.index}`);
    const le = ts !== TRANSFER_SYNTAX.ExplicitVRBigEndian || l.bitsAllocated === 8;
    if (!(le && storeFrame16LE(data.bytes, 0, l, frame, out, offset))) storeFrame(data.bytes, 0, le, l, frame, out, offset);
    checkFinite(inst, frame, l, out, offset);
    return;
  }
  const codec = COMPRESSED[ts];
  if (!codec) throw new UnusableSeriesError('unsupported-transfer-syntax', `${fileName(inst)}: transfer syntax ${ts}`);
  if (!NativeCodecs.isInitialized()) throw new UnusableSeriesError('corrupt', 'codecs not loaded: await decoder.ready() first');
  if (data.kind !== 'encapsulated') throw new UnusableSeriesError('corrupt', `${fileName(inst)}: native pixel data in a compressed transfer syntax`);
  let decoded: Uint8Array;
  try {
    if (codec === 'rle') checkRleSegments(data.bytes, l);
    const declared = codestreamSize(codec, data.bytes);
    if (declared && (declared.rows !== l.rows || declared.columns !== l.cols)) {
      throw new Error(`codestream is ${declared.rows}x${declared.columns}, the header says ${l.rows}x${l.cols}: not decoded`);
    }
    decoded = decodeCompressed(codec, data.bytes, inst, l);
  } catch (e) {
    throw new UnusableSeriesError('corrupt', `${fileName(inst)}: frame ${frame.index}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (decoded.byteLength < frameBytes) throw new UnusableSeriesError('corrupt', `${fileName(inst)}: decoded frame ${frame.index} too short`);
  // A codestream of another size than Rows x Columns would be read with the wrong stride (one pad byte allowed).
  if (decoded.byteLength > frameBytes + 1) {
    throw new UnusableSeriesError('corrupt', `${fileName(inst)}: decoded frame ${frame.index} holds ${decoded.byteLength} bytes, ${l.rows}x${l.cols} at ${l.bitsAllocated} bits is ${frameBytes}`);
  }
  if (!storeFrame16LE(decoded, 0, l, frame, out, offset)) storeFrame(decoded, 0, true, l, frame, out, offset);
  checkFinite(inst, frame, l, out, offset);
}

/**
 * RLE (PS3.5 G): the header's segment count must be one per byte of a pixel, and each segment must decode (PackBits)
 * to at least Rows x Columns bytes. The codec fills a short segment with zeros, so a damaged one would otherwise pass.
 */
function checkRleSegments(encoded: Uint8Array, l: Layout): void {
  if (encoded.byteLength < 64) throw new Error(`RLE frame of ${encoded.byteLength} bytes, shorter than its 64-byte header`);
  const dv = new DataView(encoded.buffer, encoded.byteOffset, encoded.byteLength);
  const count = dv.getUint32(0, true);
  if (count !== l.bitsAllocated / 8) throw new Error(`RLE header has ${count} segments, ${l.bitsAllocated}-bit pixels need ${l.bitsAllocated / 8}`);
  const need = l.rows * l.cols;
  for (let k = 0; k < count; k++) {
    const start = dv.getUint32(4 + 4 * k, true);
    const end = k + 1 < count ? dv.getUint32(8 + 4 * k, true) : encoded.byteLength;
    if (!(start >= 64 && start <= end && end <= encoded.byteLength)) throw new Error(`RLE segment ${k + 1} offsets ${start}-${end} outside the frame`);
    let produced = 0;
    for (let pos = start; pos < end && produced < need; ) {
      const n = (encoded[pos] << 24) >> 24;
      pos += 1;
      if (n >= 0) {
        produced += n + 1;
        pos += n + 1;
      } else if (n !== -128) {
        produced += 1 - n;
        pos += 1;
      }
    }
    if (produced < need) throw new Error(`RLE segment ${k + 1} decodes to ${produced} of ${need} bytes`);
  }
}

/**
 * Rescaled values must be finite in float32: a Rescale Slope or Intercept far out of range (a damaged header) makes
 * Infinity or NaN, which would turn the whole normalised volume into NaN. Stored integers with slope 1 and
 * intercept 0 always are.
 */
function checkFinite(inst: DicomInstance, frame: Frame, l: Layout, out: Float32Array, offset: number): void {
  if (frame.RescaleSlope === 1 && frame.RescaleIntercept === 0) return;
  const end = offset + l.rows * l.cols;
  for (let i = offset; i < end; i++) {
    if (!Number.isFinite(out[i])) {
      throw new UnusableSeriesError('corrupt', `${fileName(inst)}: frame ${frame.index}: Rescale Slope ${frame.RescaleSlope} and Intercept ${frame.RescaleIntercept} give values out of range`);
    }
  }
}

/**
 * The decoder. dcmjs-codecs keeps its WebAssembly instance per thread inside the library; `ready()` loads it on
 * first need, so a decoder for native-only data never pays for it.
 */
export function createPixelDecoder(): PixelDecoder {
  let loading: Promise<void> | undefined;
  return {
    ready() {
      if (NativeCodecs.isInitialized()) return Promise.resolve();
      loading ??= NativeCodecs.initializeAsync({ logCodecsInfo: false, logCodecsTrace: false });
      return loading;
    },
    decodeFrameInto(inst, frame, out, offset) {
      const pd = inst.pixelData;
      if (!pd) throw new UnusableSeriesError('not-image', `${fileName(inst)}: no pixel data`);
      const l = layoutOf(inst);
      if (pd.kind === 'native') {
        const frameBytes = l.rows * l.cols * (l.bitsAllocated / 8);
        const at = frame.index * frameBytes;
        if (pd.bytes.byteLength < at + frameBytes) throw new UnusableSeriesError('corrupt', `${fileName(inst)}: pixel data shorter than frame ${frame.index}`);
        decodeFrameBytes(inst, frame, { kind: 'native', bytes: pd.bytes.subarray(at, at + frameBytes) }, out, offset);
        return;
      }
      if (!pd.fragments[frame.index]) throw new UnusableSeriesError('corrupt', `${fileName(inst)}: frame ${frame.index} missing`);
      decodeFrameBytes(inst, frame, { kind: 'encapsulated', bytes: pd.fragments[frame.index] }, out, offset);
    },
    decodeFrameBytesInto: decodeFrameBytes,
  };
}

/**
 * Reads one frame's stored bytes from an instance read header first: a native frame is one positioned read of
 * exactly its bytes; compressed pixel data is read once per instance (`cache`, dropped by the caller after the
 * stack) and split into frames. Instances with pixel data in memory are served from it.
 */
export async function readFrameBytes(inst: DicomInstance, index: number, cache: Map<DicomInstance, Uint8Array[]>): Promise<FrameBytes> {
  const loc = inst.pixelLocation;
  const src = inst.source;
  if (!loc || !src) throw new UnusableSeriesError('not-image', `${fileName(inst)}: no pixel data`);
  if (!loc.encapsulated) {
    const n = nativeFrameBytes(inst.header);
    const at = loc.offset + index * n;
    if (index * n + n > (loc.length ?? 0)) throw new UnusableSeriesError('corrupt', `${fileName(inst)}: pixel data shorter than frame ${index}`);
    return { kind: 'native', bytes: await src.read(at, n) };
  }
  let frames = cache.get(inst);
  if (!frames) {
    const region = await src.read(loc.offset, src.size - loc.offset);
    let pd;
    try {
      pd = pixelDataIn(region, { offset: 0, encapsulated: true }, inst.header.NumberOfFrames, inst.file);
    } catch (e) {
      throw new UnusableSeriesError('corrupt', e instanceof Error ? e.message : String(e));
    }
    frames = pd.kind === 'encapsulated' ? pd.fragments : [];
    cache.set(inst, frames);
  }
  if (!frames[index]) throw new UnusableSeriesError('corrupt', `${fileName(inst)}: frame ${index} missing`);
  return { kind: 'encapsulated', bytes: frames[index] };
}
