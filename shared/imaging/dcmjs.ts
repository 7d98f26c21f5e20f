// The one place this module touches dcmjs (0.50.3 ships no type declarations): the typed subset we use.
// eslint-disable-next-line @typescript-eslint/ban-ts-comment -- ts-ignore, not ts-expect-error: stays valid if declarations for dcmjs are added elsewhere
// @ts-ignore
import dcmjsUntyped from 'dcmjs';

/** A denaturalised dataset: tag hex "GGGGEEEE" -> { vr, Value }. */
export type DcmjsDataset = Record<string, { vr?: string; Value?: unknown[] } | undefined>;

interface DcmjsDicomDict {
  meta: DcmjsDataset;
  dict: DcmjsDataset;
  write(options?: Record<string, unknown>): ArrayBuffer;
}

export interface Dcmjs {
  /** encodingMapping: a Specific Character Set defined term, "_" and " " as "-" and lower case -> a TextDecoder label. */
  constants: { encodingMapping: Record<string, string> };
  log: { setLevel(level: string): void; getLevel(): number; getLogger(name: string): { setLevel(level: string): void; getLevel(): number } };
  data: {
    DicomMessage: { readFile(buffer: ArrayBuffer, options?: Record<string, unknown>): DcmjsDicomDict };
    DicomDict: new (meta: DcmjsDataset) => DcmjsDicomDict;
    DicomMetaDictionary: {
      denaturalizeDataset(ds: Record<string, unknown>): DcmjsDataset;
      /** The data dictionary by keyword: tag "(GGGG,EEEE)" (x for a repeating group's digits) and VR. */
      nameMap: Record<string, { tag: string; vr: string }>;
    };
  };
}

export const dcmjs = dcmjsUntyped as unknown as Dcmjs;

/**
 * Silences dcmjs's own logging (idempotent; called by each reader rather than on import). dcmjs logs through
 * console with values of the data set it reads (a malformed instance's warnings carried the patient's name and ID
 * bytes), and a "validation" error for every implicit-VR PixelData element, which it reads as OW, right for us. Our
 * own logs say what failed without data set values.
 */
export function quietDcmjsLog(): void {
  dcmjs.log.setLevel('silent');
  for (const name of ['validation.dcmjs', 'AsyncDicomReader']) dcmjs.log.getLogger(name).setLevel('silent');
}

/**
 * Tags the data dictionary defines as sequences (VR SQ), as (group << 16 | element). An implicit VR data set names no
 * VR, so a reader takes the dictionary's: such an element's value must read as a sequence of items (PS3.5 7.1.3).
 * Built from the whole dictionary on each call: a reader calls it once and keeps the set.
 */
export function dictionarySequenceTags(): ReadonlySet<number> {
  const tags = new Set<number>();
  for (const { tag, vr } of Object.values(dcmjs.data.DicomMetaDictionary.nameMap)) {
    const m = /^\(([0-9A-F]{4}),([0-9A-F]{4})\)$/i.exec(tag);
    if (vr === 'SQ' && m) tags.add(((parseInt(m[1], 16) << 16) | parseInt(m[2], 16)) >>> 0);
  }
  return tags;
}
