// The streaming structure walk and the image checks against data sets written by dcmjs (a reference encoder):
// the UIDs and image attributes are read past sequences of defined and undefined length in every little endian
// syntax, the result does not depend on how the bytes are split into fragments, and each kind of damage the fuzz
// corpus makes is refused with the status class the conformance statement gives it.
import { deflateRawSync } from 'node:zlib';
import { dcmjs } from '../../shared/imaging/dcmjs';
import { MAX_SEQUENCE_DEPTH } from '../../shared/imaging/limits';
import { checkImage, createDatasetCheck, walkDataset, type InstanceFacts } from './dataset-check';
import { InvalidImageError, MalformedDatasetError } from './errors';
import { SopClass, TransferSyntax } from './dicom-uids';

interface Writer {
  data: { DicomMessage: { write(dict: unknown, stream: unknown, ts: string, options: Record<string, unknown>): void }; WriteBufferStream: new () => { getBuffer(): ArrayBuffer } };
}
const writer = dcmjs as unknown as Writer;

function encode(ds: Record<string, unknown>, ts: string): Buffer {
  const stream = new writer.data.WriteBufferStream();
  writer.data.DicomMessage.write(dcmjs.data.DicomMetaDictionary.denaturalizeDataset(ds), stream, ts, {});
  return Buffer.from(stream.getBuffer());
}

const UIDS = {
  SOPClassUID: SopClass.MRImageStorage,
  SOPInstanceUID: '1.2.3.4.5.6.7',
  StudyInstanceUID: '1.2.3.4.5',
  SeriesInstanceUID: '1.2.3.4.5.6',
};

const IMAGE = {
  SamplesPerPixel: 1,
  PhotometricInterpretation: 'MONOCHROME2',
  Rows: 2,
  Columns: 3,
  BitsAllocated: 16,
  BitsStored: 12,
  HighBit: 11,
  PixelRepresentation: 0,
  PixelData: [new Uint16Array([1, 2, 3, 4, 5, 6]).buffer],
  _vrMap: { PixelData: 'OW' },
};

const WITH_SEQUENCES = {
  SpecificCharacterSet: 'ISO_IR 100',
  ImageType: ['ORIGINAL', 'PRIMARY'],
  ...UIDS,
  StudyDate: '20260101',
  AccessionNumber: 'ACC42',
  Modality: 'MR',
  // (0008,1140): a sequence between SOPInstanceUID and StudyInstanceUID.
  ReferencedImageSequence: [
    { ReferencedSOPClassUID: SopClass.MRImageStorage, ReferencedSOPInstanceUID: '9.8.7' },
    { ReferencedSOPClassUID: SopClass.MRImageStorage, ReferencedSOPInstanceUID: '9.8.6' },
  ],
  PatientName: 'TEST^WALK',
  SeriesDescription: 'T2 FLAIR',
  ...IMAGE,
};

const EXPECTED: InstanceFacts = {
  ...UIDS,
  AccessionNumber: 'ACC42',
  SamplesPerPixel: 1,
  PhotometricInterpretation: 'MONOCHROME2',
  Rows: 2,
  Columns: 3,
  BitsAllocated: 16,
  BitsStored: 12,
  pixelDataLength: 12,
};

/** Feeds `bytes` in pieces of `size` bytes (1 = byte by byte). */
async function walkInPieces(bytes: Buffer, ts: string, size: number): Promise<InstanceFacts> {
  const check = createDatasetCheck(ts);
  for (let o = 0; o < bytes.length; o += size) check.write(bytes.subarray(o, o + size));
  return check.finish();
}

const tag = (g: number, e: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(g, 0);
  b.writeUInt16LE(e, 2);
  return b;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
};

describe('DatasetWalker', () => {
  test.each([TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ImplicitVRLittleEndian])('reads UIDs and image attributes past sequences, in any fragmentation (%s)', async (ts) => {
    const bytes = encode(WITH_SEQUENCES, ts);
    expect(walkDataset(bytes, ts)).toEqual(EXPECTED);
    for (const size of [1, 7, 64, 1 << 20]) expect(await walkInPieces(bytes, ts, size)).toEqual(EXPECTED);
    expect(() => checkImage(EXPECTED, ts, SopClass.MRImageStorage)).not.toThrow();
  });

  test('MAX_SEQUENCE_DEPTH nested sequences pass, one more is refused (the worker\'s walk has the same limit)', () => {
    const nested = (levels: number) => {
      let inner: Record<string, unknown> = { ReferencedSOPInstanceUID: '9.8.7' };
      for (let i = 0; i < levels; i++) inner = { ReferencedImageSequence: [inner] };
      return encode({ ...UIDS, ...inner, ...IMAGE }, TransferSyntax.ExplicitVRLittleEndian);
    };
    expect(walkDataset(nested(MAX_SEQUENCE_DEPTH), TransferSyntax.ExplicitVRLittleEndian).SOPInstanceUID).toBe(UIDS.SOPInstanceUID);
    expect(() => walkDataset(nested(MAX_SEQUENCE_DEPTH + 1), TransferSyntax.ExplicitVRLittleEndian)).toThrow(/nested deeper than 16/);
  });

  test('an undefined-length sequence with undefined-length items (implicit VR)', () => {
    const el = (g: number, e: number, value: string) => {
      const v = Buffer.from(value.length % 2 ? `${value}\0` : value, 'latin1');
      return Buffer.concat([tag(g, e), u32(v.length), v]);
    };
    const bytes = Buffer.concat([
      el(0x0008, 0x0016, UIDS.SOPClassUID),
      el(0x0008, 0x0018, UIDS.SOPInstanceUID),
      tag(0x0008, 0x1140), u32(0xffffffff),
      tag(0xfffe, 0xe000), u32(0xffffffff),
      el(0x0008, 0x1150, '1.2'),
      tag(0xfffe, 0xe00d), u32(0),
      tag(0xfffe, 0xe0dd), u32(0),
      el(0x0020, 0x000d, UIDS.StudyInstanceUID),
      el(0x0020, 0x000e, UIDS.SeriesInstanceUID),
      el(0x7fe0, 0x0010, 'xxxx'),
    ]);
    expect(walkDataset(bytes, TransferSyntax.ImplicitVRLittleEndian)).toEqual({ ...UIDS, pixelDataLength: 4 });
  });

  test('implicit VR: an element the dictionary defines as a sequence must hold items (a flipped tag byte)', () => {
    const el = (g: number, e: number, value: Buffer) => Buffer.concat([tag(g, e), u32(value.length), value]);
    const uid = (v: string) => Buffer.from(v.length % 2 ? `${v}\0` : v, 'latin1');
    const around = (inner: Buffer) => Buffer.concat([
      el(0x0008, 0x0016, uid(UIDS.SOPClassUID)),
      el(0x0008, 0x0018, uid(UIDS.SOPInstanceUID)),
      el(0x0020, 0x000d, uid(UIDS.StudyInstanceUID)),
      el(0x0020, 0x000e, uid(UIDS.SeriesInstanceUID)),
      inner,
      el(0x7fe0, 0x0010, Buffer.from('xxxx')),
    ]);
    // (0054,0032) Phase Information Sequence holding a decimal string: what ImagePositionPatient (0020,0032)
    // becomes when one bit of its group flips. DCMTK and dcmjs read the value as items and fail; so does the walk.
    expect(() => walkDataset(around(el(0x0054, 0x0032, Buffer.from('-120\\-120\\-45.5 '))), TransferSyntax.ImplicitVRLittleEndian)).toThrow(MalformedDatasetError);
    // The same tag holding a real defined-length item, and a tag the dictionary does not make a sequence, pass.
    const ref = el(0x0008, 0x1150, uid('1.2.3'));
    const item = Buffer.concat([tag(0xfffe, 0xe000), u32(ref.length), ref]);
    expect(walkDataset(around(el(0x0054, 0x0032, item)), TransferSyntax.ImplicitVRLittleEndian)).toEqual({ ...UIDS, pixelDataLength: 4 });
    expect(walkDataset(around(el(0x0054, 0x0031, Buffer.from('\x02\x00'))), TransferSyntax.ImplicitVRLittleEndian)).toEqual({ ...UIDS, pixelDataLength: 4 });
  });

  test('a deflated data set is inflated as it streams, and one that does not inflate is refused', async () => {
    const plain = encode(WITH_SEQUENCES, TransferSyntax.ExplicitVRLittleEndian);
    const deflated = deflateRawSync(plain);
    expect(await walkInPieces(deflated, TransferSyntax.DeflatedExplicitVRLittleEndian, 100)).toEqual(EXPECTED);
    await expect(walkInPieces(deflated.subarray(0, deflated.length - 20), TransferSyntax.DeflatedExplicitVRLittleEndian, 100)).rejects.toBeInstanceOf(MalformedDatasetError);
    await expect(walkInPieces(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), TransferSyntax.DeflatedExplicitVRLittleEndian, 4)).rejects.toBeInstanceOf(MalformedDatasetError);
  });

  test('every truncation is refused, by the walk or by the image checks', () => {
    const ts = TransferSyntax.ExplicitVRLittleEndian;
    const bytes = encode(WITH_SEQUENCES, ts);
    for (let cut = 0; cut < bytes.length; cut++) {
      expect(() => {
        const facts = walkDataset(bytes.subarray(0, cut), ts);
        checkImage(facts, ts, SopClass.MRImageStorage);
      }).toThrow(/./);
    }
  });

  test('structural damage is MalformedDatasetError (C000)', () => {
    const ts = TransferSyntax.ExplicitVRLittleEndian;
    const bytes = encode(WITH_SEQUENCES, ts);
    const at = (needle: number[]) => bytes.indexOf(Buffer.from(needle));
    const damaged = (edit: (b: Buffer) => void) => {
      const b = Buffer.from(bytes);
      edit(b);
      return () => walkDataset(b, ts);
    };
    // (0008,103E) SeriesDescription: its VR flipped from LO to "CH", as a bit flip did to SequenceName in issue 14.
    const description = at([0x08, 0x00, 0x3e, 0x10]);
    expect(damaged((b) => b.write('CH', description + 4, 'latin1'))).toThrow(/unknown value representation/);
    // A short VR made long: its length and first value bytes read as a 4-byte length far past the end.
    expect(damaged((b) => b.write('OB', description + 4, 'latin1'))).toThrow(MalformedDatasetError);
    // Lengths: huge, odd.
    expect(damaged((b) => b.writeUInt16LE(0xffff, description + 6))).toThrow(MalformedDatasetError);
    expect(damaged((b) => b.writeUInt16LE(b.readUInt16LE(description + 6) + 1, description + 6))).toThrow(MalformedDatasetError);
    // An item's length running past its sequence, and a delimiter with a length.
    const item = at([0xfe, 0xff, 0x00, 0xe0]);
    expect(damaged((b) => b.writeUInt32LE(0x7ffffff0, item + 4))).toThrow(MalformedDatasetError);
    const itemEnd = at([0xfe, 0xff, 0x0d, 0xe0]);
    if (itemEnd >= 0) expect(damaged((b) => b.writeUInt32LE(0x10, itemEnd + 4))).toThrow(/delimiter/);
    // Elements out of order: StudyInstanceUID's tag turned into one that sorts before the previous element.
    const study = at([0x20, 0x00, 0x0d, 0x00]);
    expect(damaged((b) => b.writeUInt16LE(0x0010, study))).toThrow(/out of order/);
    expect(() => walkDataset(Buffer.from('not a dicom data set at all', 'latin1'), ts)).toThrow(MalformedDatasetError);
  });

  test('what another reader would read differently is refused: file meta in the data set, an image attribute with another VR or size', () => {
    const explicit = TransferSyntax.ExplicitVRLittleEndian;
    // A (0002,0010) Transfer Syntax UID at the start of the data set: a Part 10 reader takes it for the file's.
    const meta = Buffer.concat([tag(0x0002, 0x0010), Buffer.from('UI', 'latin1'), Buffer.from([20, 0]), Buffer.from('1.2.840.10008.1.2.2\0', 'latin1')]);
    expect(() => walkDataset(Buffer.concat([meta, encode(WITH_SEQUENCES, explicit)]), explicit)).toThrow(/file meta element \(0002,0010\) inside the data set/);
    // Rows (0028,0010) written with VR UL and 2 bytes: this walk would read 2 bytes, a reader trusting the VR 4.
    const bytes = encode(WITH_SEQUENCES, explicit);
    const rows = bytes.indexOf(Buffer.from([0x28, 0x00, 0x10, 0x00, 0x55, 0x53]));
    const asUl = Buffer.from(bytes);
    asUl.write('UL', rows + 4, 'latin1');
    expect(() => walkDataset(asUl, explicit)).toThrow(/Rows has VR UL, not US/);
    // Implicit VR: Rows with a 4-byte value.
    const implicitRows = Buffer.concat([tag(0x0028, 0x0010), u32(4), u32(512)]);
    expect(() => walkDataset(implicitRows, TransferSyntax.ImplicitVRLittleEndian)).toThrow(/Rows value is 4 bytes long, not 2/);
  });

  // AccessionNumber is SH, whose encoding is the data set's Specific Character Set (PS3.5 6.1.2.3). dcmjs writes
  // UTF-8 whatever the set says, so each value is written as an ASCII stand-in and its bytes are replaced.
  const withAccession = (charset: string | undefined, stand: string, bytes: number[], ts: string) => {
    const encoded = encode({ ...(charset !== undefined ? { SpecificCharacterSet: charset } : {}), ...UIDS, AccessionNumber: `ACC-${stand}1`, ...IMAGE }, ts);
    const at = encoded.indexOf(Buffer.from(`ACC-${stand}1`, 'latin1'));
    expect(at).toBeGreaterThan(0);
    Buffer.from(bytes).copy(encoded, at + 4);
    return encoded;
  };
  test.each([
    ['ISO_IR 192', 'UTF-8', 'ZZZ', [0xe2, 0x80, 0xae], 'ACC-\u202e1'],
    ['ISO_IR 192', 'UTF-8', 'ZZ', [0xc3, 0x84], 'ACC-\u00c41'],
    ['ISO_IR 100', 'Latin-1', 'Z', [0xc4], 'ACC-\u00c41'],
    [undefined, 'Latin-1 (no Specific Character Set)', 'Z', [0xa3], 'ACC-\u00a31'],
    ['', 'Latin-1 (empty: the default repertoire)', 'Z', [0xa3], 'ACC-\u00a31'],
    ['ISO_IR 101', 'Latin-2', 'Z', [0xa3], 'ACC-\u01411'],
    ['ISO_IR 144', 'Cyrillic', 'Z', [0xc4], 'ACC-\u04241'],
    ['\\ISO 2022 IR 100', 'Latin-1 as an ISO 2022 code extension', 'Z', [0xc4], 'ACC-\u00c41'],
    ['ISO_IR 999', 'Latin-1 (an unknown term: as before, not refused)', 'Z', [0xc4], 'ACC-\u00c41'],
  ])('AccessionNumber under Specific Character Set %j is read as %s', async (charset, _name, stand, bytes, expected) => {
    for (const ts of [TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ImplicitVRLittleEndian]) {
      const encoded = withAccession(charset, stand, bytes, ts);
      expect(walkDataset(encoded, ts).AccessionNumber).toBe(expected);
      expect((await walkInPieces(encoded, ts, 1)).AccessionNumber).toBe(expected);
    }
  });
});

describe('checkImage', () => {
  const ts = TransferSyntax.ExplicitVRLittleEndian;
  const facts = (over: Partial<InstanceFacts>): InstanceFacts => ({ ...EXPECTED, ...over });

  test('pixel data must match Rows x Columns x frames x samples x bits', () => {
    expect(() => checkImage(facts({ pixelDataLength: 10 }), ts, SopClass.MRImageStorage)).toThrow(InvalidImageError);
    expect(() => checkImage(facts({ Rows: 65535 }), ts, SopClass.MRImageStorage)).toThrow(/need 393210/);
    expect(() => checkImage(facts({ NumberOfFrames: 100000 }), ts, SopClass.MRImageStorage)).toThrow(InvalidImageError);
    expect(() => checkImage(facts({ NumberOfFrames: 2, pixelDataLength: 24 }), ts, SopClass.MRImageStorage)).not.toThrow();
    // 8 bits, odd pixel count: padded to even length.
    expect(() => checkImage(facts({ BitsAllocated: 8, BitsStored: 8, Rows: 1, pixelDataLength: 4 }), ts, SopClass.MRImageStorage)).not.toThrow();
  });

  test('required attributes, with NumberOfFrames for Enhanced and Legacy Converted Enhanced MR', () => {
    expect(() => checkImage(facts({ Rows: undefined }), ts, SopClass.MRImageStorage)).toThrow(/missing Rows/);
    expect(() => checkImage(facts({ pixelDataLength: undefined }), ts, SopClass.MRImageStorage)).toThrow(/missing PixelData/);
    expect(() => checkImage(facts({ pixelDataLength: 12 }), ts, SopClass.LegacyConvertedEnhancedMRImageStorage)).toThrow(/missing NumberOfFrames/);
    expect(() => checkImage(facts({ NumberOfFrames: 1 }), ts, SopClass.LegacyConvertedEnhancedMRImageStorage)).not.toThrow();
    expect(() => checkImage(facts({ BitsStored: 17 }), ts, SopClass.MRImageStorage)).toThrow(InvalidImageError);
  });

  test('encapsulated pixel data: at least one fragment per frame, a Basic Offset Table empty or one entry per frame', () => {
    const rle = TransferSyntax.RLELossless;
    const encapsulated = (fragments: number, offsetTableLength = 0) => facts({ pixelDataLength: undefined, NumberOfFrames: 2, encapsulated: { fragments, offsetTableLength } });
    expect(() => checkImage(encapsulated(2), rle, SopClass.EnhancedMRImageStorage)).not.toThrow();
    expect(() => checkImage(encapsulated(2, 8), rle, SopClass.EnhancedMRImageStorage)).not.toThrow();
    expect(() => checkImage(encapsulated(1), rle, SopClass.EnhancedMRImageStorage)).toThrow(/1 pixel data fragments for 2 frames/);
    expect(() => checkImage(encapsulated(2, 4), rle, SopClass.EnhancedMRImageStorage)).toThrow(/Basic Offset Table/);
    expect(() => checkImage(facts({}), rle, SopClass.MRImageStorage)).toThrow(/native Pixel Data/);
  });

  test('a walked RLE instance: fragments counted, the offset table read', () => {
    const head = encode({ ...WITH_SEQUENCES, PixelData: undefined, _vrMap: {} }, TransferSyntax.ExplicitVRLittleEndian);
    const pixel = Buffer.concat([
      tag(0x7fe0, 0x0010), Buffer.from('OB\0\0', 'latin1'), u32(0xffffffff),
      tag(0xfffe, 0xe000), u32(0),
      tag(0xfffe, 0xe000), u32(8), Buffer.alloc(8),
      tag(0xfffe, 0xe0dd), u32(0),
    ]);
    const walked = walkDataset(Buffer.concat([head, pixel]), TransferSyntax.RLELossless);
    expect(walked.encapsulated).toEqual({ offsetTableLength: 0, fragments: 1 });
    expect(() => walkDataset(Buffer.concat([head, pixel.subarray(0, pixel.length - 8)]), TransferSyntax.RLELossless)).toThrow(/inside encapsulated pixel data/);
  });
});
