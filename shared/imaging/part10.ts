// Structure check of a DICOM Part 10 file before anything is parsed or allocated from it: every element's VR is a
// known one, every length fits in the bytes present, sequences and items nest and end properly, and the PixelData
// element is located (offset and length) without copying it. dcmjs trusts declared lengths (a VR flipped to an
// unknown one made it allocate and decode a 1.7 GB value and abort the process), so dcmjs only ever sees bytes that
// passed this walk. Pure functions over a byte prefix of the file; nothing here allocates more than a few numbers.
import { inflateRawSync } from 'node:zlib';
import { dcmjs } from './dcmjs';
import { DicomParseError } from './errors';
import { MAX_INFLATED_BYTES, MAX_SEQUENCE_DEPTH } from './limits';
import { LONG_VRS, VRS } from './vr';
import { hex4, tagName } from '../dicom-hex';

/** Where the PixelData value lies, in file offsets (in the inflated dataset for the deflated transfer syntax). */
export interface PixelDataLocation {
  /** Offset of the value, after the element header. */
  offset: number;
  /** Value length in bytes; undefined when encapsulated (undefined length, items up to a sequence delimiter). */
  length?: number;
  encapsulated: boolean;
}

export interface Part10Layout {
  TransferSyntaxUID: string;
  /** Meta group and dataset up to (not including) the top-level PixelData element: what the header parse reads. */
  headerEnd: number;
  pixelData?: PixelDataLocation;
  /** Deflated transfer syntax only: the inflated dataset (offsets in pixelData refer to it). */
  inflated?: Uint8Array;
  /**
   * Explicit VR elements of VR UN with undefined length (PS3.5 6.2.2: a sequence in implicit VR little endian, e.g.
   * a private sequence re-encoded by a node that does not know it), whose tag the dictionary does not make an SQ:
   * `offset` of the element's tag, `end` after its sequence delimiter. dcmjs cannot read them (dicom-header.ts).
   */
  undefinedLengthUn?: Array<{ offset: number; end: number }>;
}

/** The prefix given ends before the walk could reach PixelData: read at least `needed` bytes and scan again. */
export class NeedMoreBytes extends Error {
  override name = 'NeedMoreBytes';
  constructor(readonly needed: number) {
    super(`need at least ${needed} bytes of the file`);
  }
}

const UNDEFINED = 0xffffffff;
const PIXEL_DATA = 0x7fe00010;
const ITEM = 0xfffee000;
const ITEM_DELIMITER = 0xfffee00d;
const SEQUENCE_DELIMITER = 0xfffee0dd;

const IMPLICIT_LE = '1.2.840.10008.1.2';
const EXPLICIT_BE = '1.2.840.10008.1.2.2';
const DEFLATED = '1.2.840.10008.1.2.1.99';

interface Syntax {
  explicit: boolean;
  littleEndian: boolean;
}

interface Ctx {
  bytes: Uint8Array;
  dv: DataView;
  file: string;
  /** Size of the whole file: a prefix shorter than it asks for more instead of failing. */
  fileSize: number;
  stopAtPixelData: boolean;
  pixelData?: PixelDataLocation;
  /** Set when the walk stopped at PixelData (stopAtPixelData). */
  stoppedAt?: number;
  undefinedLengthUn: Array<{ offset: number; end: number }>;
}


function corrupt(ctx: Ctx, detail: string): DicomParseError {
  return new DicomParseError(ctx.file, detail);
}

/** Fails (or asks for more of the file) unless [at, at+n) lies inside the bytes present. */
function need(ctx: Ctx, at: number, n: number, what: string): void {
  const end = at + n;
  if (end <= ctx.bytes.byteLength) return;
  if (end <= ctx.fileSize) throw new NeedMoreBytes(end);
  throw corrupt(ctx, `${what} claims ${n} bytes at offset ${at} but the file ends at ${ctx.fileSize}`);
}

function readTag(ctx: Ctx, at: number, le: boolean): number {
  return ((ctx.dv.getUint16(at, le) << 16) | ctx.dv.getUint16(at + 2, le)) >>> 0;
}

/** dcmjs decides a value's VR from its dictionary in implicit VR (and for explicit UN): mirror that for SQ. */
function dictionaryVr(tag: number): string | undefined {
  const entry = (dcmjs.data as unknown as { DicomMetaDictionary: { dictionary: Record<string, { vr?: string } | undefined> } }).DicomMetaDictionary.dictionary[tagName(tag)];
  return entry?.vr;
}

/** Walks the items of a sequence starting at `at`; returns the offset after it. `end` is undefined for undefined length. */
function walkSequence(ctx: Ctx, at: number, end: number | undefined, syntax: Syntax, depth: number, owner: number): number {
  if (depth >= MAX_SEQUENCE_DEPTH) throw corrupt(ctx, `sequences nested deeper than ${MAX_SEQUENCE_DEPTH} levels`);
  let pos = at;
  for (;;) {
    if (end !== undefined && pos === end) return pos;
    if (end !== undefined && pos + 8 > end) throw corrupt(ctx, `sequence ${tagName(owner)} ends inside an item header`);
    need(ctx, pos, 8, `an item of ${tagName(owner)}`);
    const tag = readTag(ctx, pos, syntax.littleEndian);
    const length = ctx.dv.getUint32(pos + 4, syntax.littleEndian);
    pos += 8;
    if (tag === SEQUENCE_DELIMITER) {
      if (end !== undefined) throw corrupt(ctx, `sequence delimiter inside the defined-length sequence ${tagName(owner)}`);
      return pos;
    }
    if (tag !== ITEM) throw corrupt(ctx, `sequence ${tagName(owner)} holds ${tagName(tag)} where an item belongs`);
    if (length === UNDEFINED) pos = walkDataset(ctx, pos, undefined, syntax, depth + 1);
    else {
      if (end !== undefined && pos + length > end) throw corrupt(ctx, `an item of ${tagName(owner)} runs past its sequence`);
      need(ctx, pos, length, `an item of ${tagName(owner)}`);
      pos = walkDataset(ctx, pos, pos + length, syntax, depth + 1);
    }
  }
}

/**
 * Walks data elements from `at` to `end` (undefined: up to an item delimiter, inside an undefined-length item).
 * Returns the offset after the dataset (after the delimiter when undefined).
 */
function walkDataset(ctx: Ctx, at: number, end: number | undefined, syntax: Syntax, depth: number): number {
  let pos = at;
  const le = syntax.littleEndian;
  for (;;) {
    if (end !== undefined && pos >= end) return pos;
    need(ctx, pos, 8, 'an element header');
    const tag = readTag(ctx, pos, le);
    if (tag === ITEM_DELIMITER) {
      if (end !== undefined || depth === 0) throw corrupt(ctx, `item delimiter outside an undefined-length item at offset ${pos}`);
      return pos + 8;
    }
    if (tag >>> 16 === 0xfffe) throw corrupt(ctx, `unexpected ${tagName(tag)} at offset ${pos}`);
    if (depth === 0 && tag === PIXEL_DATA && ctx.stopAtPixelData) {
      ctx.stoppedAt = pos;
    }
    let vr: string;
    let length: number;
    let header: number;
    if (syntax.explicit) {
      vr = String.fromCharCode(ctx.bytes[pos + 4], ctx.bytes[pos + 5]);
      if (!VRS.has(vr)) {
        const shown = /^[ -~]{2}$/.test(vr) ? `"${vr}"` : `0x${hex4((ctx.bytes[pos + 4] << 8) | ctx.bytes[pos + 5])}`;
        throw corrupt(ctx, `element ${tagName(tag)} at offset ${pos} has an unknown VR ${shown}`);
      }
      if (LONG_VRS.has(vr)) {
        need(ctx, pos, 12, 'an element header');
        length = ctx.dv.getUint32(pos + 8, le);
        header = 12;
      } else {
        length = ctx.dv.getUint16(pos + 6, le);
        header = 8;
      }
      // dcmjs reads UN by its dictionary VR when it has one: an SQ sent as UN is a sequence in implicit VR LE.
      if (vr === 'UN' && dictionaryVr(tag) === 'SQ') vr = 'SQ-implicit';
    } else {
      length = ctx.dv.getUint32(pos + 4, le);
      header = 8;
      vr = tag === PIXEL_DATA ? 'OW' : dictionaryVr(tag) ?? (length === UNDEFINED ? 'SQ' : 'UN');
    }
    const value = pos + header;
    if (depth === 0 && tag === PIXEL_DATA) {
      if (length === UNDEFINED) ctx.pixelData = { offset: value, encapsulated: true };
      else {
        if (value + length > ctx.fileSize) {
          throw corrupt(ctx, `pixel data truncated: ${Math.max(0, ctx.fileSize - value)} of ${length} bytes present`);
        }
        ctx.pixelData = { offset: value, length, encapsulated: false };
      }
      if (ctx.stopAtPixelData) return pos;
      if (length === UNDEFINED) {
        if (ctx.bytes.byteLength < ctx.fileSize) throw new NeedMoreBytes(ctx.fileSize);
        pos = encapsulatedItems(ctx.bytes.subarray(0, ctx.fileSize), value, ctx.file, le).end;
        continue;
      }
    }
    if (length === UNDEFINED) {
      if (vr === 'SQ' || vr === 'SQ-implicit' || vr === 'UN') {
        const inner = vr === 'SQ' ? syntax : { explicit: false, littleEndian: true };
        const start = pos;
        pos = walkSequence(ctx, value, undefined, inner, depth, tag);
        if (vr === 'UN' && syntax.explicit) ctx.undefinedLengthUn.push({ offset: start, end: pos });
        continue;
      }
      throw corrupt(ctx, `element ${tagName(tag)} (VR ${vr}) has an undefined length`);
    }
    if (end !== undefined && value + length > end) {
      throw corrupt(ctx, `element ${tagName(tag)} claims ${length} bytes but its item or sequence ends ${end - value} bytes later`);
    }
    need(ctx, value, length, `element ${tagName(tag)}`);
    if (vr === 'SQ' || vr === 'SQ-implicit') {
      const inner = vr === 'SQ' ? syntax : { explicit: false, littleEndian: true };
      walkSequence(ctx, value, value + length, inner, depth, tag);
    }
    pos = value + length;
  }
}

function syntaxOf(ts: string): Syntax {
  if (ts === IMPLICIT_LE) return { explicit: false, littleEndian: true };
  if (ts === EXPLICIT_BE) return { explicit: true, littleEndian: false };
  // Explicit VR little endian, deflated (once inflated) and every encapsulated (compressed) syntax.
  return { explicit: true, littleEndian: true };
}

/**
 * Checks the structure of a Part 10 file given as a prefix of `fileSize` bytes. Throws DicomParseError when it is
 * not well-formed DICOM, NeedMoreBytes when the prefix ends before PixelData (or before the end, when
 * `stopAtPixelData` is false). With `stopAtPixelData` the walk ends at the top-level PixelData element, whose value
 * is located but not read: its length is checked against `fileSize`, not against the prefix.
 */
export function scanPart10(bytes: Uint8Array, opts: { file?: string; fileSize?: number; stopAtPixelData?: boolean } = {}): Part10Layout {
  const file = opts.file ?? '(buffer)';
  const fileSize = opts.fileSize ?? bytes.byteLength;
  const ctx: Ctx = { bytes, dv: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), file, fileSize, stopAtPixelData: opts.stopAtPixelData ?? false, undefinedLengthUn: [] };
  if (fileSize < 132) throw new DicomParseError(file, `not a DICOM Part 10 file (${fileSize} bytes)`, 'not-dicom');
  need(ctx, 0, 132, 'the preamble');
  if (bytes[128] !== 0x44 || bytes[129] !== 0x49 || bytes[130] !== 0x43 || bytes[131] !== 0x4d) {
    throw new DicomParseError(file, 'not a DICOM Part 10 file (no "DICM" after the 128-byte preamble)', 'not-dicom');
  }
  // File meta information: explicit VR little endian, group 0002, always.
  let ts: string | undefined;
  // The meta group: element by element until the first element of another group.
  let pos = 132;
  while (pos + 8 <= fileSize) {
    need(ctx, pos, 8, 'a meta element header');
    if (ctx.dv.getUint16(pos, true) !== 0x0002) break;
    const vr = String.fromCharCode(bytes[pos + 4], bytes[pos + 5]);
    if (!VRS.has(vr) || vr === 'SQ') throw corrupt(ctx, `meta element ${tagName(readTag(ctx, pos, true))} has a bad VR`);
    const long = LONG_VRS.has(vr);
    if (long) need(ctx, pos, 12, 'a meta element header');
    const length = long ? ctx.dv.getUint32(pos + 8, true) : ctx.dv.getUint16(pos + 6, true);
    const value = pos + (long ? 12 : 8);
    if (length === UNDEFINED) throw corrupt(ctx, 'a meta element has an undefined length');
    need(ctx, value, length, `meta element ${tagName(readTag(ctx, pos, true))}`);
    if (ctx.dv.getUint16(pos + 2, true) === 0x0010) {
      ts = String.fromCharCode(...bytes.subarray(value, value + length)).replace(/[\0 ]+$/, '');
    }
    pos = value + length;
  }
  if (!ts) throw corrupt(ctx, 'no TransferSyntaxUID in the file meta information');
  if (!/^[0-9.]{1,64}$/.test(ts)) throw corrupt(ctx, 'the TransferSyntaxUID is not a UID');

  if (ts === DEFLATED) {
    // The dataset is deflated: it can only be checked whole, after inflating (capped, so a zip bomb stops early).
    need(ctx, 0, fileSize, 'the deflated dataset');
    let inflated: Uint8Array;
    try {
      inflated = inflateRawSync(bytes.subarray(pos, fileSize), { maxOutputLength: MAX_INFLATED_BYTES });
    } catch (e) {
      throw corrupt(ctx, `deflated dataset does not inflate: ${e instanceof Error ? e.message : String(e)}`);
    }
    const inner: Ctx = { bytes: inflated, dv: new DataView(inflated.buffer, inflated.byteOffset, inflated.byteLength), file, fileSize: inflated.byteLength, stopAtPixelData: false, undefinedLengthUn: [] };
    walkDataset(inner, 0, inflated.byteLength, syntaxOf(ts), 0);
    return { TransferSyntaxUID: ts, headerEnd: fileSize, pixelData: inner.pixelData, inflated };
  }

  walkDataset(ctx, pos, fileSize, syntaxOf(ts), 0);
  return { TransferSyntaxUID: ts, headerEnd: ctx.stoppedAt ?? fileSize, pixelData: ctx.pixelData, ...(ctx.undefinedLengthUn.length ? { undefinedLengthUn: ctx.undefinedLengthUn } : {}) };
}

/**
 * A copy of `bytes` (the file, or the prefix of it that `layout` was scanned from) that dcmjs 0.50 can read: it
 * reads an explicit UN of undefined length as encapsulated fragments and fails on the valid implicit VR sequence
 * it holds (PS3.5 6.2.2), so each is given as a defined-length UN of the same bytes, which dcmjs skips. No
 * attribute this project reads is inside one. A deflated file is returned as it is (dcmjs inflates it itself).
 */
export function withDefinedLengthUn(bytes: Uint8Array, layout: Part10Layout): Uint8Array {
  const copy = new Uint8Array(bytes);
  if (layout.inflated) return copy;
  const dv = new DataView(copy.buffer, copy.byteOffset, copy.byteLength);
  for (const un of layout.undefinedLengthUn ?? []) if (un.end <= copy.byteLength) dv.setUint32(un.offset + 8, un.end - un.offset - 12, true);
  return copy;
}

/** One item of encapsulated pixel data: [offset, offset + length) in the bytes given. */
export interface Fragment {
  offset: number;
  length: number;
}

/**
 * The items of encapsulated pixel data whose value starts at `at`: the Basic Offset Table (first item, often empty)
 * and the fragments, up to the sequence delimiter. Every item must lie inside `bytes`.
 */
export function encapsulatedItems(bytes: Uint8Array, at: number, file = '(buffer)', littleEndian = true): { offsetTable: Fragment; fragments: Fragment[]; end: number } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const items: Fragment[] = [];
  let pos = at;
  for (;;) {
    if (pos + 8 > bytes.byteLength) throw new DicomParseError(file, 'encapsulated pixel data truncated (no sequence delimiter before the end of the file)');
    const tag = ((dv.getUint16(pos, littleEndian) << 16) | dv.getUint16(pos + 2, littleEndian)) >>> 0;
    const length = dv.getUint32(pos + 4, littleEndian);
    pos += 8;
    if (tag === SEQUENCE_DELIMITER) break;
    if (tag !== ITEM) throw new DicomParseError(file, `encapsulated pixel data holds ${tagName(tag)} where an item belongs`);
    if (length === UNDEFINED || pos + length > bytes.byteLength) {
      throw new DicomParseError(file, `encapsulated pixel data truncated: an item claims ${length === UNDEFINED ? 'an undefined length' : `${length} bytes`} but ${bytes.byteLength - pos} remain`);
    }
    items.push({ offset: pos, length });
    pos += length;
  }
  if (items.length === 0) throw new DicomParseError(file, 'encapsulated pixel data without a Basic Offset Table item');
  return { offsetTable: items[0], fragments: items.slice(1), end: pos };
}
