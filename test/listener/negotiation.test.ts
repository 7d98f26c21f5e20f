// Association negotiation and DIMSE edge cases a conformance tester or an odd device brings, with raw DICOM Upper
// Layer bytes (tools/fuzz/dul-client.ts): a Protocol Version without bit 0, a foreign application context, SCP/SCU
// role selection, and a C-STORE whose SOP class is not the one its presentation context was negotiated for.
import path from 'node:path';
import { readFileSync, rmSync } from 'node:fs';
import { DulClient, associateRequestPdu, type ProposedContext } from '../../tools/fuzz/dul-client';
import { splitPart10 } from '../../tools/fuzz/corpus';
import { readRefusals } from '../../shared/refusals';
import { MR_IMAGE_STORAGE, EXPLICIT_VR_LE, newUid, writeMrInstance } from '../helpers/dcmtk';
import { CALLED_AE, CALLING_AE, listFiles, metricsText, startHarness, tempDir, type Harness } from './harness';

const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const VERIFICATION: ProposedContext = { id: 1, abstractSyntaxUID: '1.2.840.10008.1.1', transferSyntaxUIDs: [EXPLICIT_VR_LE] };
const MR: ProposedContext = { id: 3, abstractSyntaxUID: MR_IMAGE_STORAGE, transferSyntaxUIDs: [EXPLICIT_VR_LE] };
/** Another storage class: accepted and ignored by default. */
const CT: ProposedContext = { id: 5, abstractSyntaxUID: CT_IMAGE_STORAGE, transferSyntaxUIDs: [EXPLICIT_VR_LE] };

let h: Harness;
let files: string;
beforeAll(async () => {
  files = tempDir('nt-negotiation-');
  h = await startHarness();
});
afterAll(async () => {
  await h.stop();
  rmSync(files, { recursive: true, force: true });
});

/** Sends an A-ASSOCIATE-RQ as given and returns the listener's first PDU. */
async function answer(rq: Buffer): Promise<{ type: number; body: Buffer } | undefined> {
  const client = new DulClient('127.0.0.1', h.ae.port);
  await client.connected;
  client.write(rq);
  const reply = await client.nextPdu(5000);
  client.destroy();
  return reply;
}

/** The A-ASSOCIATE-RQ with an SCP/SCU Role Selection sub-item (SCU and SCP roles proposed) for `sopClassUID`. */
function withRoleSelection(rq: Buffer, sopClassUID: string): Buffer {
  const uid = Buffer.from(sopClassUID, 'latin1');
  const role = Buffer.concat([Buffer.from([0x54, 0, 0, uid.length + 4, 0, uid.length]), uid, Buffer.from([1, 1])]);
  // The User Information item is the last item associateRequestPdu() writes.
  const user = rq.lastIndexOf(Buffer.from([0x50, 0x00]));
  const out = Buffer.concat([rq, role]);
  out.writeUInt16BE(out.readUInt16BE(user + 2) + role.length, user + 2);
  out.writeUInt32BE(out.length - 6, 2);
  return out;
}

/** An MR instance's data set, its SOP Class UID changed to `sopClassUID` (same length) when given. */
function dataset(sopClassUID?: string, study = newUid()): { study: string; series: string; sop: string; bytes: Buffer } {
  const file = path.join(files, `${newUid()}.dcm`);
  const series = newUid();
  const sop = writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: series });
  const bytes = splitPart10(readFileSync(file)).dataset;
  if (sopClassUID) {
    const at = bytes.indexOf(Buffer.from(MR_IMAGE_STORAGE, 'latin1'));
    bytes.write(sopClassUID, at, 'latin1');
  }
  return { study, series, sop, bytes };
}

test('a Protocol Version without bit 0 gets A-ASSOCIATE-RJ 1/2/2; one with more bits set is accepted', async () => {
  const rq = associateRequestPdu(CALLING_AE, CALLED_AE, [VERIFICATION]);
  rq.writeUInt16BE(2, 6);
  const rejected = await answer(rq);
  expect(rejected?.type).toBe(0x03);
  expect([...(rejected?.body.subarray(1, 4) ?? [])]).toEqual([1, 2, 2]);
  rq.writeUInt16BE(3, 6);
  expect((await answer(rq))?.type).toBe(0x02);
});

test('an application context other than DICOM\'s gets A-ASSOCIATE-RJ 1/1/2 (application-context-name-not-supported)', async () => {
  const rq = associateRequestPdu(CALLING_AE, CALLED_AE, [VERIFICATION]);
  const at = rq.indexOf(Buffer.from('1.2.840.10008.3.1.1.1', 'latin1'));
  rq.write('9', at + 20, 'latin1');
  const rejected = await answer(rq);
  expect(rejected?.type).toBe(0x03);
  expect([...(rejected?.body.subarray(1, 4) ?? [])]).toEqual([1, 1, 2]);
});

test('a Maximum Length Received of 1-6 gets A-ASSOCIATE-RJ 1/1/1, logged and counted; 0 (no limit) and 7 are served', async () => {
  for (const maxLength of [1, 6]) {
    expect(await new DulClient('127.0.0.1', h.ae.port).associate(CALLING_AE, CALLED_AE, [VERIFICATION], maxLength)).toEqual({ kind: 'rejected', result: 1, source: 1, reason: 1 });
  }
  const rejected = h.logLines.filter((l) => l.includes('"msg":"association rejected"') && l.includes('"reason":"max-length-too-small"'));
  expect(rejected.map((l) => (JSON.parse(l) as { maxLengthReceived: number }).maxLengthReceived)).toEqual([1, 6]);
  expect(await metricsText(h.listener.metricsPort)).toMatch(/neurotriage_listener_associations_total\{result="rejected",reason="max-length-too-small"\} 2/);
  for (const maxLength of [0, 7]) {
    const client = new DulClient('127.0.0.1', h.ae.port);
    expect((await client.associate(CALLING_AE, CALLED_AE, [VERIFICATION], maxLength)).kind).toBe('accepted');
    // With 7, the response comes one byte per P-DATA-TF, each within the 7 announced (DulClient checks).
    expect((await client.echo(VERIFICATION.id)).status).toBe(0);
    if (maxLength === 7) expect(client.responsePdus).toBeGreaterThan(50);
    expect(await client.release()).toBe(true);
  }
});

test('SCP/SCU role selection is not answered: the A-ASSOCIATE-AC holds no role item, so the default roles hold', async () => {
  const accepted = await answer(withRoleSelection(associateRequestPdu(CALLING_AE, CALLED_AE, [VERIFICATION, MR]), MR_IMAGE_STORAGE));
  expect(accepted?.type).toBe(0x02);
  const body = accepted?.body ?? Buffer.alloc(0);
  const user = body.lastIndexOf(Buffer.from([0x50, 0x00]));
  const subItems: number[] = [];
  for (let o = user + 4; o + 4 <= body.length; o += 4 + body.readUInt16BE(o + 2)) subItems.push(body[o]);
  expect(subItems).toContain(0x51);
  expect(subItems).not.toContain(0x54);
});

test('a C-STORE whose SOP class is not its presentation context\'s gets 0122 and nothing is stored; the association carries on', async () => {
  const client = new DulClient('127.0.0.1', h.ae.port);
  expect((await client.associate(CALLING_AE, CALLED_AE, [VERIFICATION, MR, CT])).kind).toBe('accepted');
  // A CT image on the MR context would have been stored and scored as MR.
  const ct = dataset(CT_IMAGE_STORAGE);
  const onMr = await client.store(MR.id, CT_IMAGE_STORAGE, ct.sop, ct.bytes);
  expect(onMr.status).toBe(0x0122);
  expect(onMr.errorComment).toMatch(/abstract syntax/);
  // An MR image on an ignored class's context would have been acknowledged and dropped.
  const mr = dataset();
  expect((await client.store(CT.id, MR_IMAGE_STORAGE, mr.sop, mr.bytes)).status).toBe(0x0122);
  expect(listFiles(path.join(h.dataDir, 'store'))).toEqual([]);
  // The same MR image on its own context is stored.
  expect((await client.store(MR.id, MR_IMAGE_STORAGE, mr.sop, mr.bytes)).status).toBe(0);
  expect((await client.echo(VERIFICATION.id)).status).toBe(0);
  expect(await client.release()).toBe(true);
});

test('a 0122 refusal is recorded for the study\'s result under the study and series its data set names, once per instance', async () => {
  const client = new DulClient('127.0.0.1', h.ae.port);
  expect((await client.associate(CALLING_AE, CALLED_AE, [VERIFICATION, MR, CT])).kind).toBe('accepted');
  const study = newUid();
  // A CT image on the MR context (walked as every instance there is), sent twice: counted once.
  const ct = dataset(CT_IMAGE_STORAGE, study);
  expect((await client.store(MR.id, CT_IMAGE_STORAGE, ct.sop, ct.bytes)).status).toBe(0x0122);
  expect((await client.store(MR.id, CT_IMAGE_STORAGE, ct.sop, ct.bytes)).status).toBe(0x0122);
  // An MR image on the ignored CT context: its bytes are not kept, but walked for its UIDs.
  const mr = dataset(undefined, study);
  expect((await client.store(CT.id, MR_IMAGE_STORAGE, mr.sop, mr.bytes)).status).toBe(0x0122);
  expect(await client.release()).toBe(true);
  const expected = [
    { SeriesInstanceUID: ct.series, refusal: 'sop-class-not-on-context', status: '0122', images: 1 },
    { SeriesInstanceUID: mr.series, refusal: 'sop-class-not-on-context', status: '0122', images: 1 },
  ].sort((a, b) => a.SeriesInstanceUID.localeCompare(b.SeriesInstanceUID));
  expect(await readRefusals(h.client, study)).toEqual(expected);
  const failures = h.logLines.filter((l) => l.includes('"msg":"C-STORE failed"') && l.includes('"status":"0x0122"') && (l.includes(ct.series) || l.includes(mr.series)));
  expect(failures.filter((l) => l.includes('"refusalRecord":"counted"'))).toHaveLength(2);
  expect(failures.filter((l) => l.includes('"refusalRecord":"counted-before"'))).toHaveLength(1);
  // Nothing of them was stored.
  expect(listFiles(path.join(h.dataDir, 'store', study))).toEqual([]);
});
