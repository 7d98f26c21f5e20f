// peekHeader() against data sets written by dcmjs (a reference encoder), including sequences of defined and
// undefined length before the UIDs, and buildFileMeta() read back by dcmjs.
import { deflateRawSync } from 'node:zlib';
// eslint-disable-next-line @typescript-eslint/ban-ts-comment -- dcmjs 0.50.3 ships no type declarations
// @ts-ignore
import dcmjsUntyped from 'dcmjs';
import { buildFileMeta, NeedMoreBytes, peekHeader } from './part10';
import { MalformedDatasetError } from './errors';
import { TransferSyntax } from './dicom-uids';

interface Dcmjs {
  data: {
    DicomMessage: {
      write(dict: unknown, stream: unknown, ts: string, options: Record<string, unknown>): void;
      readFile(buffer: ArrayBuffer, options?: Record<string, unknown>): { meta: Record<string, { Value?: unknown[] }>; dict: Record<string, unknown> };
    };
    WriteBufferStream: new () => { getBuffer(): ArrayBuffer };
    DicomMetaDictionary: { denaturalizeDataset(ds: Record<string, unknown>): unknown };
  };
}
const dcmjs = dcmjsUntyped as unknown as Dcmjs;

const UIDS = {
  SOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
  SOPInstanceUID: '1.2.3.4.5.6.7',
  StudyInstanceUID: '1.2.3.4.5',
  SeriesInstanceUID: '1.2.3.4.5.6',
};

function encode(ds: Record<string, unknown>, ts: string): Buffer {
  const stream = new dcmjs.data.WriteBufferStream();
  dcmjs.data.DicomMessage.write(dcmjs.data.DicomMetaDictionary.denaturalizeDataset(ds), stream, ts, {});
  return Buffer.from(stream.getBuffer());
}

const WITH_SEQUENCES = {
  SpecificCharacterSet: 'ISO_IR 100',
  ImageType: ['ORIGINAL', 'PRIMARY'],
  ...UIDS,
  StudyDate: '20260101',
  Modality: 'MR',
  // (0008,1140) and (0008,1115): sequences between SOPInstanceUID and StudyInstanceUID.
  ReferencedImageSequence: [
    { ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4', ReferencedSOPInstanceUID: '9.8.7' },
    { ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4', ReferencedSOPInstanceUID: '9.8.6' },
  ],
  PatientName: 'TEST^PEEK',
  SeriesDescription: 'T2 FLAIR',
  Rows: 2,
  Columns: 2,
};

describe('peekHeader', () => {
  test.each([TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ImplicitVRLittleEndian])('reads the four UIDs past sequences (%s)', (ts) => {
    const bytes = encode(WITH_SEQUENCES, ts);
    expect(peekHeader(bytes, ts, true)).toEqual(UIDS);
  });

  test('skips an undefined-length sequence with undefined-length items (implicit VR)', () => {
    // (0008,1140) SQ, undefined length, one undefined-length item holding (0008,1150), then the UIDs.
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
    expect(peekHeader(bytes, TransferSyntax.ImplicitVRLittleEndian, true)).toEqual(UIDS);
  });

  test('inflates a deflated data set, also from a prefix of the stream', () => {
    // Noise-like pixels so most of the compressed stream is pixel data and half of it holds the whole header.
    const pixels = Uint16Array.from({ length: 8192 }, (_, i) => (i * 7919) % 4093);
    const plain = encode({ ...WITH_SEQUENCES, PixelData: [pixels.buffer], _vrMap: { PixelData: 'OW' } }, TransferSyntax.ExplicitVRLittleEndian);
    const deflated = deflateRawSync(plain);
    expect(peekHeader(deflated, TransferSyntax.DeflatedExplicitVRLittleEndian, true)).toEqual(UIDS);
    expect(peekHeader(deflated.subarray(0, Math.ceil(deflated.length / 2)), TransferSyntax.DeflatedExplicitVRLittleEndian, false)).toEqual(UIDS);
  });

  test('asks for more bytes when a prefix stops before SeriesInstanceUID', () => {
    const bytes = encode(WITH_SEQUENCES, TransferSyntax.ExplicitVRLittleEndian);
    const cut = bytes.indexOf(Buffer.from(UIDS.StudyInstanceUID, 'latin1'));
    expect(() => peekHeader(bytes.subarray(0, cut), TransferSyntax.ExplicitVRLittleEndian, false)).toThrow(NeedMoreBytes);
    expect(() => peekHeader(bytes.subarray(0, cut), TransferSyntax.ExplicitVRLittleEndian, true)).toThrow(MalformedDatasetError);
  });

  test('returns what is there when the data set lacks a UID, and rejects garbage', () => {
    const { StudyInstanceUID: _omit, ...rest } = UIDS;
    const bytes = encode({ ...rest, Modality: 'MR' }, TransferSyntax.ExplicitVRLittleEndian);
    expect(peekHeader(bytes, TransferSyntax.ExplicitVRLittleEndian, true).StudyInstanceUID).toBeUndefined();
    expect(() => peekHeader(Buffer.from('not a dicom data set at all', 'latin1'), TransferSyntax.ExplicitVRLittleEndian, true)).toThrow(MalformedDatasetError);
    expect(() => peekHeader(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), TransferSyntax.DeflatedExplicitVRLittleEndian, true)).toThrow(MalformedDatasetError);
  });
});

describe('buildFileMeta', () => {
  test('writes a Part 10 preamble and meta group that dcmjs reads back', () => {
    const meta = buildFileMeta({
      MediaStorageSOPClassUID: UIDS.SOPClassUID,
      MediaStorageSOPInstanceUID: UIDS.SOPInstanceUID,
      TransferSyntaxUID: TransferSyntax.ExplicitVRLittleEndian,
      ImplementationClassUID: '2.25.1',
      ImplementationVersionName: 'NT_TEST',
      SourceApplicationEntityTitle: 'PACS',
    });
    expect(meta.subarray(0, 128).every((b) => b === 0)).toBe(true);
    expect(meta.toString('latin1', 128, 132)).toBe('DICM');
    const file = Buffer.concat([meta, encode(WITH_SEQUENCES, TransferSyntax.ExplicitVRLittleEndian)]);
    const read = dcmjs.data.DicomMessage.readFile(file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength));
    expect(read.meta['00020002'].Value).toEqual([UIDS.SOPClassUID]);
    expect(read.meta['00020003'].Value).toEqual([UIDS.SOPInstanceUID]);
    expect(read.meta['00020010'].Value).toEqual([TransferSyntax.ExplicitVRLittleEndian]);
    expect(read.meta['00020016'].Value).toEqual(['PACS']);
    expect(read.dict['0020000D']).toBeDefined();
  });
});
