// Test data for the outbound tests: StudyResults shaped like the worker's, written to Redis the way the worker
// writes them, and a small synthetic MR instance stored in the listener's layout (shared/studies.ts).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
// eslint-disable-next-line @typescript-eslint/ban-ts-comment -- dcmjs ships no declarations
// @ts-ignore
import dcmjsUntyped from 'dcmjs';
import type { Priority } from '../../../shared/model-manifest';
import { resultKeys, type StudyResult } from '../../../shared/results';
import { instanceStorageKey, keys } from '../../../shared/studies';

const dcmjs = dcmjsUntyped as {
  data: {
    DicomDict: new (meta: Record<string, unknown>) => { dict: Record<string, unknown>; write(): ArrayBuffer };
    DicomMetaDictionary: { denaturalizeDataset(ds: Record<string, unknown>): Record<string, unknown> };
  };
};

let counter = 0;
/** Unique UIDs per call: a fixed test root plus pid and a counter. */
export function testUid(): string {
  counter += 1;
  return `1.2.826.0.1.3680043.10.1234.${process.pid}.${Date.now() % 1e9}.${counter}`;
}

export function makeResult(priority: Priority, overrides: Partial<StudyResult> = {}): StudyResult {
  const flagged = priority !== 'ROUTINE';
  const now = Date.now();
  return {
    StudyInstanceUID: testUid(),
    AccessionNumber: `ACC${counter}`,
    priority,
    findings: [
      {
        queryId: 'acute_infarct', text: 'Acute ischaemic infarct with restricted diffusion', priority: 'STAT',
        similarity: flagged ? 0.3412 : 0.1021, probability: priority === 'STAT' ? 0.93 : 0.04, threshold: 0.5, flagged: priority === 'STAT',
        triggered: priority === 'STAT', calibration: 'calibrated', bySequence: { DWI: 0.35 },
      },
      {
        queryId: 'mass_effect', text: 'Mass effect | midline shift', priority: 'URGENT',
        similarity: 0.2, probability: priority === 'URGENT' ? 0.8 : 0.1, threshold: 0.5, flagged: priority === 'URGENT',
        triggered: priority === 'URGENT', calibration: 'calibrated', bySequence: { FLAIR: 0.2 },
      },
    ],
    abnormalProbability: flagged ? 0.91 : 0.08,
    sequencesUsed: ['FLAIR', 'DWI'],
    sequencesMissing: ['T1'],
    series: [],
    confidence: 0.8,
    model: { bundleId: 'neurotriage-synthetic', version: '0.1.0' },
    priorityProbability: priority === 'STAT' ? 0.93 : priority === 'URGENT' ? 0.8 : 0.04,
    judgedWith: { querySetVersion: 'test', classThresholds: {} },
    provider: 'cpu',
    timingsMs: { decode: 1, preprocess: 1, inference: 1, scoring: 1, total: 4 },
    receivedAt: now - 1000,
    scoredAt: now,
    ...overrides,
  };
}

/** What the worker does: the result under its key, then a message on the scored channel. */
export async function writeResult(redis: Redis, result: StudyResult, publish = false): Promise<void> {
  await redis.set(resultKeys.result(result.StudyInstanceUID), JSON.stringify(result));
  if (publish) await redis.publish(resultKeys.scoredChannel(), result.StudyInstanceUID);
}

export interface StoredInstance {
  StudyInstanceUID: string;
  SeriesInstanceUID: string;
  SOPInstanceUID: string;
  file: string;
}

/** A tiny 8x8 MR image (synthetic patient) stored where the listener would store it and recorded in Redis. */
export async function storeMrInstance(
  redis: Redis,
  dataDir: string,
  ids: { StudyInstanceUID: string; SeriesInstanceUID?: string; AccessionNumber?: string; StudyDescription?: string },
): Promise<StoredInstance> {
  const SeriesInstanceUID = ids.SeriesInstanceUID ?? testUid();
  const SOPInstanceUID = testUid();
  const MRImage = '1.2.840.10008.5.1.4.1.1.4';
  const ds = {
    SpecificCharacterSet: 'ISO_IR 192',
    SOPClassUID: MRImage,
    SOPInstanceUID,
    StudyInstanceUID: ids.StudyInstanceUID,
    SeriesInstanceUID,
    PatientName: 'Synthetic^Patient',
    PatientID: 'SYNTH-0001',
    PatientBirthDate: '19700101',
    PatientSex: 'O',
    StudyDate: '20260101',
    StudyTime: '101500',
    ReferringPhysicianName: '',
    StudyID: '1',
    AccessionNumber: ids.AccessionNumber ?? '',
    StudyDescription: ids.StudyDescription ?? 'MRI brain',
    Modality: 'MR',
    SeriesNumber: 3,
    SeriesDescription: 'ax DWI b1000',
    InstanceNumber: 1,
    ImageType: ['ORIGINAL', 'PRIMARY'],
    ScanningSequence: 'EP',
    SequenceVariant: 'SK',
    ScanOptions: '',
    MRAcquisitionType: '2D',
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: 8,
    Columns: 8,
    BitsAllocated: 16,
    BitsStored: 16,
    HighBit: 15,
    PixelRepresentation: 0,
    PixelData: [new Uint16Array(64).map((_, i) => i * 10).buffer],
    _vrMap: { PixelData: 'OW' },
  };
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: MRImage,
    MediaStorageSOPInstanceUID: SOPInstanceUID,
    TransferSyntaxUID: '1.2.840.10008.1.2.1',
    ImplementationClassUID: '1.2.826.0.1.3680043.10.1234.1',
  };
  const dict = new dcmjs.data.DicomDict(dcmjs.data.DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = dcmjs.data.DicomMetaDictionary.denaturalizeDataset(ds);
  const storageKey = instanceStorageKey(ids.StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID);
  const file = path.join(dataDir, storageKey);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, Buffer.from(dict.write()));
  await redis.hset(keys.studyInstances(ids.StudyInstanceUID), SOPInstanceUID, storageKey);
  return { StudyInstanceUID: ids.StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, file };
}
