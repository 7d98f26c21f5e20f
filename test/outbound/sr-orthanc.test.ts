// DICOM SR end to end through BullMQ against a real Orthanc on loopback: the source MR instance is stored by
// storescu (DCMTK) as the modality would, the SR adapter builds the TID 1500 Comprehensive 3D SR from the result and
// the stored instance and C-STOREs it; the SR is read back through Orthanc's REST API, must sit in the source study
// and pass dciodvfy and dsrdump; a second result version supersedes the first (Predecessor Documents Sequence); a
// located flag's key slice is also stored as a Key Object Selection document.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { createLogger } from '../../shared/logger';
import { connectRedis } from '../../shared/redis';
import { loadOutboundConfig } from '../../services/api/outbound/config';
import { resultKey } from '../../services/api/outbound/idempotency';
import { createOutbound, type Outbound } from '../../services/api/outbound/outbound';
import { KEY_OBJECT_SELECTION } from '../../services/api/outbound/sr/build-kos';
import { COMPREHENSIVE_3D_SR } from '../../services/api/outbound/sr/build-sr';
import { kosInstanceUid, srInstanceUid } from '../../services/api/outbound/sr/versions';
import type { FindingLocation } from '../../shared/results';
import { checkSr } from '../helpers/sr-check';
import { startRedis, type TestRedis } from '../helpers/redis';
import { makeResult, storeMrInstance, testUid, writeResult } from './helpers/fixtures';
import { startOrthanc, type TestOrthanc } from './helpers/orthanc';

const run = promisify(execFile);

let redisServer: TestRedis;
let redis: Redis;
let orthanc: TestOrthanc;
let dataDir: string;
let outbound: Outbound | undefined;
let registry: Registry;
/** Everything the outbound service logged, at debug level. */
const logLines: string[] = [];

type Tags = Record<string, unknown>;
type Item = Record<string, unknown> & { ContentSequence?: Item[]; ConceptNameCodeSequence?: Item[] };

beforeAll(async () => {
  [redisServer, orthanc] = await Promise.all([startRedis(), startOrthanc({ allowedAes: ['NEUROTRIAGE', 'STORESCU'] })]);
  redis = connectRedis(redisServer.url, 'worker');
  dataDir = mkdtempSync(path.join(tmpdir(), 'nt-outbound-data-'));
  registry = new Registry();
  const config = loadOutboundConfig({
    SR_TARGET: `${orthanc.aet}@127.0.0.1:${orthanc.dicomPort}`,
    SR_CALLING_AE: 'NEUROTRIAGE',
    SR_TIMEOUT_MS: '10000',
    OUTBOUND_ATTEMPTS: '2',
    OUTBOUND_BACKOFF_MS: '50',
  });
  outbound = createOutbound(config, {
    redisUrl: redisServer.url, registry, logger: createLogger('outbound-test', 'debug', { write: (line: string) => logLines.push(line) }), dataDir,
    subscribe: false, softwareVersion: 'test',
  });
  await outbound.start();
});

afterAll(async () => {
  await outbound?.close();
  redis?.disconnect();
  await Promise.allSettled([redisServer?.stop(), orthanc?.stop()]);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

function mainOutbound(): Outbound {
  if (!outbound) throw new Error('outbound not started');
  return outbound;
}

async function finished(jobId: string, on: Outbound = mainOutbound(), timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await on.queue('sr').getJobState(jobId);
    if (state === 'completed' || state === 'failed') return state;
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${state}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const meaning = (item: Item): unknown => (item.ConceptNameCodeSequence as Item[] | undefined)?.[0]?.CodeValue;

test('the SR lands in the source study in Orthanc with findings, priority and evidence', async () => {
  const outbound = mainOutbound();
  const result = makeResult('STAT');
  const source = await storeMrInstance(redis, dataDir, { StudyInstanceUID: result.StudyInstanceUID, AccessionNumber: result.AccessionNumber });
  result.series = [{ SeriesInstanceUID: source.SeriesInstanceUID, sequence: 'DWI', used: true }];
  await run('storescu', ['-aet', 'STORESCU', '-aec', orthanc.aet, '127.0.0.1', String(orthanc.dicomPort), source.file], {
    env: { ...process.env, TCP_NODELAY: '1' },
  });
  await writeResult(redis, result);

  expect(await outbound.enqueue(result)).toEqual(['sr']);
  const key = resultKey(result);
  expect(await finished(key.jobId)).toBe('completed');

  // One study in Orthanc, holding the MR series and our SR series, filed under the same patient.
  const studies = await orthanc.rest<string[]>('/studies');
  expect(studies).toHaveLength(1);
  const study = await orthanc.rest<{ Series: string[]; MainDicomTags: Tags }>(`/studies/${studies[0]}`);
  expect(study.MainDicomTags.StudyInstanceUID).toBe(result.StudyInstanceUID);
  expect(study.Series).toHaveLength(2);

  const instances = await orthanc.rest<Array<{ ID: string }>>('/instances?expand');
  const tagsList = await Promise.all(instances.map((i) => orthanc.rest<Tags>(`/instances/${i.ID}/tags?simplify`)));
  const sr = tagsList.find((t) => t.SOPClassUID === COMPREHENSIVE_3D_SR)!;
  const mr = tagsList.find((t) => t.Modality === 'MR')!;
  expect(sr).toBeDefined();
  expect(sr.Modality).toBe('SR');
  expect(sr.StudyInstanceUID).toBe(result.StudyInstanceUID);
  expect(sr.PatientID).toBe(mr.PatientID);
  expect(sr.PatientName).toBe(mr.PatientName);
  expect(sr.AccessionNumber).toBe(result.AccessionNumber);
  expect(sr.VerificationFlag).toBe('UNVERIFIED');

  const evidence = (sr.CurrentRequestedProcedureEvidenceSequence as Item[])[0];
  expect(evidence.StudyInstanceUID).toBe(result.StudyInstanceUID);
  const refSeries = (evidence.ReferencedSeriesSequence as Item[])[0];
  expect(refSeries.SeriesInstanceUID).toBe(source.SeriesInstanceUID);
  expect((refSeries.ReferencedSOPSequence as Item[])[0]).toMatchObject({
    ReferencedSOPInstanceUID: source.SOPInstanceUID, ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
  });

  const content = sr.ContentSequence as Item[];
  const priority = content.find((i) => meaning(i) === 'C0034375')!.ContentSequence!.find((i) => meaning(i) === 'TRIAGE_PRIORITY')!;
  expect((priority.ConceptCodeSequence as Item[])[0].CodeValue).toBe('STAT');
  const groups = content.find((i) => meaning(i) === '126010')!.ContentSequence!;
  const findings = groups.filter((g) => g.ContentSequence!.some((i) => meaning(i) === '112039' && i.TextValue !== 'abnormal'));
  expect(findings).toHaveLength(result.findings.length);
  const first = findings[0].ContentSequence!;
  expect(first.find((i) => meaning(i) === '112039')!.TextValue).toBe(result.findings[0].queryId);
  expect(first.find((i) => meaning(i) === 'QUERY')!.TextValue).toBe(result.findings[0].text);
  const similarity = first.find((i) => meaning(i) === 'SIMILARITY')!.MeasuredValueSequence as Item[];
  expect(Number(similarity[0].NumericValue)).toBeCloseTo(result.findings[0].similarity, 4);
  const probability = first.find((i) => meaning(i) === '122157')!.MeasuredValueSequence as Item[];
  expect(Number(probability[0].NumericValue)).toBeCloseTo(result.findings[0].probability!, 4);
  const flagged = first.find((i) => meaning(i) === 'FLAGGED')!.ConceptCodeSequence as Item[];
  expect(flagged[0].CodeMeaning).toBe(result.findings[0].flagged ? 'Yes' : 'No');
  expect(sr.InstanceNumber).toBe('1');
  expect(sr.PredecessorDocumentsSequence).toBeUndefined();

  // The stored object, as the PACS holds it, passes dicom3tools' dciodvfy (0 errors) and DCMTK's dsrdump.
  const srId = instances[tagsList.indexOf(sr)].ID;
  const file = path.join(dataDir, 'sr-from-orthanc.dcm');
  writeFileSync(file, Buffer.from(await (await fetch(`http://127.0.0.1:${orthanc.httpPort}/instances/${srId}/file`)).arrayBuffer()));
  const check = await checkSr(file);
  expect(check.errors).toEqual([]);
  expect(check.dumpProblems).toEqual([]);
  expect(check.dump).toMatch(/^Comprehensive 3D SR Document/m);
  expect(check.dump).toContain('Imaging Measurement Report');

  // The patient's identity was copied into the SR in memory but never logged.
  expect(logLines.join('\n')).toContain(result.StudyInstanceUID);
  expect(logLines.join('\n')).not.toMatch(/Synthetic|SYNTH-0001|19700101/);

  // A re-delivery of the same version overwrites the same SOP instance: still one SR in the study.
  await outbound.queue('sr').remove(key.jobId);
  await outbound.enqueue(result);
  expect(await finished(key.jobId)).toBe('completed');
  const after = await orthanc.rest<string[]>('/instances');
  expect(after).toHaveLength(2);
});

test('a second result version supersedes the first: next instance number, Predecessor Documents Sequence', async () => {
  const outbound = mainOutbound();
  // Version 1 is provisional, with a held STAT finding and a site query whose sentence holds a backslash; the source
  // study's description holds one too (read back as two values): both SRs must still be valid.
  const base = makeResult('URGENT', { resultVersion: 1, provisional: { waitingFor: ['DWI'], until: Date.now() + 60_000 } });
  const site = { ...base.findings[0], queryId: 'intracranial_haemorrhage_with_mass_effect_site', text: 'Intracranial haemorrhage | bleed & mass ^ effect ~ \\ oedema', probability: 0.93, flagged: true, triggered: false, held: true, fallback: true, waitingFor: ['DWI' as const] };
  const v1 = { ...base, findings: [site, base.findings[1]] };
  const source = await storeMrInstance(redis, dataDir, { StudyInstanceUID: v1.StudyInstanceUID, AccessionNumber: v1.AccessionNumber, StudyDescription: 'MR BRAIN ^ | & \\ ~ <b>"q"' });
  v1.series = [{ SeriesInstanceUID: source.SeriesInstanceUID, sequence: 'DWI', used: true }];
  await writeResult(redis, v1);
  await outbound.enqueue(v1);
  expect(await finished(resultKey(v1).jobId)).toBe('completed');

  // More instances arrived and the worker scored the study again: version 2, STAT now.
  const v2: typeof v1 = { ...makeResult('STAT', { StudyInstanceUID: v1.StudyInstanceUID, AccessionNumber: v1.AccessionNumber }), series: v1.series, resultVersion: 2, scoredAt: v1.scoredAt + 1000 };
  await writeResult(redis, v2);
  await outbound.enqueue(v2);
  expect(await finished(resultKey(v2).jobId)).toBe('completed');

  const study = (await orthanc.rest<Array<{ ID: string; MainDicomTags: Tags }>>('/studies?expand')).find((s) => s.MainDicomTags.StudyInstanceUID === v1.StudyInstanceUID)!;
  const stored = await Promise.all((await orthanc.rest<Array<{ ID: string }>>(`/studies/${study.ID}/instances`))
    .map(async (i) => ({ ID: i.ID, tags: await orthanc.rest<Tags>(`/instances/${i.ID}/tags?simplify`) })));
  const srs = stored.filter((i) => i.tags.Modality === 'SR');
  expect(srs).toHaveLength(2);
  expect(new Set(srs.map((i) => i.tags.SeriesInstanceUID)).size).toBe(1); // one SR series per study
  const first = srs.find((i) => i.tags.SOPInstanceUID === srInstanceUid(v1.StudyInstanceUID, 1))!;
  const second = srs.find((i) => i.tags.SOPInstanceUID === srInstanceUid(v1.StudyInstanceUID, 2))!;
  expect([first.tags.InstanceNumber, second.tags.InstanceNumber]).toEqual(['1', '2']);
  expect([first.tags.CompletionFlag, second.tags.CompletionFlag]).toEqual(['PARTIAL', 'COMPLETE']);
  expect(first.tags.StudyDescription).toBe('MR BRAIN ^ | & / ~ <b>"q"');
  expect(first.tags.PredecessorDocumentsSequence).toBeUndefined();
  const firstFile = path.join(dataDir, 'sr-v1.dcm');
  writeFileSync(firstFile, Buffer.from(await (await fetch(`http://127.0.0.1:${orthanc.httpPort}/instances/${first.ID}/file`)).arrayBuffer()));
  const firstCheck = await checkSr(firstFile);
  expect(firstCheck.errors).toEqual([]);
  expect(firstCheck.dumpProblems).toEqual([]);
  expect(firstCheck.dump).toContain('Provisional result');
  const firstGroups = (first.tags.ContentSequence as Item[]).find((i) => meaning(i) === '126010')!.ContentSequence!;
  expect(firstGroups[0].ContentSequence!.find((i) => meaning(i) === 'DECISION')!.TextValue)
    .toBe('flagged: P 0.930 >= threshold 0.500; held: scored without DWI, it sets no priority until the result is final');
  const pred = (second.tags.PredecessorDocumentsSequence as Item[])[0];
  const ref = ((pred.ReferencedSeriesSequence as Item[])[0].ReferencedSOPSequence as Item[])[0];
  expect(ref).toMatchObject({ ReferencedSOPInstanceUID: first.tags.SOPInstanceUID, ReferencedSOPClassUID: COMPREHENSIVE_3D_SR });
  const file = path.join(dataDir, 'sr-v2.dcm');
  writeFileSync(file, Buffer.from(await (await fetch(`http://127.0.0.1:${orthanc.httpPort}/instances/${second.ID}/file`)).arrayBuffer()));
  const check = await checkSr(file);
  expect(check.errors).toEqual([]);
  expect(check.dumpProblems).toEqual([]);
  expect(check.dump).toContain('Predecessor Docs    : 1');
});

test('a final result with a located flag also stores its key slice as a Key Object Selection document', async () => {
  const outbound = mainOutbound();
  const base = makeResult('STAT', { resultVersion: 1 });
  const source = await storeMrInstance(redis, dataDir, { StudyInstanceUID: base.StudyInstanceUID, AccessionNumber: base.AccessionNumber });
  const location: FindingLocation = {
    method: 'occlusion', sequence: 'DWI', SeriesInstanceUID: source.SeriesInstanceUID, SOPInstanceUID: source.SOPInstanceUID,
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.4', ImageOrientationPatient: [1, 0, 0, 0, 1, 0], point: [4, 4], radiusPx: 2, radiusMm: 4,
    patientMm: [0, 0, 0], sliceIndex: 0, sliceCount: 1, scoreDrop: 0.1,
  };
  const result = { ...base, series: [{ SeriesInstanceUID: source.SeriesInstanceUID, sequence: 'DWI', used: true }], findings: [{ ...base.findings[0], location }, base.findings[1]] };
  await run('storescu', ['-aet', 'STORESCU', '-aec', orthanc.aet, '127.0.0.1', String(orthanc.dicomPort), source.file], {
    env: { ...process.env, TCP_NODELAY: '1' },
  });
  await writeResult(redis, result);
  await outbound.enqueue(result);
  expect(await finished(resultKey(result).jobId)).toBe('completed');

  const study = (await orthanc.rest<Array<{ ID: string; MainDicomTags: Tags }>>('/studies?expand')).find((s) => s.MainDicomTags.StudyInstanceUID === result.StudyInstanceUID)!;
  const stored = await Promise.all((await orthanc.rest<Array<{ ID: string }>>(`/studies/${study.ID}/instances`))
    .map(async (i) => ({ ID: i.ID, tags: await orthanc.rest<Tags>(`/instances/${i.ID}/tags?simplify`) })));
  expect(stored.map((i) => i.tags.Modality).sort()).toEqual(['KO', 'MR', 'SR']);
  const ko = stored.find((i) => i.tags.Modality === 'KO')!;
  expect(ko.tags).toMatchObject({ SOPClassUID: KEY_OBJECT_SELECTION, SOPInstanceUID: kosInstanceUid(result.StudyInstanceUID, 1), SeriesNumber: '9902', InstanceNumber: '1' });
  const image = (ko.tags.ContentSequence as Item[]).find((i) => i.ValueType === 'IMAGE')!;
  expect((image.ReferencedSOPSequence as Item[])[0]).toMatchObject({ ReferencedSOPInstanceUID: source.SOPInstanceUID });
  const file = path.join(dataDir, 'kos-from-orthanc.dcm');
  writeFileSync(file, Buffer.from(await (await fetch(`http://127.0.0.1:${orthanc.httpPort}/instances/${ko.ID}/file`)).arrayBuffer()));
  const check = await checkSr(file);
  expect(check.errors).toEqual([]);
  expect(check.dumpProblems).toEqual([]);
  expect(check.dump).toMatch(/^Key Object Selection Document/m);
});

test('a PACS that rejects our AE title: association rejected permanently, dead-lettered after one attempt', async () => {
  // Same Redis, same queue name: the correctly configured instance must not take this job.
  await outbound?.close();
  outbound = undefined;
  const other = createOutbound(
    loadOutboundConfig({ SR_TARGET: `WRONG_AE@127.0.0.1:${orthanc.dicomPort}`, OUTBOUND_ATTEMPTS: '3', OUTBOUND_BACKOFF_MS: '50' }),
    { redisUrl: redisServer.url, registry, logger: createLogger('outbound-test', 'silent'), dataDir, subscribe: false },
  );
  await other.start();
  try {
    const result = makeResult('URGENT', { StudyInstanceUID: testUid() });
    await storeMrInstance(redis, dataDir, { StudyInstanceUID: result.StudyInstanceUID });
    await writeResult(redis, result);
    await other.enqueue(result);
    const key = resultKey(result);
    expect(await finished(key.jobId, other)).toBe('failed');
    const dead = await other.deadLetterQueue('sr').getJob(key.jobId);
    expect(dead?.data).toMatchObject({ adapter: 'sr', reason: 'association-rejected', permanent: true, attemptsMade: 1 });
    // The error text names AE titles and codes, never the patient.
    expect(dead?.data.error).not.toMatch(/Synthetic|SYNTH-0001/);
  } finally {
    await other.close();
  }
});
