// Association negotiation edge cases a conformance tester or an odd device brings, with raw DICOM Upper Layer bytes
// (tools/fuzz/dul-client.ts): a Protocol Version without bit 0, a foreign application context, SCP/SCU role selection.
import { DulClient, associateRequestPdu, type ProposedContext } from '../../tools/fuzz/dul-client';
import { MR_IMAGE_STORAGE, EXPLICIT_VR_LE } from '../helpers/dcmtk';
import { CALLED_AE, CALLING_AE, startHarness, type Harness } from './harness';

const VERIFICATION: ProposedContext = { id: 1, abstractSyntaxUID: '1.2.840.10008.1.1', transferSyntaxUIDs: [EXPLICIT_VR_LE] };
const MR: ProposedContext = { id: 3, abstractSyntaxUID: MR_IMAGE_STORAGE, transferSyntaxUIDs: [EXPLICIT_VR_LE] };

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.stop());

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
