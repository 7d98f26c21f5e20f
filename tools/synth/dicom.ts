// DICOM Part 10 encoding of the synthetic images with dcmjs: single-frame MR Image Storage, Explicit VR Little
// Endian, naturalized datasets denaturalized by dcmjs, and the vendors' private b-value elements added to the
// denaturalized dictionary (dcmjs drops names it does not know, so private tags go in by tag, with their
// Private Creator elements).
// dcmjs ships no type declarations; this module is the only place that touches it, through the narrow
// interface below.

interface DcmjsElement {
  vr: string;
  Value: unknown[];
}
type DenaturalizedDataset = Record<string, DcmjsElement>;
interface DcmjsData {
  DicomMetaDictionary: {
    denaturalizeDataset(ds: Record<string, unknown>): DenaturalizedDataset;
    naturalizeDataset(ds: DenaturalizedDataset): Record<string, unknown>;
  };
  DicomDict: new (meta: DenaturalizedDataset) => { dict: DenaturalizedDataset; write(opts?: Record<string, unknown>): ArrayBuffer };
  DicomMessage: { readFile(buf: ArrayBuffer, opts?: Record<string, unknown>): { meta: DenaturalizedDataset; dict: DenaturalizedDataset } };
}
interface Dcmjs {
  data: DcmjsData;
  log: { setLevel(level: string): void };
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const loadDcmjs = (): Dcmjs => require('dcmjs') as Dcmjs;

export const MR_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.4';
export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
/** Implementation Class UID of the generator (2.25 root, fixed). */
export const IMPLEMENTATION_CLASS_UID = '2.25.246913578024691357802469135780246913578';
export const IMPLEMENTATION_VERSION = 'NT_SYNTH_1';

/** A private element to add after denaturalisation: tag as 8 hex digits, e.g. "0019100C". */
export interface PrivateElement {
  tag: string;
  vr: string;
  value: Array<string | number>;
}

export interface DicomWriter {
  /** Encodes a naturalized dataset (keywords) plus private elements as a Part 10 file. */
  write(dataset: Record<string, unknown>, privateElements?: PrivateElement[]): Uint8Array;
  /** Reads a Part 10 file back to a naturalized dataset (for tests and tools). */
  read(data: Uint8Array): Record<string, unknown>;
}

export function createDicomWriter(): DicomWriter {
  const dcmjs = loadDcmjs();
  // dcmjs logs a warning for every private element it meets on read; we know they are there.
  dcmjs.log.setLevel('error');
  const { DicomMetaDictionary, DicomDict, DicomMessage } = dcmjs.data;
  return {
    write(dataset, privateElements = []) {
      const meta = DicomMetaDictionary.denaturalizeDataset({
        FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
        MediaStorageSOPClassUID: dataset.SOPClassUID,
        MediaStorageSOPInstanceUID: dataset.SOPInstanceUID,
        TransferSyntaxUID: EXPLICIT_VR_LITTLE_ENDIAN,
        ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
        ImplementationVersionName: IMPLEMENTATION_VERSION,
      });
      const dict = new DicomDict(meta);
      dict.dict = DicomMetaDictionary.denaturalizeDataset({ ...dataset, _vrMap: { PixelData: 'OW' } });
      for (const p of privateElements) dict.dict[p.tag.toUpperCase()] = { vr: p.vr, Value: p.value };
      return new Uint8Array(dict.write());
    },
    read(data) {
      const ab = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
      const file = DicomMessage.readFile(ab);
      return { ...DicomMetaDictionary.naturalizeDataset(file.meta), ...DicomMetaDictionary.naturalizeDataset(file.dict) };
    },
  };
}
