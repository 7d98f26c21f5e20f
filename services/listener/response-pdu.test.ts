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
