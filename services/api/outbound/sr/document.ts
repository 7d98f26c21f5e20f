// What neurotriage's two DICOM documents share, the TID 1500 SR (build-sr.ts) and the Key Object Selection
// document (build-kos.ts): SR content items, the patient and study copied from the source study, the device
// observer, the key image's SOP class, dates and times, and the character set rule. Pure functions on naturalised
// datasets (keyword -> value).
import type { FindingLocation, StudyResult } from '../../../../shared/results';
import { formatOffset, offsetAtWall, parseOffset, zoneOffset } from '../../../../shared/time-zone';
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
  /** The site's IANA time zone (tests); by default this process's (TZ). */
  timeZone?: string;
}

/**
 * The dates and times of one document, every one in the offset from UTC it states in Timezone Offset From UTC
 * (0008,0201). That attribute applies to every DA and TM of the instance (PS3.3 C.12.1, SOP Common), the Study Date
 * and Time copied from the source included, which are the modality's local time; without it all of them are read as
 * local time. So the offset is the study's: the one its source instance states, else the time zone's (the site's,
 * TZ) at its Study Date and Time, else at `now`; the document's own times are written in it.
 */
export interface DocumentTimes {
  /** Timezone Offset From UTC, `+0100`. */
  offset: string;
  da: (ms: number) => string;
  tm: (ms: number) => string;
}

/**
 * The zone's offset at a local date and time (DA, TM), read as offsetAtWall reads a wall-clock time (the first
 * occurrence of a repeated hour, a skipped hour with the offset before the change). A date or time that does not
 * exist on any calendar (20260230, 2560) names no offset: the document takes the zone's at `now`, as without one.
 */
function offsetAtLocal(date: unknown, time: unknown, timeZone: string | undefined): number | undefined {
  const d = typeof date === 'string' ? /^(\d{4})(\d{2})(\d{2})$/.exec(date.trim()) : null;
  if (!d) return undefined;
  // TM may be HH, HHMM or HHMMSS.F (and ACR-NEMA's HH:MM:SS); a study without a time is taken at noon. TM allows a
  // leap second (60), read as 59 here; 61 and above are no second (they roll over below).
  const t = typeof time === 'string' ? /^(\d{2})(\d{2})?(\d{2})?/.exec(time.trim().replace(/:/g, '')) : null;
  const second = Number(t?.[3] ?? 0);
  const fields = [Number(d[1]), Number(d[2]) - 1, Number(d[3]), t ? Number(t[1]) : 12, Number(t?.[2] ?? 0), second === 60 ? 59 : second] as const;
  const wall = Date.UTC(...fields);
  // Date.UTC rolls a field over (30 February is 2 March, hour 25 the next day); a value it changed does not exist.
  const back = new Date(wall);
  const read = [back.getUTCFullYear(), back.getUTCMonth(), back.getUTCDate(), back.getUTCHours(), back.getUTCMinutes(), back.getUTCSeconds()];
  if (Number.isNaN(wall) || read.some((v, i) => v !== fields[i])) return undefined;
  return offsetAtWall(wall, timeZone);
}

export function documentTimes(source: SourceStudy, now: number, timeZone?: string): DocumentTimes {
  const a = source.attributes;
  const minutes = parseOffset(a.TimezoneOffsetFromUTC) ?? offsetAtLocal(a.StudyDate, a.StudyTime, timeZone) ?? zoneOffset(now, timeZone);
  const iso = (ms: number): string => new Date(ms + minutes * 60_000).toISOString();
  return {
    offset: formatOffset(minutes),
    da: (ms) => iso(ms).slice(0, 10).replace(/-/g, ''),
    tm: (ms) => iso(ms).slice(11, 23).replace(/:/g, ''),
  };
}

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
  // The document states its own offset (documentTimes), the source's when that is valid.
  const { TimezoneOffsetFromUTC: _offset, ...attributes } = source.attributes;
  return {
    ...attributes,
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
