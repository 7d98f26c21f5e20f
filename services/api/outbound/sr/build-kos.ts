// The key images of a result as a DICOM Key Object Selection document (PS3.3 A.35.4, PS3.16 TID 2010): the slice
// each flagged finding was located on, under the title (113000, DCM, "Of Interest"), with a description naming the
// findings. A PACS viewer shows these as the study's key images, next to the radiologist's own, so the reader lands
// on the slice behind a flag without opening the SR. Sent beside the SR (adapters.ts) for a final result that has a
// located flag; a provisional result can still change, and a key object cannot say it is provisional. Pure: the
// caller supplies the source attributes, the UIDs and the clock.
import type { FindingLocation, FindingScore, StudyResult } from '../../../../shared/results';
import { probabilityDecimal } from '../../../../shared/models/decision';
import { CODES, loValue } from './codes';
import type { NaturalDataset } from './dcmjs';
import { container, documentTimes, type DocumentIdentity, keyImageClass, keyImageItem, languageAndObserver, sourceStudyModules, text, withCharacterSet } from './document';
import type { SourceStudy } from './source-study';

export const KEY_OBJECT_SELECTION = '1.2.840.10008.5.1.4.1.1.88.59';

export type KosIdentity = DocumentIdentity;

type Located = FindingScore & { location: FindingLocation };

/** Flagged findings with a key image, most probable first. */
function locatedFlags(result: StudyResult): Located[] {
  return result.findings
    .filter((f): f is Located => f.flagged && f.location !== undefined)
    .sort((a, b) => (b.probability ?? 0) - (a.probability ?? 0));
}

/** "neurotriage STAT: acute_infarct (P 0.82), haemorrhage (P 0.35); key slice of each. Machine output, not verified." */
function description(result: StudyResult, flags: Located[]): string {
  const named = flags.map((f) => `${f.queryId}${f.probability === null ? '' : ` (P ${probabilityDecimal(f.probability)})`}`);
  return `neurotriage ${result.priority}: key slice of each flagged finding: ${named.join(', ')}. Machine output, not verified by a radiologist; the neurotriage SR gives the region and the decision.`;
}

/** Current Requested Procedure Evidence: every image the content references, by series. */
function evidence(result: StudyResult, flags: Located[], source: SourceStudy): NaturalDataset[] {
  const bySeries = new Map<string, Map<string, string>>();
  for (const { location: loc } of flags) {
    const instances = bySeries.get(loc.SeriesInstanceUID) ?? new Map<string, string>();
    instances.set(loc.SOPInstanceUID, keyImageClass(loc, source));
    bySeries.set(loc.SeriesInstanceUID, instances);
  }
  return [{
    StudyInstanceUID: result.StudyInstanceUID,
    ReferencedSeriesSequence: [...bySeries].map(([SeriesInstanceUID, instances]) => ({
      SeriesInstanceUID,
      ReferencedSOPSequence: [...instances].map(([ReferencedSOPInstanceUID, ReferencedSOPClassUID]) => ({ ReferencedSOPClassUID, ReferencedSOPInstanceUID })),
    })),
  }];
}

/** The key object document for a result, or null when there is nothing to flag (no located flag, or provisional). */
export function buildKeyObjects(result: StudyResult, source: SourceStudy, id: KosIdentity): NaturalDataset | null {
  const flags = locatedFlags(result);
  if (flags.length === 0 || result.provisional) return null;
  // One IMAGE item per key slice: two findings located on the same slice (or frame) share it.
  const slices = new Map<string, FindingLocation>();
  for (const { location: l } of flags) {
    const key = `${l.SOPInstanceUID}#${l.frame ?? ''}`;
    if (!slices.has(key)) slices.set(key, l);
  }
  const images = [...slices.values()].map((l) => keyImageItem('CONTAINS', l, source));
  const t = documentTimes(source, id.now, id.timeZone);
  return withCharacterSet({
    // SOP Common
    SOPClassUID: KEY_OBJECT_SELECTION,
    SOPInstanceUID: id.SOPInstanceUID,
    InstanceCreationDate: t.da(id.now),
    InstanceCreationTime: t.tm(id.now),
    TimezoneOffsetFromUTC: t.offset,
    // Patient + General Study: copied so the document lands in the source study
    ...sourceStudyModules(result, source),
    // Key Object Document Series, General Equipment
    Modality: 'KO',
    SeriesInstanceUID: id.SeriesInstanceUID,
    SeriesNumber: id.SeriesNumber,
    SeriesDescription: 'AI triage key images (neurotriage)',
    ReferencedPerformedProcedureStepSequence: [],
    Manufacturer: 'neurotriage',
    ManufacturerModelName: loValue(result.model.bundleId),
    SoftwareVersions: loValue(id.softwareVersion),
    // Key Object Document
    InstanceNumber: id.InstanceNumber,
    ContentDate: t.da(result.scoredAt),
    ContentTime: t.tm(result.scoredAt),
    CurrentRequestedProcedureEvidenceSequence: evidence(result, flags, source),
    // SR Document Content: the root CONTAINER, TID 2010
    ...container(undefined, CODES.ofInterest, [
      ...languageAndObserver(result),
      text('CONTAINS', CODES.keyObjectDescription, description(result, flags)),
      ...images,
    ], '2010'),
  });
}
