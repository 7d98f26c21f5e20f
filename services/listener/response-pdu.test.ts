import { Dataset } from 'dcmjs-dimse';
import { encodeResponseCommand, encodeResponsePdu } from './response-pdu';

const fields = {
  presentationContextId: 7,
  CommandField: 0x8001,
  MessageIDBeingRespondedTo: 42,
  Status: 0xa700,
  AffectedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
  AffectedSOPInstanceUID: '1.2.3.45',
};

test('the C-STORE-RSP command set reads back with dcmjs-dimse (a reference decoder)', () => {
  const command = new Dataset(encodeResponseCommand(fields), '1.2.840.10008.1.2');
  expect(command.getElements()).toMatchObject({
    CommandField: 0x8001,
    MessageIDBeingRespondedTo: 42,
    CommandDataSetType: 0x0101,
    Status: 0xa700,
    AffectedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
    AffectedSOPInstanceUID: '1.2.3.45',
  });
  expect(command.getElement('CommandGroupLength')).toBe(encodeResponseCommand(fields).length - 12);
});

test('the PDU is one P-DATA-TF with one last-fragment command PDV on the right context', () => {
  const pdu = encodeResponsePdu(fields);
  expect(pdu[0]).toBe(0x04);
  expect(pdu.readUInt32BE(2)).toBe(pdu.length - 6);
  expect(pdu.readUInt32BE(6)).toBe(pdu.length - 10);
  expect(pdu[10]).toBe(7);
  expect(pdu[11]).toBe(0x03);
  expect(pdu.subarray(12).equals(encodeResponseCommand(fields))).toBe(true);
});

test('a peer whose maximum PDU length is smaller gets the command in fragments, each PDU within it, the last marked last', () => {
  const whole = encodeResponseCommand({ ...fields, ErrorComment: 'Instance refused: its data set could not be read' });
  const bytes = encodeResponsePdu({ ...fields, ErrorComment: 'Instance refused: its data set could not be read' }, 40);
  const fragments: Buffer[] = [];
  const controls: number[] = [];
  for (let o = 0; o < bytes.length; ) {
    expect(bytes[o]).toBe(0x04);
    const length = bytes.readUInt32BE(o + 2);
    expect(length).toBeLessThanOrEqual(40);
    expect(bytes.readUInt32BE(o + 6)).toBe(length - 4);
    expect(bytes[o + 10]).toBe(7);
    controls.push(bytes[o + 11]);
    fragments.push(bytes.subarray(o + 12, o + 6 + length));
    o += 6 + length;
  }
  expect(Buffer.concat(fragments).equals(whole)).toBe(true);
  expect(controls.slice(0, -1).every((c) => c === 0x01)).toBe(true);
  expect(controls.at(-1)).toBe(0x03);
  expect(encodeResponsePdu(fields, 0).equals(encodeResponsePdu(fields))).toBe(true);
  expect(encodeResponsePdu(fields, 65536).equals(encodeResponsePdu(fields))).toBe(true);
});
