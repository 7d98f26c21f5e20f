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
  log: { getLogger(name: string): { setLevel(level: string): void } };
  data: {
    DicomMessage: { readFile(buffer: ArrayBuffer, options?: Record<string, unknown>): DcmjsDicomDict };
    DicomDict: new (meta: DcmjsDataset) => DcmjsDicomDict;
    DicomMetaDictionary: { denaturalizeDataset(ds: Record<string, unknown>): DcmjsDataset };
  };
}

export const dcmjs = dcmjsUntyped as unknown as Dcmjs;

/**
 * dcmjs logs a "validation" error for every implicit-VR PixelData element (its dictionary says "ox") and reads it
 * as OW, which is right for us; silence that one logger so worker logs stay readable. Idempotent; called by the
 * reader rather than on import.
 */
export function quietDcmjsValidationLog(): void {
  dcmjs.log.getLogger('validation.dcmjs').setLevel('silent');
}
