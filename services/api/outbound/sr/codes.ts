// The coded concepts of neurotriage's SR (docs/dicom-conformance.md lists them): DICOM (DCM), SNOMED CT (SCT), UCUM
// and RFC 5646 codes where one exists, and the private scheme 99NTRIAGE where none does. A code value longer than
// 16 characters (the SH limit of Code Value) goes in Long Code Value (0008,0119) instead (PS3.3 8.8).
import type { Priority } from '../../../../shared/model-manifest';
import type { NaturalDataset } from './dcmjs';

/** Our own concepts ("99" prefix: a private coding scheme, PS3.16 8.2); declared in the SR's Coding Scheme Identification. */
export const PRIVATE_SCHEME = '99NTRIAGE';

export interface Code {
  value: string;
  scheme: string;
  meaning: string;
}

const code = (value: string, scheme: string, meaning: string): Code => ({ value, scheme, meaning });
const own = (value: string, meaning: string): Code => code(value, PRIVATE_SCHEME, meaning);

/** LO holds 64 characters; validators count the encoded bytes, so the limit is kept in UTF-8 bytes. */
const LO_BYTES = 64;

/**
 * `text` cut to fit LO, ending in an ASCII "..." when cut (a Unicode ellipsis would make an all-ASCII meaning need
 * ISO_IR 192), never inside a character.
 */
export function fitLo(text: string): string {
  if (Buffer.byteLength(text, 'utf8') <= LO_BYTES) return text;
  let out = '';
  for (const ch of text) {
    if (Buffer.byteLength(out + ch, 'utf8') > LO_BYTES - 3) break;
    out += ch;
  }
  return `${out.trimEnd()}...`;
}

/** C0 and C1 control characters, and DEL. */
function isControl(ch: string): boolean {
  const c = ch.charCodeAt(0);
  return c < 0x20 || (c >= 0x7f && c <= 0x9f);
}

/**
 * Text from users or source data as one valid LO value: a backslash (the value separator of LO) becomes "/", a
 * control character (LO allows none but ESC, which UTF-8 never needs) a space; then cut to fit (fitLo). A value
 * read with several values (a source attribute that held a backslash) is joined back with "/".
 */
export function loValue(value: unknown): string {
  const joined = Array.isArray(value) ? value.map(String).join('/') : String(value ?? '');
  return fitLo([...joined].map((ch) => (ch === '\\' ? '/' : isControl(ch) ? ' ' : ch)).join('').trim());
}

/**
 * Text as a UT value (TEXT content items): a backslash is allowed; control characters other than LF, FF and CR are
 * not (dciodvfy refuses a TAB too), so they become spaces.
 */
export function utValue(text: string): string {
  return [...text].map((ch) => (isControl(ch) && !'\n\f\r'.includes(ch) ? ' ' : ch)).join('');
}

/** A Code Sequence item: Code Value, or Long Code Value when the value does not fit SH(16). */
export function codeItem(c: Code): NaturalDataset {
  const meaning = loValue(c.meaning);
  return {
    ...(c.value.length > 16 ? { LongCodeValue: c.value } : { CodeValue: c.value }),
    CodingSchemeDesignator: c.scheme,
    CodeMeaning: meaning,
  };
}

export const CODES = {
  // TID 1500 Measurement Report and the templates it includes (PS3.16).
  imagingMeasurementReport: code('126000', 'DCM', 'Imaging Measurement Report'),
  language: code('121049', 'DCM', 'Language of Content Item and Descendants'),
  englishUS: code('en-US', 'RFC5646', 'English (United States)'),
  observerType: code('121005', 'DCM', 'Observer Type'),
  device: code('121007', 'DCM', 'Device'),
  deviceObserverUid: code('121012', 'DCM', 'Device Observer UID'),
  deviceObserverName: code('121013', 'DCM', 'Device Observer Name'),
  deviceObserverManufacturer: code('121014', 'DCM', 'Device Observer Manufacturer'),
  deviceObserverModelName: code('121015', 'DCM', 'Device Observer Model Name'),
  procedureReported: code('121058', 'DCM', 'Procedure reported'),
  imagingProcedure: code('363679005', 'SCT', 'Imaging procedure'),
  imagingMeasurements: code('126010', 'DCM', 'Imaging Measurements'),
  measurementGroup: code('125007', 'DCM', 'Measurement Group'),
  trackingIdentifier: code('112039', 'DCM', 'Tracking Identifier'),
  trackingUid: code('112040', 'DCM', 'Tracking Unique Identifier'),
  finding: code('121071', 'DCM', 'Finding'),
  findingSite: code('363698007', 'SCT', 'Finding Site'),
  brain: code('12738006', 'SCT', 'Brain'),
  algorithmName: code('111001', 'DCM', 'Algorithm Name'),
  algorithmVersion: code('111003', 'DCM', 'Algorithm Version'),
  imageRegion: code('111030', 'DCM', 'Image Region'),
  qualitativeEvaluations: code('C0034375', 'UMLS', 'Qualitative Evaluations'),
  // TID 2010 Key Object Selection (CID 7010 document title).
  ofInterest: code('113000', 'DCM', 'Of Interest'),
  keyObjectDescription: code('113012', 'DCM', 'Key Object Description'),
  probability: code('122157', 'DCM', 'Probability'),
  abnormal: code('263654008', 'SCT', 'Abnormal'),
  yes: code('373066001', 'SCT', 'Yes'),
  no: code('373067005', 'SCT', 'No'),
  noUnits: code('1', 'UCUM', 'no units'),
  // Private: what a triage model says that no standard code names.
  triagePriority: own('TRIAGE_PRIORITY', 'Triage priority of the study'),
  queryPriority: own('QUERY_PRIORITY', 'Priority class of the triage query'),
  query: own('QUERY', 'Triage query sentence'),
  similarity: own('SIMILARITY', 'Image-text similarity'),
  threshold: own('PROBABILITY_THRESHOLD', 'Probability threshold for flagging'),
  flagged: own('FLAGGED', 'Flagged (probability at or above the threshold)'),
  triggered: own('SETS_STUDY_PRIORITY', 'Sets the priority of the study'),
  calibration: own('CALIBRATION', 'Calibration state'),
  decision: own('DECISION', 'Triage decision in words'),
  querySetVersion: own('QUERY_SET_VERSION', 'Query set the study was judged with'),
  provisional: own('PROVISIONAL', 'Provisional result'),
  finalWithout: own('FINAL_WITHOUT', 'Final without missing sequences'),
  sequencesUsed: own('SEQUENCES_USED', 'MRI sequences used'),
  sequenceFraction: own('SEQUENCE_FRACTION', 'Fraction of the model sequences available'),
  localisationMethod: own('LOCALISATION', 'Localisation method'),
  occlusion: own('OCCLUSION_SENSITIVITY', 'Occlusion sensitivity'),
  scoreDrop: own('OCCLUSION_SCORE_DROP', 'Score fall when the region is occluded'),
} as const;

/** The bundle's default findings: SNOMED CT or DCM where DICOM or SNOMED CT has the concept. */
const FINDING_CODES: Record<string, Code> = {
  acute_infarct: code('432504007', 'SCT', 'Cerebral infarction'),
  haemorrhage: code('1386000', 'SCT', 'Intracranial hemorrhage'),
  hydrocephalus: code('230745008', 'SCT', 'Hydrocephalus'),
  mass: code('4147007', 'SCT', 'Mass'),
  white_matter_disease: code('110702', 'DCM', 'White Matter T2 Hyperintensity'),
  atrophy: code('13331008', 'SCT', 'Atrophy'),
};

/** The finding a triage query looks for: a standard code for the bundle's queries, else the query id, privately. */
export function findingCode(queryId: string, text: string): Code {
  return FINDING_CODES[queryId] ?? own(queryId.toUpperCase(), text);
}

export const PRIORITY_CODES: Record<Priority, Code> = {
  STAT: own('STAT', 'Stat'),
  URGENT: own('URGENT', 'Urgent'),
  ROUTINE: own('ROUTINE', 'Routine'),
};

export const CALIBRATION_CODES: Record<string, Code> = {
  calibrated: own('CALIBRATED', 'Calibrated for this query and model'),
  uncalibrated: own('UNCALIBRATED', 'No calibration'),
  'stale-text': own('STALE_TEXT', 'Calibration fitted for another query text'),
  'stale-bundle': own('STALE_BUNDLE', 'Calibration fitted for another model'),
};

/** Coding Scheme Identification Sequence item for the private scheme (SOP Common module). */
export const PRIVATE_SCHEME_IDENTIFICATION: NaturalDataset = {
  CodingSchemeDesignator: PRIVATE_SCHEME,
  CodingSchemeName: 'neurotriage triage concepts',
  CodingSchemeResponsibleOrganization: 'neurotriage project',
};
