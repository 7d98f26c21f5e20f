// What the SR needs from the source study, read in memory from the instances the listener stored: the Patient
// and General Study module attributes (so the PACS files the SR into the same study and patient) and the UIDs of
// the evidence. Returned values are held only as long as one SR is built; nothing from here is logged.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { keys } from '../../../../shared/studies';
import { PermanentDeliveryError, RetryableDeliveryError } from '../errors';
import { readHeader, type NaturalDataset } from './dcmjs';

/**
 * Patient module, Patient Study-independent identity, and General Study module attributes copied verbatim (the SR
 * makes Study Description valid for LO when it is not: build-sr.ts), and the source's Timezone Offset From UTC.
 */
export const COPIED_ATTRIBUTES = [
  'PatientName', 'PatientID', 'IssuerOfPatientID', 'PatientBirthDate', 'PatientSex', 'OtherPatientIDsSequence',
  'StudyInstanceUID', 'StudyDate', 'StudyTime', 'ReferringPhysicianName', 'StudyID', 'AccessionNumber',
  'IssuerOfAccessionNumberSequence', 'StudyDescription',
  // SOP Common: the offset the Study Date and Time are in, which the documents then state (document.ts documentTimes).
  'TimezoneOffsetFromUTC',
] as const;

export interface EvidenceSeries {
  SeriesInstanceUID: string;
  instances: Array<{ SOPClassUID: string; SOPInstanceUID: string }>;
}

export interface SourceStudy {
  attributes: NaturalDataset;
  series: EvidenceSeries[];
}

export interface SourceStudyDeps {
  redis: Redis;
  dataDir: string;
}

/**
 * Loads the source study. `seriesFilter` limits the evidence to the series the result used (all when empty).
 * The SOP class is read from one instance per series: a series holds one SOP class in practice, and reading every
 * header of a 300-slice study would cost more than the SR is worth.
 */
export async function loadSourceStudy(deps: SourceStudyDeps, StudyInstanceUID: string, seriesFilter: string[] = []): Promise<SourceStudy> {
  const stored = await deps.redis.hgetall(keys.studyInstances(StudyInstanceUID));
  const bySeries = new Map<string, Array<{ SOPInstanceUID: string; storageKey: string }>>();
  for (const [SOPInstanceUID, storageKey] of Object.entries(stored)) {
    // Storage keys are store/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm (shared/studies.ts).
    const SeriesInstanceUID = path.posix.basename(path.posix.dirname(storageKey));
    if (seriesFilter.length > 0 && !seriesFilter.includes(SeriesInstanceUID)) continue;
    const list = bySeries.get(SeriesInstanceUID) ?? [];
    list.push({ SOPInstanceUID, storageKey });
    bySeries.set(SeriesInstanceUID, list);
  }
  if (bySeries.size === 0) {
    if (seriesFilter.length > 0) return loadSourceStudy(deps, StudyInstanceUID);
    throw new PermanentDeliveryError(`no stored instances for study ${StudyInstanceUID}`, 'source-missing');
  }

  let attributes: NaturalDataset | undefined;
  const series: EvidenceSeries[] = [];
  for (const [SeriesInstanceUID, instances] of [...bySeries.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    instances.sort((a, b) => a.SOPInstanceUID.localeCompare(b.SOPInstanceUID));
    const header = await readStored(deps.dataDir, instances[0].storageKey);
    if (header.StudyInstanceUID !== StudyInstanceUID) {
      throw new PermanentDeliveryError(`stored instance does not belong to study ${StudyInstanceUID}`, 'source-mismatch');
    }
    attributes ??= pick(header);
    const SOPClassUID = String(header.SOPClassUID ?? '');
    series.push({ SeriesInstanceUID, instances: instances.map((i) => ({ SOPClassUID, SOPInstanceUID: i.SOPInstanceUID })) });
  }
  return { attributes: attributes ?? {}, series };
}

/**
 * The AccessionNumber of a stored instance of the study, for results that lack one (the RIS keys on it). One
 * instance is enough: the accession number is a study-level attribute.
 */
export async function readSourceAccession(deps: SourceStudyDeps, StudyInstanceUID: string): Promise<string | undefined> {
  const picked = (await deps.redis.hrandfield(keys.studyInstances(StudyInstanceUID), 1, 'WITHVALUES')) as string[];
  if (picked.length < 2) return undefined;
  const header = await readStored(deps.dataDir, picked[1]);
  const accession = typeof header.AccessionNumber === 'string' ? header.AccessionNumber.trim() : '';
  return accession || undefined;
}

async function readStored(dataDir: string, storageKey: string): Promise<NaturalDataset> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path.join(dataDir, storageKey));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Gone for good (retention) vs a transient I/O problem.
    if (code === 'ENOENT') throw new PermanentDeliveryError('a stored instance of the study is missing on disk', 'source-missing', { cause: err });
    throw new RetryableDeliveryError(`reading a stored instance failed (${code ?? 'error'})`, 'source-io', { cause: err });
  }
  try {
    return readHeader(bytes);
  } catch (err) {
    throw new PermanentDeliveryError('a stored instance of the study could not be parsed', 'source-corrupt', { cause: err });
  }
}

function pick(header: NaturalDataset): NaturalDataset {
  const out: NaturalDataset = {};
  for (const key of COPIED_ATTRIBUTES) if (header[key] !== undefined) out[key] = header[key];
  return out;
}
