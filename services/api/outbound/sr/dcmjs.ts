// The typed subset of dcmjs (0.50.3 ships no declarations) this adapter uses: read a Part 10 file's header and
// naturalise it (keywords -> values), so attributes are handled by keyword.
// eslint-disable-next-line @typescript-eslint/ban-ts-comment -- ts-ignore, not ts-expect-error: stays valid if declarations for dcmjs appear
// @ts-ignore
import dcmjsUntyped from 'dcmjs';

/** A naturalised dataset: DICOM keyword -> value (sequences are arrays of naturalised items). */
export type NaturalDataset = Record<string, unknown>;

interface DicomDict {
  meta: Record<string, unknown>;
  dict: Record<string, unknown>;
}

interface Dcmjs {
  data: {
    DicomMessage: { readFile(buffer: ArrayBuffer, options?: Record<string, unknown>): DicomDict };
    DicomMetaDictionary: {
      naturalizeDataset(ds: Record<string, unknown>): NaturalDataset;
      denaturalizeDataset(ds: NaturalDataset): Record<string, unknown>;
    };
  };
}

export const dcmjs = dcmjsUntyped as unknown as Dcmjs;

/** Reads a Part 10 file's attributes up to (not including) PixelData: the pixels are never needed here. */
export function readHeader(bytes: Buffer): NaturalDataset {
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const file = dcmjs.data.DicomMessage.readFile(ab, { untilTag: '7FE00010', includeUntilTagValue: false });
  return dcmjs.data.DicomMetaDictionary.naturalizeDataset(file.dict);
}
