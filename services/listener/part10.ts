// DICOM Part 10 framing for received data sets, without parsing the data set itself:
//  - buildFileMeta(): preamble + "DICM" + File Meta Information (group 0002) from the C-STORE command and the
//    presentation context, so the bytes received on the wire follow it unchanged;
//  - peekHeader(): a small bounded read of the first top-level elements of a data set, enough to find the four
//    UIDs we file an instance under, skipping (not decoding) sequences and stopping after SeriesInstanceUID.
// Parsing and re-serialising whole data sets is what made stock dcmjs-dimse ~10x slower than DCMTK.
import { inflateRawSync, constants as zlibConstants } from 'node:zlib';
import { MalformedDatasetError } from './errors';
import { TransferSyntax } from './dicom-uids';

export interface FileMetaInput {
  MediaStorageSOPClassUID: string;
  MediaStorageSOPInstanceUID: string;
  TransferSyntaxUID: string;
  ImplementationClassUID: string;
  ImplementationVersionName: string;
  /** The calling AE title of the association the instance arrived on. */
  SourceApplicationEntityTitle?: string;
}

function padded(value: string, pad: number): Buffer {
  const bytes = Buffer.from(value, 'latin1');
  return bytes.length % 2 === 0 ? bytes : Buffer.concat([bytes, Buffer.from([pad])]);
}

/** One explicit VR little endian element with a 2-byte length (all group 0002 VRs we write except OB). */
function shortElement(element: number, vr: string, value: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16LE(0x0002, 0);
  head.writeUInt16LE(element, 2);
  head.write(vr, 4, 'latin1');
  head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

/** Preamble (128 zero bytes), "DICM" and the File Meta Information group, explicit VR little endian. */
export function buildFileMeta(input: FileMetaInput): Buffer {
  const version = Buffer.alloc(14);
  version.writeUInt16LE(0x0002, 0);
  version.writeUInt16LE(0x0001, 2);
  version.write('OB', 4, 'latin1');
  version.writeUInt32LE(2, 8);
  version[12] = 0x00;
  version[13] = 0x01;
  const elements = [
    version,
    shortElement(0x0002, 'UI', padded(input.MediaStorageSOPClassUID, 0)),
    shortElement(0x0003, 'UI', padded(input.MediaStorageSOPInstanceUID, 0)),
    shortElement(0x0010, 'UI', padded(input.TransferSyntaxUID, 0)),
    shortElement(0x0012, 'UI', padded(input.ImplementationClassUID, 0)),
    shortElement(0x0013, 'SH', padded(input.ImplementationVersionName.slice(0, 16), 0x20)),
  ];
  if (input.SourceApplicationEntityTitle) {
    elements.push(shortElement(0x0016, 'AE', padded(input.SourceApplicationEntityTitle.slice(0, 16), 0x20)));
  }
  const body = Buffer.concat(elements);
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt16LE(0x0002, 0);
  groupLength.writeUInt16LE(0x0000, 2);
  groupLength.write('UL', 4, 'latin1');
  groupLength.writeUInt16LE(4, 6);
  groupLength.writeUInt32LE(body.length, 8);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), groupLength, body]);
}

export interface InstanceHeader {
  /** Not a patient identifier: the RIS keys its order on it, and the worker's result and HL7 message carry it. */
  AccessionNumber?: string;
  SOPClassUID?: string;
  SOPInstanceUID?: string;
  StudyInstanceUID?: string;
  SeriesInstanceUID?: string;
}

/** The prefix ended before the header did; the caller may retry with more bytes. */
export class NeedMoreBytes extends Error {
  override name = 'NeedMoreBytes';
}

const WANTED: Record<number, keyof InstanceHeader> = {
  0x00080016: 'SOPClassUID',
  0x00080018: 'SOPInstanceUID',
  0x00080050: 'AccessionNumber',
  0x0020000d: 'StudyInstanceUID',
  0x0020000e: 'SeriesInstanceUID',
};
const LAST_WANTED = 0x0020000e;
const UNDEFINED = 0xffffffff;
const ITEM = 0xfffee000;
const ITEM_DELIMITER = 0xfffee00d;
const SEQUENCE_DELIMITER = 0xfffee0dd;
/** Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2). */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const MAX_DEPTH = 16;

class Reader {
  offset = 0;
  constructor(
    readonly buf: Buffer,
    /** True when buf is the whole data set, so running out of bytes ends the data set rather than the prefix. */
    readonly complete: boolean,
  ) {}

  need(n: number): void {
    if (this.offset + n > this.buf.length) {
      if (this.complete) throw new MalformedDatasetError('data set ends inside an element');
      throw new NeedMoreBytes();
    }
  }
  atEnd(): boolean {
    return this.offset >= this.buf.length;
  }
  tag(): number {
    this.need(4);
    const group = this.buf.readUInt16LE(this.offset);
    const element = this.buf.readUInt16LE(this.offset + 2);
    this.offset += 4;
    return ((group << 16) | element) >>> 0;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.offset);
    this.offset += 4;
    return v;
  }
  skip(n: number): void {
    this.need(n);
    this.offset += n;
  }
}

interface ElementHead {
  tag: number;
  vr: string | undefined;
  length: number;
}

function readElementHead(r: Reader, explicit: boolean): ElementHead {
  const tag = r.tag();
  if (tag >>> 16 === 0xfffe) return { tag, vr: undefined, length: r.u32() };
  if (!explicit) return { tag, vr: undefined, length: r.u32() };
  r.need(4);
  const vr = r.buf.toString('latin1', r.offset, r.offset + 2);
  if (!/^[A-Z]{2}$/.test(vr)) throw new MalformedDatasetError('invalid value representation');
  if (LONG_VRS.has(vr)) {
    r.offset += 4;
    return { tag, vr, length: r.u32() };
  }
  const length = r.buf.readUInt16LE(r.offset + 2);
  r.offset += 4;
  return { tag, vr, length };
}

/** Skips an undefined-length value: a sequence of items (or encapsulated fragments) up to its delimiter. */
function skipUndefinedLength(r: Reader, explicit: boolean, depth: number): void {
  if (depth > MAX_DEPTH) throw new MalformedDatasetError('sequences nested too deep');
  for (;;) {
    const head = readElementHead(r, false);
    if (head.tag === SEQUENCE_DELIMITER) return;
    if (head.tag !== ITEM) throw new MalformedDatasetError('expected an item in an undefined-length sequence');
    if (head.length !== UNDEFINED) {
      r.skip(head.length);
      continue;
    }
    // An undefined-length item: its elements, each possibly a nested undefined-length sequence.
    for (;;) {
      const inner = readElementHead(r, explicit);
      if (inner.tag === ITEM_DELIMITER) break;
      if (inner.length === UNDEFINED) skipUndefinedLength(r, explicit && inner.vr !== 'UN', depth + 1);
      else r.skip(inner.length);
    }
  }
}

function uidValue(buf: Buffer, start: number, length: number): string {
  return buf.toString('latin1', start, start + length).replace(/[\0 ]+$/, '');
}

/** Reads the four filing UIDs from a data set in the given (little endian) transfer syntax. */
function peekPlain(buf: Buffer, explicit: boolean, complete: boolean): InstanceHeader {
  const r = new Reader(buf, complete);
  const header: InstanceHeader = {};
  let previous = -1;
  for (;;) {
    if (r.atEnd()) {
      if (complete) return header;
      throw new NeedMoreBytes();
    }
    const head = readElementHead(r, explicit);
    if (head.tag >>> 16 === 0xfffe) throw new MalformedDatasetError('item outside a sequence');
    // PS3.5 7.1: top-level elements ascend; a step back means the bytes are not a data set.
    if (head.tag <= previous) throw new MalformedDatasetError('data elements out of order');
    previous = head.tag;
    if (head.tag > LAST_WANTED) return header;
    const key = WANTED[head.tag];
    if (head.length === UNDEFINED) {
      if (key) throw new MalformedDatasetError('UID element with undefined length');
      skipUndefinedLength(r, explicit && head.vr !== 'UN', 1);
      continue;
    }
    r.need(head.length);
    if (key) header[key] = uidValue(buf, r.offset, head.length);
    r.offset += head.length;
    if (head.tag === LAST_WANTED) return header;
  }
}

/**
 * Reads SOPClassUID, SOPInstanceUID, StudyInstanceUID and SeriesInstanceUID from the start of a data set.
 * `complete` says whether `prefix` holds the whole data set. Throws NeedMoreBytes when the prefix is too short,
 * MalformedDatasetError when the bytes are not a readable data set.
 */
export function peekHeader(prefix: Buffer, transferSyntaxUID: string, complete: boolean): InstanceHeader {
  if (transferSyntaxUID === TransferSyntax.DeflatedExplicitVRLittleEndian) {
    let inflated: Buffer;
    try {
      // SYNC_FLUSH lets a prefix of the deflate stream inflate as far as it goes instead of failing.
      inflated = inflateRawSync(prefix, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
    } catch {
      throw new MalformedDatasetError('deflated data set does not inflate');
    }
    return peekPlain(inflated, true, complete);
  }
  return peekPlain(prefix, transferSyntaxUID !== TransferSyntax.ImplicitVRLittleEndian, complete);
}
