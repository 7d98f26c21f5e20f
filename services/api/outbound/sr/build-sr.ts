// Builds the triage result as a DICOM Comprehensive SR (naturalised dataset, keyword -> value): a CONTAINER titled
// "Diagnostic imaging report" holding the priority, the algorithm, and one "Finding" CONTAINER per query with
// TEXT/NUM/CODE items (query sentence, similarity, probability, flagged). Evidence references the source study's
// series and instances by UID; Patient/Study attributes come from the source study so the PACS files it there.
// Pure: the caller supplies the source attributes, the UIDs and the clock.
import type { Priority } from '../../../../shared/model-manifest';
import type { FindingScore, StudyResult } from '../../../../shared/results';
import type { NaturalDataset } from './dcmjs';
import type { SourceStudy } from './source-study';

export const COMPREHENSIVE_SR = '1.2.840.10008.5.1.4.1.1.88.33';
/** Coding scheme for our own concepts ("99" prefix: private, PS3.16 8.2). */
export const CODING_SCHEME = '99NTRIAGE';

interface Code {
  CodeValue: string;
  CodingSchemeDesignator: string;
  CodeMeaning: string;
}

const code = (CodeValue: string, CodingSchemeDesignator: string, CodeMeaning: string): Code => ({
  CodeValue, CodingSchemeDesignator, CodeMeaning,
});

export const CODES = {
  title: code('18748-4', 'LN', 'Diagnostic imaging report'),
  finding: code('121071', 'DCM', 'Finding'),
  algorithmName: code('111001', 'DCM', 'Algorithm Name'),
  algorithmVersion: code('111003', 'DCM', 'Algorithm Version'),
  triagePriority: code('TRIAGE_PRIORITY', CODING_SCHEME, 'Triage priority'),
  abnormalProbability: code('ABNORMAL_PROBABILITY', CODING_SCHEME, 'Probability the study is abnormal'),
  confidence: code('CONFIDENCE', CODING_SCHEME, 'Fraction of model sequences available'),
  sequencesUsed: code('SEQUENCES_USED', CODING_SCHEME, 'Sequences used'),
  query: code('QUERY', CODING_SCHEME, 'Triage query'),
  queryId: code('QUERY_ID', CODING_SCHEME, 'Triage query identifier'),
  similarity: code('SIMILARITY', CODING_SCHEME, 'Image-text similarity'),
  probability: code('PROBABILITY', CODING_SCHEME, 'Calibrated probability'),
  flagged: code('FLAGGED', CODING_SCHEME, 'Flagged'),
  yes: code('373066001', 'SCT', 'Yes'),
  no: code('373067005', 'SCT', 'No'),
  noUnits: code('1', 'UCUM', 'no units'),
} as const;

export const PRIORITY_CODES: Record<Priority, Code> = {
  STAT: code('STAT', CODING_SCHEME, 'Stat'),
  URGENT: code('URGENT', CODING_SCHEME, 'Urgent'),
  ROUTINE: code('ROUTINE', CODING_SCHEME, 'Routine'),
};

export interface SrIdentity {
  SeriesInstanceUID: string;
  SOPInstanceUID: string;
  SeriesNumber: number;
  InstanceNumber: number;
  softwareVersion: string;
  now: number;
}

/** DS is 16 characters at most; four decimals is finer than any score needs. */
function ds(x: number): string {
  return String(Number(x.toFixed(4)));
}

function da(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10).replace(/-/g, '');
}

function tm(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23).replace(/:/g, '');
}

const text = (concept: Code, value: string, rel = 'CONTAINS'): NaturalDataset => ({
  RelationshipType: rel, ValueType: 'TEXT', ConceptNameCodeSequence: [concept], TextValue: value,
});
const codeItem = (concept: Code, value: Code, rel = 'CONTAINS'): NaturalDataset => ({
  RelationshipType: rel, ValueType: 'CODE', ConceptNameCodeSequence: [concept], ConceptCodeSequence: [value],
});
const num = (concept: Code, value: number, rel = 'CONTAINS'): NaturalDataset => ({
  RelationshipType: rel,
  ValueType: 'NUM',
  ConceptNameCodeSequence: [concept],
  MeasuredValueSequence: [{ NumericValue: ds(value), MeasurementUnitsCodeSequence: [CODES.noUnits] }],
});

function findingContainer(f: FindingScore): NaturalDataset {
  const items = [
    text(CODES.query, f.text),
    text(CODES.queryId, f.queryId),
    num(CODES.similarity, f.similarity),
    ...(f.probability === null ? [] : [num(CODES.probability, f.probability)]),
    codeItem(CODES.flagged, f.flagged ? CODES.yes : CODES.no),
    codeItem(CODES.triagePriority, PRIORITY_CODES[f.priority]),
  ];
  return {
    RelationshipType: 'CONTAINS',
    ValueType: 'CONTAINER',
    ConceptNameCodeSequence: [CODES.finding],
    ContinuityOfContent: 'SEPARATE',
    ContentSequence: items,
  };
}

export function buildTriageSr(result: StudyResult, source: SourceStudy, id: SrIdentity): NaturalDataset {
  const type2 = (key: string): unknown => source.attributes[key] ?? '';
  const content = [
    codeItem(CODES.triagePriority, PRIORITY_CODES[result.priority]),
    text(CODES.algorithmName, result.model.bundleId),
    text(CODES.algorithmVersion, result.model.version),
    ...(result.abnormalProbability === null ? [] : [num(CODES.abnormalProbability, result.abnormalProbability)]),
    num(CODES.confidence, result.confidence),
    ...(result.sequencesUsed.length > 0 ? [text(CODES.sequencesUsed, result.sequencesUsed.join(', '))] : []),
    ...result.findings.map(findingContainer),
  ];
  return {
    // SOP Common
    SpecificCharacterSet: 'ISO_IR 192',
    SOPClassUID: COMPREHENSIVE_SR,
    SOPInstanceUID: id.SOPInstanceUID,
    InstanceCreationDate: da(id.now),
    InstanceCreationTime: tm(id.now),
    TimezoneOffsetFromUTC: '+0000',
    // Patient + General Study: copied so the SR lands in the source study (type 2: present, maybe empty)
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
    AccessionNumber: source.attributes.AccessionNumber ?? result.AccessionNumber ?? '',
    // SR Document Series + General Equipment
    Modality: 'SR',
    SeriesInstanceUID: id.SeriesInstanceUID,
    SeriesNumber: id.SeriesNumber,
    SeriesDescription: 'AI triage (neurotriage)',
    ReferencedPerformedProcedureStepSequence: [],
    Manufacturer: 'neurotriage',
    SoftwareVersions: id.softwareVersion,
    // SR Document General: machine output, never verified by a person
    InstanceNumber: id.InstanceNumber,
    CompletionFlag: 'COMPLETE',
    VerificationFlag: 'UNVERIFIED',
    ContentDate: da(result.scoredAt),
    ContentTime: tm(result.scoredAt),
    PerformedProcedureCodeSequence: [],
    CurrentRequestedProcedureEvidenceSequence: [
      {
        StudyInstanceUID: result.StudyInstanceUID,
        ReferencedSeriesSequence: source.series.map((s) => ({
          SeriesInstanceUID: s.SeriesInstanceUID,
          ReferencedSOPSequence: s.instances.map((i) => ({
            ReferencedSOPClassUID: i.SOPClassUID,
            ReferencedSOPInstanceUID: i.SOPInstanceUID,
          })),
        })),
      },
    ],
    // SR Document Content: the root CONTAINER
    ValueType: 'CONTAINER',
    ConceptNameCodeSequence: [CODES.title],
    ContinuityOfContent: 'SEPARATE',
    ContentSequence: content,
  };
}
