// readCommandSet() against dcmjs-dimse's own encoder and reader: the same naturalised elements for the commands it
// takes, and undefined (the library then reads the PDU) for everything else.
import { Dataset, requests } from 'dcmjs-dimse';
import { readCommandSet } from './command-set';

/** A command set as a peer sends it: dcmjs-dimse's encoder, implicit VR little endian with the group length. */
function encoded(request: { getCommandDataset(): Dataset }): Buffer {
  return (request.getCommandDataset() as unknown as { getDenaturalizedCommandDataset(): Buffer }).getDenaturalizedCommandDataset();
}

/** What dcmjs-dimse reads from the same bytes (its own bookkeeping key left out). */
function libraryRead(bytes: Buffer): Record<string, unknown> {
  const { _vrMap: _ignored, ...elements } = new Dataset(bytes).getElements();
  return elements;
}

test.each([
  ['an even-length SOP Instance UID', '1.2.840.113619.2.55.3.604688119.971.1218529123.11'],
  ['an odd-length SOP Instance UID (NUL padded)', '1.2.3.4.5'],
])('a C-STORE-RQ with %s reads as dcmjs-dimse reads it', (_label, sop) => {
  const request = new requests.CStoreRequest(new Dataset({ SOPClassUID: '1.2.840.10008.5.1.4.1.1.4', SOPInstanceUID: sop }));
  request.setMessageId(4711);
  const bytes = encoded(request);
  const ours = readCommandSet(bytes);
  expect(ours).toEqual(libraryRead(bytes));
  expect(ours).toMatchObject({ CommandField: 0x0001, MessageID: 4711, AffectedSOPInstanceUID: sop, CommandDataSetType: 0x0202 });
});

test('a C-ECHO-RQ reads as dcmjs-dimse reads it', () => {
  const request = new requests.CEchoRequest();
  request.setMessageId(9);
  const bytes = encoded(request);
  expect(readCommandSet(bytes)).toEqual(libraryRead(bytes));
  expect(readCommandSet(bytes)).toMatchObject({ CommandField: 0x0030, CommandDataSetType: 0x0101 });
});

test('other commands, unknown elements and truncated sets are left to the library', () => {
  const find = new requests.CFindRequest();
  find.setMessageId(1);
  expect(readCommandSet(encoded(find))).toBeUndefined();

  const moved = new requests.CStoreRequest(new Dataset({ SOPClassUID: '1.2.840.10008.5.1.4.1.1.4', SOPInstanceUID: '1.2.3' }));
  moved.setMessageId(2);
  // dcmjs-dimse's typings take strings only; a US element holds a number.
  moved.getCommandDataset().setElement('MoveOriginatorMessageID', 5 as unknown as string);
  expect(readCommandSet(encoded(moved))).toBeUndefined();

  const store = new requests.CStoreRequest(new Dataset({ SOPClassUID: '1.2.840.10008.5.1.4.1.1.4', SOPInstanceUID: '1.2.3' }));
  store.setMessageId(3);
  const bytes = encoded(store);
  expect(readCommandSet(bytes)).toBeDefined();
  expect(readCommandSet(bytes.subarray(0, bytes.length - 3))).toBeUndefined();
});
