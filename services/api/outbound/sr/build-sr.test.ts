import type { StudyResult } from '../../../../shared/results';
import { buildTriageSr, COMPREHENSIVE_SR } from './build-sr';
import { dcmjs, readHeader, type NaturalDataset } from './dcmjs';

const result: StudyResult = {
  StudyInstanceUID: '1.2.3.4', AccessionNumber: 'A1', priority: 'URGENT',
  findings: [
    { queryId: 'mass', text: 'Mass effect', priority: 'URGENT', similarity: 0.25, probability: 0.8, threshold: 0.5, flagged: true, triggered: true, calibration: 'calibrated', bySequence: {} },
    { queryId: 'bleed', text: 'Haemorrhage', priority: 'STAT', similarity: 0.05, probability: null, threshold: null, flagged: false, triggered: false, calibration: 'uncalibrated', bySequence: {} },
  ],
  abnormalProbability: 0.7, sequencesUsed: ['T2', 'FLAIR'], sequencesMissing: [], series: [], confidence: 0.6,
  model: { bundleId: 'bundle', version: '2.0' }, provider: 'cpu', priorityProbability: 0.8, judgedWith: { querySetVersion: 'test', classThresholds: {} },
  timingsMs: { decode: 0, preprocess: 0, inference: 0, scoring: 0, total: 0 }, receivedAt: 0, scoredAt: Date.UTC(2026, 0, 2, 3, 4, 5),
};

const source = {
  attributes: { PatientName: [{ Alphabetic: 'Test^Person' }], PatientID: 'P1', StudyDate: '20260102', AccessionNumber: 'A1' },
  series: [{ SeriesInstanceUID: '1.2.3.4.5', instances: [{ SOPClassUID: '1.2.840.10008.5.1.4.1.1.4', SOPInstanceUID: '1.2.3.4.5.6' }] }],
};

/** Writes a Part 10 file with dcmjs and reads it back: the SR survives encoding (Orthanc's test covers the wire). */
function roundTrip(ds: NaturalDataset): NaturalDataset {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { data } = require('dcmjs') as { data: { DicomDict: new (m: unknown) => { dict: unknown; write(): ArrayBuffer } } };
  const file = new data.DicomDict(dcmjs.data.DicomMetaDictionary.denaturalizeDataset({
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: COMPREHENSIVE_SR,
    MediaStorageSOPInstanceUID: String(ds.SOPInstanceUID),
    TransferSyntaxUID: '1.2.840.10008.1.2.1',
    ImplementationClassUID: '1.2.3',
  }));
  file.dict = dcmjs.data.DicomMetaDictionary.denaturalizeDataset(ds);
  return readHeader(Buffer.from(file.write()));
}

type Item = Record<string, unknown>;
const concept = (i: Item): string => ((i.ConceptNameCodeSequence as Item[])[0].CodeValue as string);

describe('buildTriageSr', () => {
  const ds = roundTrip(buildTriageSr(result, source, {
    SeriesInstanceUID: '2.25.1', SOPInstanceUID: '2.25.2', SeriesNumber: 9901, InstanceNumber: 1, softwareVersion: 't', now: Date.UTC(2026, 0, 2),
  }));

  it('is a Comprehensive SR in the source study, with its patient attributes', () => {
    expect(ds.SOPClassUID).toBe(COMPREHENSIVE_SR);
    expect(ds.Modality).toBe('SR');
    expect(ds.StudyInstanceUID).toBe('1.2.3.4');
    expect(ds.PatientID).toBe('P1');
    expect((ds.PatientName as Item[])[0].Alphabetic).toBe('Test^Person');
    expect(ds.ContentDate).toBe('20260102');
    expect(ds.ContentTime).toBe('030405.000');
  });

  it('references the evidence by UID', () => {
    const ev = (ds.CurrentRequestedProcedureEvidenceSequence as Item[])[0];
    expect(ev.StudyInstanceUID).toBe('1.2.3.4');
    const s = (ev.ReferencedSeriesSequence as Item[])[0];
    expect(s.SeriesInstanceUID).toBe('1.2.3.4.5');
    expect((s.ReferencedSOPSequence as Item[])[0].ReferencedSOPInstanceUID).toBe('1.2.3.4.5.6');
  });

  it('holds the priority and one Finding container per query with TEXT/NUM/CODE items', () => {
    const content = ds.ContentSequence as Item[];
    expect(ds.ValueType).toBe('CONTAINER');
    const priority = content.find((i) => concept(i) === 'TRIAGE_PRIORITY')!;
    expect((priority.ConceptCodeSequence as Item[])[0].CodeValue).toBe('URGENT');
    const findings = content.filter((i) => i.ValueType === 'CONTAINER');
    expect(findings.map((f) => concept(f))).toEqual(['121071', '121071']);
    const [mass, bleed] = findings.map((f) => f.ContentSequence as Item[]);
    expect(mass.map(concept)).toEqual(['QUERY', 'QUERY_ID', 'SIMILARITY', 'PROBABILITY', 'FLAGGED', 'TRIAGE_PRIORITY']);
    expect(bleed.map(concept)).not.toContain('PROBABILITY');
    expect(Number(((mass[2].MeasuredValueSequence as Item[])[0]).NumericValue)).toBe(0.25);
    expect(((mass[4].ConceptCodeSequence as Item[])[0]).CodeValue).toBe('373066001');
    expect(((bleed.find((i) => concept(i) === 'FLAGGED')!.ConceptCodeSequence as Item[])[0]).CodeValue).toBe('373067005');
  });
});
