// buildFileMeta() read back by dcmjs (a reference parser).
// eslint-disable-next-line @typescript-eslint/ban-ts-comment -- dcmjs 0.50.3 ships no type declarations
// @ts-ignore
import dcmjsUntyped from 'dcmjs';
import { buildFileMeta } from './part10';
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
