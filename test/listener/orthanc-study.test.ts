// A study sent back whole from a real PACS (Debian's Orthanc, "send study to modality") with an SR in it, as
// happens when neurotriage's own SR has been stored there, and a vendor's private object (Siemens CSA Non-Image, as
// Siemens MR studies carry): under the default DICOM_OTHER_STORAGE the send succeeds, every MR instance is stored
// and the SR and the private object are acknowledged and ignored. With DICOM_OTHER_STORAGE=reject the same send
// fails in Orthanc (issue 13's HTTP 500): the reason the default is what it is.
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { keys } from '../../shared/studies';
import { newUid, runTool, writeDataset, writeMrInstance } from '../helpers/dcmtk';
import { startOrthanc, type TestOrthanc } from '../outbound/helpers/orthanc';
import { listFiles, metricsText, startHarness, tempDir, type Harness } from './harness';

const COMPREHENSIVE_SR = '1.2.840.10008.5.1.4.1.1.88.33';
const SIEMENS_CSA_NON_IMAGE = '1.3.12.2.1107.5.9.1';

/** A vendor-private non-image object in the study (its class is outside the DICOM root). */
function writePrivate(file: string, StudyInstanceUID: string): string {
  const SOPInstanceUID = newUid();
  writeDataset(file, {
    SOPClassUID: SIEMENS_CSA_NON_IMAGE, SOPInstanceUID, StudyDate: '20260101', AccessionNumber: 'ACC0001', Modality: 'MR',
    PatientName: 'TEST^SYNTHETIC', PatientID: 'SYN0001', StudyInstanceUID, SeriesInstanceUID: newUid(), SeriesNumber: '99', InstanceNumber: '1',
  });
  return SOPInstanceUID;
}

/** A small Comprehensive SR in the study, written with dcmjs: what a triage or reporting system sends to the PACS. */
function writeSr(file: string, StudyInstanceUID: string): string {
  const SOPInstanceUID = newUid();
  const code = (CodeValue: string, CodingSchemeDesignator: string, CodeMeaning: string) => [{ CodeValue, CodingSchemeDesignator, CodeMeaning }];
  const dataset = {
    SOPClassUID: COMPREHENSIVE_SR,
    SOPInstanceUID,
    StudyDate: '20260101',
    AccessionNumber: 'ACC0001',
    Modality: 'SR',
    PatientName: 'TEST^SYNTHETIC',
    PatientID: 'SYN0001',
    StudyInstanceUID,
    SeriesInstanceUID: newUid(),
    SeriesNumber: '900',
    InstanceNumber: '1',
    ValueType: 'CONTAINER',
    ConceptNameCodeSequence: code('18748-4', 'LN', 'Diagnostic imaging report'),
    ContinuityOfContent: 'SEPARATE',
    CompletionFlag: 'COMPLETE',
    VerificationFlag: 'UNVERIFIED',
    ContentSequence: [{ RelationshipType: 'CONTAINS', ValueType: 'TEXT', ConceptNameCodeSequence: code('121071', 'DCM', 'Finding'), TextValue: 'No urgent finding' }],
  };
  writeDataset(file, dataset);
  return SOPInstanceUID;
}

let h: Harness;
let rejecting: Harness;
let orthanc: TestOrthanc;
let files: string;

beforeAll(async () => {
  files = tempDir('nt-orthanc-study-');
  h = await startHarness({ DICOM_ALLOWED_CALLING_AES: 'ORTHANC' });
  rejecting = await startHarness({ DICOM_ALLOWED_CALLING_AES: 'ORTHANC', DICOM_OTHER_STORAGE: 'reject' }, { redis: h.redis, dataDir: tempDir('nt-orthanc-reject-') });
  orthanc = await startOrthanc({
    allowedAes: ['STORESCU'],
    modalities: { neurotriage: { aet: 'NEUROTRIAGE', port: h.ae.port }, rejecting: { aet: 'NEUROTRIAGE', port: rejecting.ae.port } },
  });
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([orthanc?.stop(), rejecting?.stop()]);
  if (rejecting) rmSync(rejecting.dataDir, { recursive: true, force: true });
  await h?.stop();
  rmSync(files, { recursive: true, force: true });
});

test('Orthanc sends a study holding MR instances, an SR and a private object: accepted whole, MR stored, the others ignored', async () => {
  const study = newUid();
  const series = `${study}.1`;
  const mr = [1, 2, 3].map((n) => {
    const file = path.join(files, `mr${n}.dcm`);
    return { file, sop: writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: series, InstanceNumber: n }) };
  });
  const srFile = path.join(files, 'sr.dcm');
  const srSop = writeSr(srFile, study);
  const sent = await runTool('storescu', ['-aet', 'STORESCU', '-aec', orthanc.aet, '127.0.0.1', String(orthanc.dicomPort), ...mr.map((m) => m.file), srFile]);
  expect(sent.code).toBe(0);
  // Orthanc stores an unknown SOP class uploaded over REST (its C-STORE SCP would refuse it by default).
  const privateFile = path.join(files, 'csa.dcm');
  const privateSop = writePrivate(privateFile, study);
  expect((await orthanc.post('/instances', readFileSync(privateFile))).status).toBe(200);
  const studies = await orthanc.rest<string[]>('/studies');
  expect(studies).toHaveLength(1);
  expect((await orthanc.rest<string[]>(`/studies/${studies[0]}/instances`)).length).toBe(5);

  const send = await orthanc.post('/modalities/neurotriage/store', studies[0]);
  expect(send.status).toBe(200);
  const stored = listFiles(path.join(h.dataDir, 'store', study)).map((f) => path.basename(f, '.dcm'));
  expect(stored.sort()).toEqual(mr.map((m) => m.sop).sort());
  expect(await h.client.hlen(keys.studyInstances(study))).toBe(3);
  expect(await h.client.hexists(keys.studyInstances(study), srSop)).toBe(0);
  expect(await h.client.hexists(keys.studyInstances(study), privateSop)).toBe(0);
  const text = await metricsText(h.listener.metricsPort);
  expect(text).toMatch(/neurotriage_listener_instances_total\{outcome="stored"\} 3/);
  expect(text).toMatch(/neurotriage_listener_instances_total\{outcome="ignored"\} 2/);

  // The same send to a listener that rejects other storage classes fails in Orthanc.
  const refused = await orthanc.post('/modalities/rejecting/store', studies[0]);
  expect(refused.status).not.toBe(200);
}, 120_000);
