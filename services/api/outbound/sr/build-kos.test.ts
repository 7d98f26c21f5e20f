// The Key Object Selection document, built for located flags and checked with the real tools: dciodvfy must report
// 0 errors and 0 warnings and dsrdump must read it as a TID 2010 tree. Structure is asserted on the dataset read back
// from the file, as a PACS would receive it.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FindingLocation, FindingScore, StudyResult } from '../../../../shared/results';
import { checkSr, writePart10 } from '../../../../test/helpers/sr-check';
import { buildKeyObjects, KEY_OBJECT_SELECTION, type KosIdentity } from './build-kos';
import { readHeader, type NaturalDataset } from './dcmjs';
import type { SourceStudy } from './source-study';

const T2 = '1.2.840.10008.5.1.4.1.1.4';
const at = (SOPInstanceUID: string, over: Partial<FindingLocation> = {}): FindingLocation => ({
  method: 'occlusion', sequence: 'DWI', SeriesInstanceUID: '1.2.3.4.5', SOPInstanceUID, SOPClassUID: T2, FrameOfReferenceUID: '1.2.3.4.9',
  ImageOrientationPatient: [1, 0, 0, 0, 1, 0], point: [60.5, 70.25], radiusPx: 12, radiusMm: 12, patientMm: [10, -20, 30], sliceIndex: 10,
  sliceCount: 24, scoreDrop: 0.12, ...over,
});

function finding(over: Partial<FindingScore>): FindingScore {
  return {
    queryId: 'acute_infarct', text: 'Acute ischaemic infarction.', priority: 'STAT', similarity: 0.25, probability: 0.8, threshold: 0.05,
    flagged: true, triggered: true, calibration: 'calibrated', bySequence: { DWI: 0.25 }, ...over,
  };
}

function result(findings: FindingScore[], over: Partial<StudyResult> = {}): StudyResult {
  return {
    StudyInstanceUID: '1.2.3.4', AccessionNumber: 'A1', priority: 'STAT', resultVersion: 2, findings,
    abnormalProbability: 0.7, sequencesUsed: ['DWI'], sequencesMissing: [], series: [], confidence: 1,
    model: { bundleId: 'bundle', version: '2.0' }, provider: 'cpu', priorityProbability: 0.8, judgedWith: { querySetVersion: 'test', classThresholds: {} },
    timingsMs: { decode: 0, preprocess: 0, inference: 0, scoring: 0, total: 0 }, receivedAt: 0, scoredAt: Date.UTC(2026, 0, 2, 3, 4, 5),
    ...over,
  };
}

const source: SourceStudy = {
  attributes: { PatientName: [{ Alphabetic: 'Test^Person' }], PatientID: 'P1', StudyDate: '20260102', StudyTime: '101500', StudyID: '1', AccessionNumber: 'A1' },
  series: [{ SeriesInstanceUID: '1.2.3.4.5', instances: [{ SOPClassUID: T2, SOPInstanceUID: '1.2.3.4.5.6' }, { SOPClassUID: T2, SOPInstanceUID: '1.2.3.4.5.7' }] }],
};
const identity: KosIdentity = { SeriesInstanceUID: '2.25.11', SOPInstanceUID: '2.25.12', SeriesNumber: 9902, InstanceNumber: 2, softwareVersion: 't', now: Date.UTC(2026, 0, 2) };

type Item = NaturalDataset & { ContentSequence?: Item[] };
const name = (i: Item): string => String((i.ConceptNameCodeSequence as Item[] | undefined)?.[0]?.CodeValue ?? '');

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'nt-kos-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('the key slices of the flagged findings, one IMAGE each, pass dciodvfy and dsrdump as TID 2010', async () => {
  const r = result([
    finding({ queryId: 'haemorrhage', text: 'Haematoma.', probability: 0.35, location: at('1.2.3.4.5.7') }),
    finding({ probability: 0.82, location: at('1.2.3.4.5.6') }),
    // Located on the same slice as the infarct: the slice is listed once.
    finding({ queryId: 'hydrocephalus', text: 'Hydrocephalus.', probability: 0.6, location: at('1.2.3.4.5.6') }),
    // Not flagged: not a key image.
    finding({ queryId: 'mass', text: 'Mass.', priority: 'URGENT', probability: 0.01, flagged: false, triggered: false, location: at('1.2.3.4.5.8') }),
  ]);
  const file = path.join(dir, 'kos.dcm');
  writePart10(file, buildKeyObjects(r, source, identity)!);
  const check = await checkSr(file);
  expect(check.iod).toBe('KeyObjectSelectionDocument');
  expect(check.errors).toEqual([]);
  expect(check.warnings).toEqual([]);
  expect(check.dumpProblems).toEqual([]);
  expect(check.dump).toMatch(/^Key Object Selection Document/m);
  expect(check.dump).toContain('# TID 2010 (DCMR');

  const ds = readHeader(readFileSync(file)) as Item;
  expect(ds).toMatchObject({ SOPClassUID: KEY_OBJECT_SELECTION, Modality: 'KO', SeriesNumber: 9902, InstanceNumber: 2, StudyInstanceUID: '1.2.3.4', PatientID: 'P1', AccessionNumber: 'A1' });
  expect(ds.SpecificCharacterSet).toBeUndefined();
  expect(name(ds)).toBe('113000');
  const content = ds.ContentSequence!;
  const images = content.filter((i) => i.ValueType === 'IMAGE').map((i) => (i.ReferencedSOPSequence as Item[])[0].ReferencedSOPInstanceUID);
  expect(images).toEqual(['1.2.3.4.5.6', '1.2.3.4.5.7']); // most probable flag first, each slice once
  const description = content.find((i) => name(i) === '113012')!.TextValue as string;
  expect(description).toMatch(/^neurotriage STAT: key slice of each flagged finding: acute_infarct \(P 0\.82\d*\), hydrocephalus \(P 0\.6\d*\), haemorrhage \(P 0\.35\d*\)\./);
  expect(description).not.toContain('mass');
  // Every referenced image is in the evidence, by series.
  const evidence = (ds.CurrentRequestedProcedureEvidenceSequence as Item[])[0];
  const refs = ((evidence.ReferencedSeriesSequence as Item[])[0].ReferencedSOPSequence as Item[]).map((i) => i.ReferencedSOPInstanceUID);
  expect(refs.sort()).toEqual(['1.2.3.4.5.6', '1.2.3.4.5.7']);
});

test('a frame of a multi-frame key image is referenced by its number', async () => {
  const multi = at('1.2.3.4.5.6', { SOPClassUID: '1.2.840.10008.5.1.4.1.1.4.1', frame: 7 });
  const file = path.join(dir, 'kos-frame.dcm');
  writePart10(file, buildKeyObjects(result([finding({ location: multi })]), { ...source, series: [] }, identity)!);
  const check = await checkSr(file);
  expect(check.errors).toEqual([]);
  const ds = readHeader(readFileSync(file)) as Item;
  const image = ds.ContentSequence!.find((i) => i.ValueType === 'IMAGE')!;
  expect((image.ReferencedSOPSequence as Item[])[0]).toMatchObject({ ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4.1', ReferencedFrameNumber: 7 });
});

test('a patient name outside ASCII declares UTF-8 and still passes dciodvfy', async () => {
  const file = path.join(dir, 'kos-utf8.dcm');
  const named: SourceStudy = { ...source, attributes: { ...source.attributes, PatientName: [{ Alphabetic: 'Müller^Zoë' }] } };
  writePart10(file, buildKeyObjects(result([finding({ location: at('1.2.3.4.5.6') })]), named, identity)!);
  const check = await checkSr(file);
  expect(check.errors).toEqual([]);
  expect(check.dumpProblems).toEqual([]);
  const ds = readHeader(readFileSync(file)) as Item;
  expect(ds.SpecificCharacterSet).toBe('ISO_IR 192');
  expect(ds.PatientName).toEqual([{ Alphabetic: 'Müller^Zoë' }]);
});

test('no document without a located flag, or while the result is provisional', () => {
  expect(buildKeyObjects(result([finding({})]), source, identity)).toBeNull();
  expect(buildKeyObjects(result([finding({ flagged: false, location: at('1.2.3.4.5.6') })]), source, identity)).toBeNull();
  const provisional = result([finding({ location: at('1.2.3.4.5.6') })], { provisional: { waitingFor: ['FLAIR'], until: Date.UTC(2026, 0, 2, 3, 10) } });
  expect(buildKeyObjects(provisional, source, identity)).toBeNull();
});

test('its dates and times are in the offset of the study\'s local Study Date and Time, which it states, as the SR does', async () => {
  // 19:30:05 EDT on 1 July in New York; a study there at 19:10 local. In UTC the result would read as the next day.
  const scoredAt = Date.UTC(2026, 6, 1, 23, 30, 5);
  const study: SourceStudy = { ...source, attributes: { ...source.attributes, StudyDate: '20260701', StudyTime: '191000' } };
  const file = path.join(dir, 'kos-zone.dcm');
  writePart10(file, buildKeyObjects(result([finding({ location: at('1.2.3.4.5.6') })], { scoredAt }), study, { ...identity, now: scoredAt + 1000, timeZone: 'America/New_York' })!);
  expect((await checkSr(file)).errors).toEqual([]);
  const ds = readHeader(readFileSync(file)) as Item;
  expect(ds).toMatchObject({
    TimezoneOffsetFromUTC: '-0400', StudyDate: '20260701', StudyTime: '191000',
    ContentDate: '20260701', ContentTime: '193005.000', InstanceCreationDate: '20260701', InstanceCreationTime: '193006.000',
  });
});
