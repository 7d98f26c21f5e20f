// A seeded, bounded mutation corpus of MR instances for the listener's fuzz test and `npm run fuzz:listener`:
// a few synthetic base instances (MR Image in explicit, implicit and deflated little endian and RLE-encapsulated;
// Enhanced and Legacy Converted Enhanced MR multi-frame, with nested functional group sequences), and mutants of
// them of the kinds a broken sender or a damaged file produces: truncations, random byte flips, flips inside an
// element header, VR flips (SH read as "CH", a short VR turned long), huge lengths, lies about NumberOfFrames,
// Rows, Columns or bits, dropped attributes, shortened pixel data, swapped elements, damaged fragments.
// The same (seed, count) always gives the same bytes. Every mutant is the data set as sent after the C-STORE
// command; its SOP Class and Instance UID are the base's (what a sender would put in the command).
import { deflateRawSync } from 'node:zlib';
import { Rng } from '../synth/prng';
import { dcmjs } from '../../shared/imaging/dcmjs';
import { makeEnhancedSeries, makeSeries, axialPositions, phantom } from '../../shared/imaging/synthetic';
import { walkDataset, type HeaderEvent } from '../../services/listener/dataset-check';
import { SopClass, TransferSyntax } from '../../services/listener/dicom-uids';

export interface CorpusInstance {
  /** e.g. "0042-truncate-mr-explicit". */
  id: string;
  base: string;
  mutation: MutationKind | 'none';
  /** What was changed and where (offsets, tags); synthetic data, no patient identifiers anywhere. */
  detail: string;
  SOPClassUID: string;
  SOPInstanceUID: string;
  transferSyntaxUID: string;
  dataset: Buffer;
}

export const MUTATION_KINDS = [
  'truncate',
  'byte-flip',
  'header-flip',
  'vr-flip',
  'huge-length',
  'frames-lie',
  'dimension-lie',
  'drop-attribute',
  'pixel-shortened',
  'swap-elements',
  'fragment-damage',
] as const;
export type MutationKind = (typeof MUTATION_KINDS)[number];

/** How often each kind is drawn (truncations and flips dominate, as in the corpus issue 14 describes). */
const WEIGHTS: ReadonlyArray<readonly [MutationKind, number]> = [
  ['truncate', 6],
  ['byte-flip', 6],
  ['header-flip', 5],
  ['vr-flip', 3],
  ['huge-length', 3],
  ['frames-lie', 2],
  ['dimension-lie', 2],
  ['drop-attribute', 2],
  ['pixel-shortened', 1],
  ['swap-elements', 1],
  ['fragment-damage', 2],
];

export interface BaseInstance {
  name: string;
  SOPClassUID: string;
  SOPInstanceUID: string;
  transferSyntaxUID: string;
  dataset: Buffer;
  /** For a deflated base: the explicit VR data set before deflation (structural mutations work on it). */
  plain?: Buffer;
}

/** The data set of a Part 10 file and its transfer syntax (the File Meta Information is not sent on the wire). */
export function splitPart10(file: Uint8Array): { transferSyntaxUID: string; dataset: Buffer } {
  const bytes = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  if (bytes.toString('latin1', 128, 132) !== 'DICM') throw new Error('not a Part 10 file');
  const groupLength = bytes.readUInt32LE(140);
  const metaEnd = 144 + groupLength;
  let transferSyntaxUID = '';
  for (let o = 144; o < metaEnd; ) {
    const element = bytes.readUInt16LE(o + 2);
    const vr = bytes.toString('latin1', o + 4, o + 6);
    const long = ['OB', 'OW', 'UN', 'UT', 'SQ'].includes(vr);
    const length = long ? bytes.readUInt32LE(o + 8) : bytes.readUInt16LE(o + 6);
    const start = o + (long ? 12 : 8);
    if (element === 0x0010) transferSyntaxUID = bytes.toString('latin1', start, start + length).replace(/[\0 ]+$/, '');
    o = start + length;
  }
  return { transferSyntaxUID, dataset: Buffer.from(bytes.subarray(metaEnd)) };
}

/** Re-encodes a Part 10 file's data set in another uncompressed transfer syntax (dcmjs writes what the meta says). */
function reencode(file: Uint8Array, transferSyntaxUID: string): Uint8Array {
  const dict = dcmjs.data.DicomMessage.readFile(file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength) as ArrayBuffer);
  dict.meta['00020010'] = { vr: 'UI', Value: [transferSyntaxUID] };
  return new Uint8Array(dict.write());
}

async function rleEncode(file: Uint8Array): Promise<Uint8Array> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only to build the encapsulated base
  const codecs = require('dcmjs-codecs') as typeof import('dcmjs-codecs');
  if (!codecs.NativeCodecs.isInitialized()) await codecs.NativeCodecs.initializeAsync();
  // dcmjs warns about every private element it re-encodes; they are there on purpose.
  (dcmjs.log as unknown as { setLevel(level: string): void }).setLevel('error');
  const transcoder = new codecs.Transcoder(file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength) as ArrayBuffer);
  transcoder.transcode(TransferSyntax.RLELossless);
  return new Uint8Array(transcoder.getDicomPart10());
}

function seededUid(rng: Rng): string {
  let digits = String(rng.int(1, 9));
  while (digits.length < 38) digits += String(rng.int(0, 9));
  return `2.25.${digits}`;
}

/** The base instances, valid in every respect the listener checks (the fuzz test asserts they are stored). */
export async function baseInstances(seed: number): Promise<BaseInstance[]> {
  const rng = new Rng('fuzz-bases', seed);
  const StudyInstanceUID = seededUid(rng);
  const centre: [number, number, number] = [0, 0, 20];
  const intensity = phantom(centre, [10, -10, 25], 6);
  const sequenceItem = { ReferencedSOPClassUID: SopClass.MRImageStorage, ReferencedSOPInstanceUID: seededUid(rng) };
  const [slice] = makeSeries({
    StudyInstanceUID,
    SeriesInstanceUID: seededUid(rng),
    rows: 32,
    columns: 32,
    positions: axialPositions(centre, 1, 5, 32, 32),
    intensity,
    // Nested content before the UIDs and the pixel data, and a private element, as scanners write them.
    attributes: { ReferencedImageSequence: [sequenceItem, sequenceItem], AccessionNumber: 'FUZZ0001' },
    raw: { '00190010': { vr: 'LO', Value: ['SIEMENS MR HEADER'] }, '0019100C': { vr: 'IS', Value: [1000] } },
  });
  const enhancedSpec = {
    StudyInstanceUID,
    rows: 16,
    columns: 16,
    positions: axialPositions(centre, 4, 5, 16, 16),
    intensity,
  };
  const enhanced = makeEnhancedSeries({ ...enhancedSpec, SeriesInstanceUID: seededUid(rng) });
  const legacy = makeEnhancedSeries({
    ...enhancedSpec,
    SeriesInstanceUID: seededUid(rng),
    attributes: { SOPClassUID: SopClass.LegacyConvertedEnhancedMRImageStorage },
  });
  const sources: Array<[string, Uint8Array]> = [
    ['mr-explicit', slice],
    ['mr-implicit', reencode(slice, TransferSyntax.ImplicitVRLittleEndian)],
    ['mr-rle', await rleEncode(slice)],
    ['enhanced-explicit', enhanced],
    ['enhanced-implicit', reencode(enhanced, TransferSyntax.ImplicitVRLittleEndian)],
    ['legacy-explicit', legacy],
  ];
  const bases: BaseInstance[] = sources.map(([name, file]) => {
    const { transferSyntaxUID, dataset } = splitPart10(file);
    const facts = walkDataset(dataset, transferSyntaxUID);
    return { name, transferSyntaxUID, dataset, SOPClassUID: facts.SOPClassUID as string, SOPInstanceUID: facts.SOPInstanceUID as string };
  });
  const explicit = bases[0];
  bases.push({
    ...explicit,
    name: 'mr-deflated',
    transferSyntaxUID: TransferSyntax.DeflatedExplicitVRLittleEndian,
    dataset: deflateRawSync(explicit.dataset),
    plain: explicit.dataset,
  });
  return bases;
}

/** Every element, item and delimiter header of a (valid) data set, in stream order. */
function headersOf(dataset: Buffer, transferSyntaxUID: string): HeaderEvent[] {
  const events: HeaderEvent[] = [];
  walkDataset(dataset, transferSyntaxUID, (e) => events.push(e));
  return events;
}

const TAG = {
  NumberOfFrames: 0x00280008,
  Rows: 0x00280010,
  Columns: 0x00280011,
  BitsAllocated: 0x00280100,
  SamplesPerPixel: 0x00280002,
  PixelData: 0x7fe00010,
} as const;

const DROPPABLE: ReadonlyArray<[string, number]> = [
  ['Rows', TAG.Rows],
  ['Columns', TAG.Columns],
  ['BitsAllocated', TAG.BitsAllocated],
  ['SamplesPerPixel', TAG.SamplesPerPixel],
  ['PhotometricInterpretation', 0x00280004],
  ['BitsStored', 0x00280101],
  ['PixelData', TAG.PixelData],
  ['NumberOfFrames', TAG.NumberOfFrames],
  ['SOPInstanceUID', 0x00080018],
  ['StudyInstanceUID', 0x0020000d],
  ['SeriesInstanceUID', 0x0020000e],
];

const hex = (tag: number) => `(${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')})`;

/** Re-encodes one top-level element with a new value (length field updated), the rest byte for byte. */
function replaceValue(dataset: Buffer, element: HeaderEvent, value: Buffer): Buffer {
  const head = Buffer.from(dataset.subarray(element.offset, element.offset + element.headerLength));
  if (element.headerLength === 12) head.writeUInt32LE(value.length, 8);
  else if (element.vr !== undefined) head.writeUInt16LE(value.length, 6);
  else head.writeUInt32LE(value.length, 4);
  const end = element.offset + element.headerLength + element.length;
  return Buffer.concat([dataset.subarray(0, element.offset), head, value, dataset.subarray(end)]);
}

function isValue(text: string): Buffer {
  return Buffer.from(text.length % 2 ? `${text} ` : text, 'latin1');
}

function usValue(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n, 0);
  return b;
}

/** The top-level element for `tag` in a base's headers (depth 0, not an item). */
function topLevel(headers: HeaderEvent[], tag: number): HeaderEvent | undefined {
  return headers.find((h) => h.depth === 0 && h.tag === tag);
}

interface Mutated {
  bytes: Buffer;
  detail: string;
}

/**
 * Applies one mutation of `kind` to a base, or undefined when the kind does not apply to it (the caller draws
 * again). Structural mutations of a deflated base work on its plain form and deflate the result.
 */
function mutate(base: BaseInstance, kind: MutationKind, rng: Rng): Mutated | undefined {
  const deflated = base.plain !== undefined;
  const plain = base.plain ?? base.dataset;
  const plainTs = deflated ? TransferSyntax.ExplicitVRLittleEndian : base.transferSyntaxUID;
  const headers = headersOf(plain, plainTs);
  const explicit = plainTs !== TransferSyntax.ImplicitVRLittleEndian;
  const wrap = (m: Mutated | undefined): Mutated | undefined => (m && deflated ? { ...m, bytes: deflateRawSync(m.bytes) } : m);
  switch (kind) {
    case 'truncate': {
      const bytes = base.dataset;
      // Half the cuts land in the header part, half anywhere (mostly pixel data).
      const pixel = topLevel(headers, TAG.PixelData);
      const headerEnd = deflated || !pixel ? bytes.length : pixel.offset;
      const at = rng.chance(0.5) ? rng.int(0, Math.max(0, headerEnd - 1)) : rng.int(0, bytes.length - 1);
      return { bytes: Buffer.from(bytes.subarray(0, at)), detail: `cut at ${at} of ${bytes.length} bytes` };
    }
    case 'byte-flip': {
      const bytes = Buffer.from(base.dataset);
      const flips: string[] = [];
      for (let i = rng.int(1, 3); i > 0; i--) {
        const at = rng.int(0, bytes.length - 1);
        const mask = rng.int(1, 255);
        bytes[at] ^= mask;
        flips.push(`${at}^0x${mask.toString(16)}`);
      }
      return { bytes, detail: `flipped ${flips.join(' ')}` };
    }
    case 'header-flip': {
      const h = rng.pick(headers);
      const bytes = Buffer.from(plain);
      const at = h.offset + rng.int(0, h.headerLength - 1);
      const mask = 1 << rng.int(0, 7);
      bytes[at] ^= mask;
      return wrap({ bytes, detail: `bit 0x${mask.toString(16)} at ${at} in the header of ${hex(h.tag)}` });
    }
    case 'vr-flip': {
      if (!explicit) return undefined;
      const candidates = headers.filter((h) => h.vr !== undefined && h.headerLength === 8);
      if (candidates.length === 0) return undefined;
      const h = rng.pick(candidates);
      const to = rng.pick(['CH', 'CH', 'ZZ', 'sh', '\0\0', 'OB', 'UN', 'SQ']);
      const bytes = Buffer.from(plain);
      bytes.write(to, h.offset + 4, 'latin1');
      return wrap({ bytes, detail: `${hex(h.tag)} VR ${h.vr} -> ${JSON.stringify(to)}` });
    }
    case 'huge-length': {
      const h = rng.pick(headers);
      const bytes = Buffer.from(plain);
      let value: number;
      if (h.headerLength === 12 || h.vr === undefined) {
        value = rng.pick([0xfffffff0, 0x7fffffff, 0x2d3b6ca0, 0xfffffffe, h.length + 0x10000]);
        bytes.writeUInt32LE(value >>> 0, h.offset + (h.headerLength === 12 ? 8 : 4));
      } else {
        value = rng.pick([0xffff, 0xfffe, 0x8000]);
        bytes.writeUInt16LE(value, h.offset + 6);
      }
      return wrap({ bytes, detail: `${hex(h.tag)} length ${h.length} -> 0x${value.toString(16)}` });
    }
    case 'frames-lie': {
      const claim = rng.pick(['100000', '0', '2', '65536', '-1', '3.5']);
      const existing = topLevel(headers, TAG.NumberOfFrames);
      let bytes: Buffer;
      if (existing) {
        bytes = replaceValue(plain, existing, isValue(claim));
      } else {
        // A single-frame class given a NumberOfFrames: inserted in tag order, before Rows.
        const rows = topLevel(headers, TAG.Rows);
        if (!rows) return undefined;
        const value = isValue(claim);
        const head = Buffer.alloc(8);
        head.writeUInt16LE(0x0028, 0);
        head.writeUInt16LE(0x0008, 2);
        if (explicit) {
          head.write('IS', 4, 'latin1');
          head.writeUInt16LE(value.length, 6);
        } else {
          head.writeUInt32LE(value.length, 4);
        }
        bytes = Buffer.concat([plain.subarray(0, rows.offset), head, value, plain.subarray(rows.offset)]);
      }
      return wrap({ bytes, detail: `NumberOfFrames ${existing ? 'set' : 'added'} as "${claim}"` });
    }
    case 'dimension-lie': {
      const [name, tag] = rng.pick([['Rows', TAG.Rows], ['Columns', TAG.Columns], ['BitsAllocated', TAG.BitsAllocated], ['SamplesPerPixel', TAG.SamplesPerPixel]] as const);
      const element = topLevel(headers, tag);
      if (!element) return undefined;
      const original = plain.readUInt16LE(element.offset + element.headerLength);
      const claims = name === 'BitsAllocated' ? [8, 32, 12, 0] : name === 'SamplesPerPixel' ? [3, 0, 2] : [65535, 0, original + 1, original * 2];
      const claim = rng.pick(claims);
      return wrap({ bytes: replaceValue(plain, element, usValue(claim)), detail: `${name} ${original} -> ${claim}` });
    }
    case 'drop-attribute': {
      const present = DROPPABLE.filter(([, tag]) => topLevel(headers, tag));
      const [name, tag] = rng.pick(present);
      const element = topLevel(headers, tag) as HeaderEvent;
      const next = headers.find((h) => h.offset > element.offset && h.depth === 0);
      const end = next ? next.offset : plain.length;
      return wrap({ bytes: Buffer.concat([plain.subarray(0, element.offset), plain.subarray(end)]), detail: `dropped ${name}` });
    }
    case 'pixel-shortened': {
      const pixel = topLevel(headers, TAG.PixelData);
      if (!pixel || pixel.length === 0xffffffff) return undefined;
      const cut = 2 * rng.int(1, Math.max(1, Math.floor(pixel.length / 4)));
      const value = plain.subarray(pixel.offset + pixel.headerLength, pixel.offset + pixel.headerLength + pixel.length - cut);
      return wrap({ bytes: replaceValue(plain, pixel, value), detail: `Pixel Data ${pixel.length} -> ${pixel.length - cut} bytes, length field consistent` });
    }
    case 'swap-elements': {
      const top = headers.filter((h) => h.depth === 0);
      const i = rng.int(0, top.length - 3);
      const [a, b, c] = [top[i], top[i + 1], top[i + 2]];
      const bytes = Buffer.concat([plain.subarray(0, a.offset), plain.subarray(b.offset, c.offset), plain.subarray(a.offset, b.offset), plain.subarray(c.offset)]);
      return wrap({ bytes, detail: `swapped ${hex(a.tag)} and ${hex(b.tag)}` });
    }
    case 'fragment-damage': {
      const pixel = topLevel(headers, TAG.PixelData);
      if (!pixel || pixel.length !== 0xffffffff) return undefined;
      const items = headers.filter((h) => h.offset > pixel.offset && h.depth === 1);
      const delimiter = items[items.length - 1];
      const fragments = items.filter((h) => h.tag === 0xfffee000);
      const choice = rng.int(0, 3);
      if (choice === 0) {
        return { bytes: Buffer.from(plain.subarray(0, delimiter.offset)), detail: 'sequence delimiter of the fragments removed' };
      }
      if (choice === 1 && fragments.length > 1) {
        const f = fragments[fragments.length - 1];
        return { bytes: Buffer.concat([plain.subarray(0, f.offset), plain.subarray(delimiter.offset)]), detail: 'last fragment removed' };
      }
      const bytes = Buffer.from(plain);
      const f = rng.pick(fragments);
      const length = choice === 2 ? f.length + 1 : f.length + 2 * rng.int(1, 64);
      bytes.writeUInt32LE(length, f.offset + 4);
      return { bytes, detail: `fragment at ${f.offset} length ${f.length} -> ${length}` };
    }
  }
}

export interface CorpusOptions {
  seed: number;
  /** Mutants to make (the clean bases are added on top). */
  count: number;
}

/** The clean bases followed by `count` mutants, deterministic for a seed. */
export async function mutationCorpus(options: CorpusOptions): Promise<CorpusInstance[]> {
  const bases = await baseInstances(options.seed);
  const rng = new Rng('fuzz-mutations', options.seed);
  const out: CorpusInstance[] = bases.map((b, i) => ({
    id: `${String(i).padStart(4, '0')}-clean-${b.name}`,
    base: b.name,
    mutation: 'none',
    detail: 'unchanged',
    SOPClassUID: b.SOPClassUID,
    SOPInstanceUID: b.SOPInstanceUID,
    transferSyntaxUID: b.transferSyntaxUID,
    dataset: b.dataset,
  }));
  // Bounded: a kind that does not apply to the drawn base is drawn again, at most a few times per mutant.
  for (let made = 0, tries = 0; made < options.count && tries < options.count * 20; tries++) {
    const base = rng.pick(bases);
    const kind = rng.weighted(WEIGHTS);
    const mutated = mutate(base, kind, rng);
    if (!mutated) continue;
    made += 1;
    out.push({
      id: `${String(out.length).padStart(4, '0')}-${kind}-${base.name}`,
      base: base.name,
      mutation: kind,
      detail: mutated.detail,
      SOPClassUID: base.SOPClassUID,
      SOPInstanceUID: base.SOPInstanceUID,
      transferSyntaxUID: base.transferSyntaxUID,
      dataset: mutated.bytes,
    });
  }
  return out;
}
