// Checks a received data set's structure while its bytes arrive, so a C-STORE is answered Success only for an
// instance a reader can walk (docs/dicom-conformance.md 5.1). DatasetWalker is a bounded push parser: it is fed
// each P-DATA fragment as the spool receives it, reads element headers (tag, VR, length) and skips values without
// copying them, keeping a few bytes of state across fragments. It keeps only the top-level values it needs (the
// filing UIDs and the Image Pixel attributes); nothing else is decoded, nothing is allocated from a length read
// off the wire, and nesting depth is capped. What it checks:
//  - every element, item and fragment fits inside its container and the data set ends on an element boundary
//    (a truncated instance, or a length flipped to something huge, ends inside an element);
//  - explicit VRs are ones PS3.5 defines; lengths are even; undefined length only where PS3.5 allows it;
//  - data elements ascend within the data set and within each item; items and delimiters sit where they belong;
//  - encapsulated pixel data is a Basic Offset Table item, fragments and a sequence delimiter.
// checkImage() then compares the Image Pixel attributes with the pixel data actually received.
// dcmjs (the repository's DICOM library) reads whole buffers and trusts lengths, so it cannot be bounded here.
import { createInflateRaw } from 'node:zlib';
import { MalformedDatasetError, InvalidImageError } from './errors';
import { TransferSyntax, ENHANCED_MR_CLASSES } from './dicom-uids';
import { MAX_DATASET_HEADER_BYTES, MAX_HEADER_BYTES, MAX_INFLATED_BYTES, MAX_SEQUENCE_DEPTH } from '../../shared/imaging/limits';
import { LONG_VRS, VRS } from '../../shared/imaging/vr';
import { decodeText } from '../../shared/imaging/charset';
import { dictionarySequenceTags } from '../../shared/imaging/dcmjs';
import { tagName } from '../../shared/dicom-hex';

/** The values read from the top level of the data set. */
export interface InstanceFacts {
  /** Not a patient identifier: the RIS keys its order on it, and the worker's result and HL7 message carry it. */
  AccessionNumber?: string;
  SOPClassUID?: string;
  SOPInstanceUID?: string;
  StudyInstanceUID?: string;
  SeriesInstanceUID?: string;
  SamplesPerPixel?: number;
  PhotometricInterpretation?: string;
  NumberOfFrames?: number;
  Rows?: number;
  Columns?: number;
  BitsAllocated?: number;
  BitsStored?: number;
  /** Defined length of native Pixel Data; undefined when absent or encapsulated. */
  pixelDataLength?: number;
  /** Encapsulated Pixel Data: the Basic Offset Table's length and the number of fragments after it. */
  encapsulated?: { offsetTableLength: number; fragments: number };
}

type FactKey = Exclude<keyof InstanceFacts, 'pixelDataLength' | 'encapsulated'>;
/** Read to decode the SH values after it (tags ascend, so it comes first); not a fact of its own. */
const CHARSET = 'SpecificCharacterSet';
type ValueKind = 'UI' | 'US' | 'IS' | 'CS' | 'SH';

interface Wanted {
  key: FactKey | typeof CHARSET;
  kind: ValueKind;
  /** Longest value kept; a longer UID or number is an error, a longer text is not kept. */
  max: number;
}

const WANTED = new Map<number, Wanted>([
  // Up to four 16-character defined terms with their separators; a longer value is not kept (Latin-1, as without one).
  [0x00080005, { key: CHARSET, kind: 'CS', max: 68 }],
  [0x00080016, { key: 'SOPClassUID', kind: 'UI', max: 64 }],
  [0x00080018, { key: 'SOPInstanceUID', kind: 'UI', max: 64 }],
  [0x00080050, { key: 'AccessionNumber', kind: 'SH', max: 64 }],
  [0x0020000d, { key: 'StudyInstanceUID', kind: 'UI', max: 64 }],
  [0x0020000e, { key: 'SeriesInstanceUID', kind: 'UI', max: 64 }],
  [0x00280002, { key: 'SamplesPerPixel', kind: 'US', max: 2 }],
  [0x00280004, { key: 'PhotometricInterpretation', kind: 'CS', max: 16 }],
  [0x00280008, { key: 'NumberOfFrames', kind: 'IS', max: 12 }],
  [0x00280010, { key: 'Rows', kind: 'US', max: 2 }],
  [0x00280011, { key: 'Columns', kind: 'US', max: 2 }],
  [0x00280100, { key: 'BitsAllocated', kind: 'US', max: 2 }],
  [0x00280101, { key: 'BitsStored', kind: 'US', max: 2 }],
]);

const UNDEFINED = 0xffffffff;
const ITEM = 0xfffee000;
const ITEM_DELIMITER = 0xfffee00d;
const SEQUENCE_DELIMITER = 0xfffee0dd;
const PIXEL_DATA = 0x7fe00010;
/** Sequences by the data dictionary: what an implicit VR element with one of these tags must hold. */
const SEQUENCE_TAGS = dictionarySequenceTags();

const enum Kind {
  Dataset,
  Item,
  Sequence,
  Fragments,
}

interface Frame {
  kind: Kind;
  /** Absolute offset where a defined-length container ends; Infinity for undefined length. */
  end: number;
  /** The tightest defined end of this frame or any frame around it. */
  limit: number;
  explicit: boolean;
  lastTag: number;
}

export interface HeaderEvent {
  /** Offset of the element's first byte (its tag) in the data set. */
  offset: number;
  tag: number;
  vr: string | undefined;
  /** Bytes of tag, VR and length. */
  headerLength: number;
  length: number;
  depth: number;
}

function malformed(message: string): MalformedDatasetError {
  return new MalformedDatasetError(message);
}

/**
 * The push parser for a little endian data set (explicit or implicit VR). write() never throws: the first error
 * is kept and the rest of the stream is ignored; end() throws it, or the error of a data set that stops early.
 */
export class DatasetWalker {
  /** Bytes of the data set consumed so far. */
  private offset = 0;
  private skip = 0;
  private readonly head = Buffer.alloc(12);
  private headLen = 0;
  private headNeed = 8;
  private capture: { wanted: Wanted; value: Buffer; filled: number } | undefined;
  private readonly stack: Frame[];
  private error: Error | undefined;
  private readonly facts: InstanceFacts = {};
  /** (0008,0005) as stored, when the data set has one: how its SH values (AccessionNumber) are encoded. */
  private specificCharacterSet: string | undefined;

  constructor(
    explicit: boolean,
    /** Called for every element, item and delimiter header (the fuzz corpus generator maps instances with it). */
    private readonly onHeader?: (event: HeaderEvent) => void,
    /**
     * Bytes the elements before Pixel Data may take: the worker reads no larger header (a deflated file it reads
     * whole, so the inflated data set has none).
     */
    private readonly headerLimit = MAX_DATASET_HEADER_BYTES,
  ) {
    this.stack = [{ kind: Kind.Dataset, end: Infinity, limit: Infinity, explicit, lastTag: -1 }];
  }

  write(chunk: Buffer): void {
    if (this.error) return;
    try {
      this.consume(chunk);
    } catch (err) {
      this.error = err as Error;
    }
  }

  /** The top-level facts read so far, whether or not the data set turns out readable (to attribute a refusal). */
  seen(): InstanceFacts {
    return this.facts;
  }

  /** The data set has ended: its top-level facts, or the reason it is not readable. */
  end(): InstanceFacts {
    if (this.error) throw this.error;
    if (this.skip > 0 || this.capture || this.headLen > 0) throw malformed('data set ends inside an element (truncated)');
    this.closeFinishedFrames();
    if (this.stack.length > 1) {
      throw malformed(this.top().kind === Kind.Fragments ? 'data set ends inside encapsulated pixel data' : 'data set ends inside a sequence');
    }
    return this.facts;
  }

  private top(): Frame {
    return this.stack[this.stack.length - 1];
  }

  private consume(chunk: Buffer): void {
    let pos = 0;
    const length = chunk.length;
    while (pos < length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, length - pos);
        pos += n;
        this.offset += n;
        this.skip -= n;
        continue;
      }
      const capture = this.capture;
      if (capture) {
        const n = Math.min(capture.value.length - capture.filled, length - pos);
        chunk.copy(capture.value, capture.filled, pos, pos + n);
        capture.filled += n;
        pos += n;
        this.offset += n;
        if (capture.filled === capture.value.length) {
          this.capture = undefined;
          this.keep(capture.wanted, capture.value);
        }
        continue;
      }
      if (this.headLen === 0) {
        this.closeFinishedFrames();
        const limit = this.top().limit;
        if (this.offset + 8 > limit) throw malformed('element header runs past the end of its item');
      }
      const n = Math.min(this.headNeed - this.headLen, length - pos);
      chunk.copy(this.head, this.headLen, pos, pos + n);
      this.headLen += n;
      pos += n;
      if (this.headLen < this.headNeed) continue;
      this.header();
    }
  }

  /** A complete 8- or 12-byte header is in `head`. */
  private header(): void {
    const head = this.head;
    const frame = this.top();
    const tag = ((head.readUInt16LE(0) << 16) | head.readUInt16LE(2)) >>> 0;
    const start = this.offset;
    let vr: string | undefined;
    let length: number;
    if (frame.kind === Kind.Sequence || frame.kind === Kind.Fragments || tag >>> 16 === 0xfffe || !frame.explicit) {
      length = head.readUInt32LE(4);
    } else {
      vr = head.toString('latin1', 4, 6);
      if (!VRS.has(vr)) throw malformed(`${tagName(tag)} has an unknown value representation`);
      if (LONG_VRS.has(vr)) {
        if (this.headNeed === 8) {
          this.headNeed = 12;
          return;
        }
        length = head.readUInt32LE(8);
      } else {
        length = head.readUInt16LE(6);
      }
    }
    const headerLength = this.headNeed;
    this.offset += headerLength;
    if (this.offset > this.headerLimit && this.facts.pixelDataLength === undefined && this.facts.encapsulated === undefined) {
      throw malformed(`data set before Pixel Data larger than ${MAX_HEADER_BYTES / 1048576} MB`);
    }
    this.headLen = 0;
    this.headNeed = 8;
    this.onHeader?.({ offset: start, tag, vr, headerLength, length, depth: this.stack.length - 1 });
    if (frame.kind === Kind.Sequence) this.sequenceChild(frame, tag, length);
    else if (frame.kind === Kind.Fragments) this.fragment(tag, length);
    else this.element(frame, tag, vr, length);
  }

  private element(frame: Frame, tag: number, vr: string | undefined, length: number): void {
    if (tag >>> 16 === 0xfffe) {
      if (tag === ITEM_DELIMITER && frame.kind === Kind.Item && frame.end === Infinity) {
        if (length !== 0) throw malformed('item delimiter with a non-zero length');
        this.stack.pop();
        return;
      }
      throw malformed(`${tagName(tag)} outside the place PS3.5 allows it`);
    }
    if (tag <= frame.lastTag) throw malformed(`${tagName(tag)} out of order or repeated`);
    frame.lastTag = tag;
    const topLevel = frame.kind === Kind.Dataset;
    if (length === UNDEFINED) {
      if (topLevel && tag === PIXEL_DATA && (vr === 'OB' || vr === 'OW')) {
        this.facts.encapsulated = { offsetTableLength: -1, fragments: 0 };
        this.push(Kind.Fragments, Infinity, frame.explicit);
        return;
      }
      if (vr === undefined || vr === 'SQ' || vr === 'UN') {
        // An undefined-length UN holds an implicit VR sequence (PS3.5 6.2.2).
        this.push(Kind.Sequence, Infinity, frame.explicit && vr !== 'UN');
        return;
      }
      throw malformed(`${tagName(tag)} ${vr} has an undefined length`);
    }
    if (length % 2 !== 0) throw malformed(`${tagName(tag)} has an odd length`);
    this.fits(length, tag);
    // Implicit VR names no VR: an element the dictionary defines as a sequence is read as one, as DCMTK and dcmjs
    // read it, so a corrupted tag that lands on a sequence's (one byte flipped) cannot pass as an opaque value.
    if (vr === 'SQ' || (vr === undefined && SEQUENCE_TAGS.has(tag))) {
      this.push(Kind.Sequence, this.offset + length, frame.explicit);
      return;
    }
    if (topLevel) {
      // File meta information is the file's, never the data set's (PS3.10 7.1): a reader would take a
      // (0002,0010) here for the transfer syntax and read the whole data set differently from this walk.
      if (tag >>> 16 === 0x0002) throw malformed(`file meta element ${tagName(tag)} inside the data set`);
      if (tag === PIXEL_DATA) this.facts.pixelDataLength = length;
      const wanted = WANTED.get(tag);
      // The attributes every reader needs must have their own VR and size, so all readers get the same value.
      if (wanted && wanted.key !== CHARSET && vr !== undefined && vr !== wanted.kind) throw malformed(`${wanted.key} has VR ${vr}, not ${wanted.kind}`);
      if (wanted?.kind === 'US' && length !== 0 && length !== 2) throw malformed(`${wanted.key} value is ${length} bytes long, not 2`);
      if (wanted) {
        if (length > wanted.max + 1) {
          if (wanted.kind !== 'SH' && wanted.key !== CHARSET) throw malformed(`${wanted.key} value is ${length} bytes long`);
        } else {
          if (length === 0) this.keep(wanted, Buffer.alloc(0));
          else this.capture = { wanted, value: Buffer.alloc(length), filled: 0 };
          return;
        }
      }
    }
    this.skip = length;
  }

  private sequenceChild(frame: Frame, tag: number, length: number): void {
    if (tag === ITEM) {
      if (length === UNDEFINED) {
        this.push(Kind.Item, Infinity, frame.explicit);
        return;
      }
      if (length % 2 !== 0) throw malformed('sequence item with an odd length');
      this.fits(length, tag);
      this.push(Kind.Item, this.offset + length, frame.explicit);
      return;
    }
    if (tag === SEQUENCE_DELIMITER && frame.end === Infinity) {
      if (length !== 0) throw malformed('sequence delimiter with a non-zero length');
      this.stack.pop();
      return;
    }
    throw malformed(`${tagName(tag)} where a sequence item was expected`);
  }

  private fragment(tag: number, length: number): void {
    const encapsulated = this.facts.encapsulated as NonNullable<InstanceFacts['encapsulated']>;
    if (tag === ITEM) {
      if (length === UNDEFINED || length % 2 !== 0) throw malformed('pixel data fragment with an undefined or odd length');
      this.fits(length, tag);
      if (encapsulated.offsetTableLength < 0) encapsulated.offsetTableLength = length;
      else encapsulated.fragments += 1;
      this.skip = length;
      return;
    }
    if (tag === SEQUENCE_DELIMITER) {
      if (length !== 0) throw malformed('sequence delimiter with a non-zero length');
      if (encapsulated.offsetTableLength < 0) throw malformed('encapsulated pixel data without a Basic Offset Table item');
      this.stack.pop();
      return;
    }
    throw malformed(`${tagName(tag)} inside encapsulated pixel data`);
  }

  /** A value (or container) of `length` bytes must end inside every defined-length container around it. */
  private fits(length: number, tag: number): void {
    if (this.offset + length > this.top().limit) throw malformed(`${tagName(tag)} runs past the end of its sequence item`);
  }

  private push(kind: Kind, end: number, explicit: boolean): void {
    if (kind === Kind.Sequence && this.stack.filter((f) => f.kind === Kind.Sequence).length >= MAX_SEQUENCE_DEPTH) {
      throw malformed(`sequences nested deeper than ${MAX_SEQUENCE_DEPTH} levels`);
    }
    const limit = Math.min(end, this.top().limit);
    this.stack.push({ kind, end, limit, explicit, lastTag: -1 });
  }

  /** Pops defined-length items and sequences whose last byte has been read. */
  private closeFinishedFrames(): void {
    // Only items and sequences have a finite end; the data set and encapsulated pixel data end with Infinity.
    while (this.top().end === this.offset) this.stack.pop();
  }

  private keep(wanted: Wanted, value: Buffer): void {
    if (wanted.key === CHARSET) {
      this.specificCharacterSet = value.toString('latin1').replace(/[\0 ]+$/, '');
      return;
    }
    const facts = this.facts as Record<FactKey, string | number | undefined>;
    switch (wanted.kind) {
      case 'US':
        if (value.length !== 2) throw new InvalidImageError(`${wanted.key} is not one US value`);
        facts[wanted.key] = value.readUInt16LE(0);
        return;
      case 'IS': {
        const text = value.toString('latin1').replace(/[\0 ]+$/, '').trim();
        if (!/^\+?\d{1,10}$/.test(text)) throw new InvalidImageError(`${wanted.key} is not an integer string`);
        facts[wanted.key] = Number(text);
        return;
      }
      case 'SH':
        // SH depends on Specific Character Set (PS3.5 6.1.2.3): UTF-8 under ISO_IR 192, Latin-1 under ISO_IR 100 or none.
        facts[wanted.key] = decodeText(value, this.specificCharacterSet).replace(/[\0 ]+$/, '').replace(/^ +/, '');
        return;
      default:
        facts[wanted.key] = value.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
    }
  }
}

/** Streams a deflated data set through zlib into a walker; the inflated size is capped. */
class DeflatedWalker {
  private readonly inner = new DatasetWalker(true, undefined, Infinity);
  private readonly inflate = createInflateRaw();
  private inflated = 0;
  /** Deflated bytes received: the worker reads a deflated file whole, as its header (at most MAX_HEADER_BYTES). */
  private received = 0;
  private failed: Error | undefined;
  private readonly ended: Promise<void>;

  constructor() {
    this.inflate.on('data', (chunk: Buffer) => {
      this.inflated += chunk.length;
      if (this.inflated > MAX_INFLATED_BYTES) {
        this.failed ??= malformed('deflated data set inflates beyond the limit');
        this.inflate.destroy();
        return;
      }
      this.inner.write(chunk);
    });
    this.ended = new Promise<void>((resolve) => {
      this.inflate.once('end', resolve);
      this.inflate.once('close', resolve);
      this.inflate.once('error', () => {
        this.failed ??= malformed('deflated data set does not inflate');
        resolve();
      });
    });
  }

  write(chunk: Buffer): void {
    this.received += chunk.length;
    if (this.received > MAX_DATASET_HEADER_BYTES && !this.failed) {
      this.failed = malformed(`deflated data set larger than ${MAX_HEADER_BYTES / 1048576} MB`);
      this.inflate.destroy();
    }
    if (!this.inflate.destroyed) this.inflate.write(chunk);
  }

  async finish(): Promise<InstanceFacts> {
    if (!this.inflate.destroyed) this.inflate.end();
    await this.ended;
    if (this.failed) throw this.failed;
    return this.inner.end();
  }

  seen(): InstanceFacts {
    return this.inner.seen();
  }
}

/** What the spool feeds: write() for each fragment as it arrives, finish() once the data set is complete. */
export interface DatasetCheck {
  write(chunk: Buffer): void;
  finish(): Promise<InstanceFacts>;
  /**
   * The top-level facts read so far, also after finish() failed: the study and series of a data set refused for
   * what comes after its UIDs (docs/dicom-conformance.md). Values are as read, not checked.
   */
  seen(): InstanceFacts;
}

export function createDatasetCheck(transferSyntaxUID: string): DatasetCheck {
  if (transferSyntaxUID === TransferSyntax.DeflatedExplicitVRLittleEndian) return new DeflatedWalker();
  const walker = new DatasetWalker(transferSyntaxUID !== TransferSyntax.ImplicitVRLittleEndian);
  return {
    write: (chunk) => walker.write(chunk),
    finish: async () => walker.end(),
    seen: () => walker.seen(),
  };
}

/** Walks a whole data set held in one buffer (tests, the fuzz corpus tools). */
export function walkDataset(dataset: Buffer, transferSyntaxUID: string, onHeader?: (event: HeaderEvent) => void): InstanceFacts {
  const walker = new DatasetWalker(transferSyntaxUID !== TransferSyntax.ImplicitVRLittleEndian, onHeader);
  walker.write(dataset);
  return walker.end();
}

/** Transfer syntaxes whose Pixel Data is native (a defined-length value); the others encapsulate it. */
const NATIVE: ReadonlySet<string> = new Set([
  TransferSyntax.ImplicitVRLittleEndian,
  TransferSyntax.ExplicitVRLittleEndian,
  TransferSyntax.DeflatedExplicitVRLittleEndian,
]);

/** Pixel Data bytes a native image must hold (PS3.5 8.1.1, 8.2.1 for YBR_FULL_422), padded to even length. */
export function nativePixelBytes(f: Required<Pick<InstanceFacts, 'Rows' | 'Columns' | 'BitsAllocated' | 'SamplesPerPixel'>> & InstanceFacts): number {
  const samples = f.PhotometricInterpretation === 'YBR_FULL_422' ? 2 : f.SamplesPerPixel;
  const bytes = Math.ceil((f.Rows * f.Columns * (f.NumberOfFrames ?? 1) * samples * f.BitsAllocated) / 8);
  return bytes + (bytes % 2);
}

/**
 * The Image Pixel Module checks (PS3.3 C.7.6.3) for an instance we store: the attributes a decoder needs are
 * present and sane, and the pixel data received matches what they describe. Throws InvalidImageError (A900).
 */
export function checkImage(facts: InstanceFacts, transferSyntaxUID: string, sopClassUID: string): void {
  const required: FactKey[] = ['Rows', 'Columns', 'BitsAllocated', 'BitsStored', 'SamplesPerPixel', 'PhotometricInterpretation'];
  if (ENHANCED_MR_CLASSES.includes(sopClassUID)) required.push('NumberOfFrames');
  const missing = required.filter((k) => facts[k] === undefined || facts[k] === '');
  if (facts.pixelDataLength === undefined && facts.encapsulated === undefined) missing.push('PixelData' as FactKey);
  if (missing.length > 0) throw new InvalidImageError(`missing ${missing.join(', ')}`);
  const { Rows, Columns, BitsAllocated, BitsStored, SamplesPerPixel } = facts as Required<InstanceFacts>;
  const frames = facts.NumberOfFrames ?? 1;
  if (Rows < 1 || Columns < 1) throw new InvalidImageError('Rows or Columns is 0');
  if (![1, 8, 16, 32, 64].includes(BitsAllocated)) throw new InvalidImageError(`BitsAllocated ${BitsAllocated} is not 1, 8, 16, 32 or 64`);
  if (BitsStored < 1 || BitsStored > BitsAllocated) throw new InvalidImageError(`BitsStored ${BitsStored} does not fit BitsAllocated ${BitsAllocated}`);
  if (SamplesPerPixel !== 1 && SamplesPerPixel !== 3) throw new InvalidImageError(`SamplesPerPixel ${SamplesPerPixel} is not 1 or 3`);
  if (frames < 1) throw new InvalidImageError('NumberOfFrames is 0');
  if (NATIVE.has(transferSyntaxUID)) {
    if (facts.encapsulated) throw new InvalidImageError('encapsulated Pixel Data in a native transfer syntax');
    const expected = nativePixelBytes({ ...facts, Rows, Columns, BitsAllocated, SamplesPerPixel });
    const received = facts.pixelDataLength as number;
    if (received !== expected) throw new InvalidImageError(`Pixel Data holds ${received} bytes, the image attributes need ${expected}`);
    return;
  }
  const encapsulated = facts.encapsulated;
  if (!encapsulated) throw new InvalidImageError('native Pixel Data in an encapsulated transfer syntax');
  if (encapsulated.fragments < frames) throw new InvalidImageError(`${encapsulated.fragments} pixel data fragments for ${frames} frames`);
  if (encapsulated.offsetTableLength !== 0 && encapsulated.offsetTableLength !== 4 * frames) {
    throw new InvalidImageError(`Basic Offset Table has ${encapsulated.offsetTableLength / 4} entries for ${frames} frames`);
  }
}
