// What neurotriage's two DICOM documents share, the TID 1500 SR (build-sr.ts) and the Key Object Selection
// document (build-kos.ts): SR content items, the patient and study copied from the source study, the device
// observer, the key image's SOP class, dates and times, and the character set rule. Pure functions on naturalised
// datasets (keyword -> value).
import type { FindingLocation, StudyResult } from '../../../../shared/results';
import { derivedUid } from '../idempotency';
import { CODES, codeItem, loValue, utValue, type Code } from './codes';
import type { NaturalDataset } from './dcmjs';
import type { SourceStudy } from './source-study';

const MR_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.4';
/** DICOM Content Mapping Resource (PS3.16). */
const DCMR_UID = '1.2.840.10008.8.1.1';

/** Where a document goes and when it was made: the caller derives the UIDs (versions.ts) and supplies the clock. */
export interface DocumentIdentity {
  SeriesInstanceUID: string;
  SOPInstanceUID: string;
  SeriesNumber: number;
  /** The result version: increases, so a viewer lists the current document last. */
  InstanceNumber: number;
  softwareVersion: string;
  now: number;
}

export const da = (ms: number): string => new Date(ms).toISOString().slice(0, 10).replace(/-/g, '');
export const tm = (ms: number): string => new Date(ms).toISOString().slice(11, 23).replace(/:/g, '');

export type Rel = 'CONTAINS' | 'HAS CONCEPT MOD' | 'HAS OBS CONTEXT' | 'SELECTED FROM';

export const concept = (c: Code) => ({ ConceptNameCodeSequence: [codeItem(c)] });
const template = (id: string) => ({ ContentTemplateSequence: [{ MappingResource: 'DCMR', MappingResourceUID: DCMR_UID, TemplateIdentifier: id }] });

export const text = (rel: Rel, c: Code, value: string): NaturalDataset => ({ RelationshipType: rel, ValueType: 'TEXT', ...concept(c), TextValue: utValue(value) });
export const coded = (rel: Rel, c: Code, value: Code): NaturalDataset => ({ RelationshipType: rel, ValueType: 'CODE', ...concept(c), ConceptCodeSequence: [codeItem(value)] });
export const uidref = (rel: Rel, c: Code, value: string): NaturalDataset => ({ RelationshipType: rel, ValueType: 'UIDREF', ...concept(c), UID: value });
/** A CONTAINER item; without `rel` it is a document's root (SR Document Content module), with its template. */
export const container = (rel: Rel | undefined, c: Code, items: NaturalDataset[], templateId?: string): NaturalDataset => ({
  ...(rel ? { RelationshipType: rel } : {}),
  ValueType: 'CONTAINER',
  ...concept(c),
  ContinuityOfContent: 'SEPARATE',
  ...(templateId ? template(templateId) : {}),
  ContentSequence: items,
});

/** TID 1204 language, then TID 1002 Observer Context / TID 1004 Device Observer: the algorithm observed, no person verified. */
export function languageAndObserver(result: StudyResult): NaturalDataset[] {
  return [
    coded('HAS CONCEPT MOD', CODES.language, CODES.englishUS),
    coded('HAS OBS CONTEXT', CODES.observerType, CODES.device),
    uidref('HAS OBS CONTEXT', CODES.deviceObserverUid, derivedUid('neurotriage-device', result.model.bundleId)),
    text('HAS OBS CONTEXT', CODES.deviceObserverName, 'neurotriage'),
    text('HAS OBS CONTEXT', CODES.deviceObserverManufacturer, 'neurotriage'),
    text('HAS OBS CONTEXT', CODES.deviceObserverModelName, result.model.bundleId),
  ];
}

/**
 * Patient and General Study modules, copied from the source study's instances so the PACS files the document into
 * the same patient and study (type 2 attributes present, maybe empty). Identifiers are copied as they are, since the
 * PACS files by them; free text a source instance may hold invalid for LO (a backslash, over 64 characters) is made
 * valid.
 */
export function sourceStudyModules(result: StudyResult, source: SourceStudy): NaturalDataset {
  const type2 = (key: string): unknown => source.attributes[key] ?? '';
  return {
    ...source.attributes,
    PatientName: type2('PatientName'),
    PatientID: type2('PatientID'),
    PatientBirthDate: type2('PatientBirthDate'),
    PatientSex: type2('PatientSex'),
    StudyInstanceUID: result.StudyInstanceUID,
    StudyDate: type2('StudyDate'),
    StudyTime: type2('StudyTime'),
    ReferringPhysicianName: type2('ReferringPhysicianName'),
    StudyID: type2('StudyID'),
    ...(source.attributes.StudyDescription !== undefined ? { StudyDescription: loValue(source.attributes.StudyDescription) } : {}),
    AccessionNumber: source.attributes.AccessionNumber ?? result.AccessionNumber ?? '',
  };
}

/** The key image's SOP class as the evidence lists it (readers check the two agree), else as the worker saw it. */
export function keyImageClass(loc: FindingLocation, source: SourceStudy): string {
  return source.series.flatMap((s) => s.instances).find((i) => i.SOPInstanceUID === loc.SOPInstanceUID)?.SOPClassUID ?? loc.SOPClassUID ?? MR_IMAGE_STORAGE;
}

/** An IMAGE content item naming the key slice (and its frame in a multi-frame instance). */
export function keyImageItem(rel: Rel, loc: FindingLocation, source: SourceStudy): NaturalDataset {
  return {
    RelationshipType: rel,
    ValueType: 'IMAGE',
    ReferencedSOPSequence: [{
      ReferencedSOPClassUID: keyImageClass(loc, source),
      ReferencedSOPInstanceUID: loc.SOPInstanceUID,
      ...(loc.frame !== undefined ? { ReferencedFrameNumber: loc.frame } : {}),
    }],
  };
}

/** True when any string in the dataset (at any depth, person names included) is outside 7-bit ASCII. */
function hasNonAscii(v: unknown): boolean {
  if (typeof v === 'string') return [...v].some((ch) => ch.charCodeAt(0) > 0x7f);
  if (Array.isArray(v)) return v.some(hasNonAscii);
  if (v && typeof v === 'object' && !(v instanceof ArrayBuffer) && !ArrayBuffer.isView(v)) return Object.values(v).some(hasNonAscii);
  return false;
}

/** Declares UTF-8 (ISO_IR 192) only when a value needs it: the default repertoire is what every reader handles. */
export function withCharacterSet(ds: NaturalDataset): NaturalDataset {
  return hasNonAscii(ds) ? { SpecificCharacterSet: 'ISO_IR 192', ...ds } : ds;
}
