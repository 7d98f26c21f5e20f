// The typed subset of dcmjs (0.50.3 ships no declarations) this adapter uses: read a Part 10 file's header and
// naturalise it (keywords -> values), so attributes are handled by keyword.
// eslint-disable-next-line @typescript-eslint/ban-ts-comment -- ts-ignore, not ts-expect-error: stays valid if declarations for dcmjs appear
// @ts-ignore
import dcmjsUntyped from 'dcmjs';
import { scanPart10, withDefinedLengthUn, type Part10Layout } from '../../../../shared/imaging/part10';

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
  const ab = readableByDcmjs(bytes);
  const file = dcmjs.data.DicomMessage.readFile(ab, { untilTag: '7FE00010', includeUntilTagValue: false });
  return dcmjs.data.DicomMetaDictionary.naturalizeDataset(file.dict);
}

/**
 * The file's bytes for dcmjs: an explicit UN of undefined length (a private sequence, PS3.5 6.2.2) given as a
 * defined-length UN, which dcmjs skips instead of failing on it (shared/imaging/part10.ts). A file the structure
 * walk refuses goes to dcmjs as it is, to fail there.
 */
function readableByDcmjs(bytes: Buffer): ArrayBuffer {
  let layout: Part10Layout | undefined;
  try {
    layout = scanPart10(bytes, { stopAtPixelData: true });
  } catch {
    layout = undefined;
  }
  if (layout?.undefinedLengthUn) return withDefinedLengthUn(bytes, layout).buffer as ArrayBuffer;
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
