// C-STORE-RSP and C-ECHO-RSP written straight into a P-DATA-TF PDU (PS3.7 9.3, 9.1.5; PS3.8 9.3.5). dcmjs-dimse
// builds each response by naturalising and writing a dcmjs data set, which cost about as much CPU per instance as
// everything else the listener does; a response is seven fixed elements, so they are encoded here directly.

export interface ResponseFields {
  presentationContextId: number;
  /** 0x8001 C-STORE-RSP, 0x8030 C-ECHO-RSP. */
  CommandField: number;
  MessageIDBeingRespondedTo: number;
  Status: number;
  AffectedSOPClassUID: string;
  /** C-STORE-RSP only. */
  AffectedSOPInstanceUID?: string;
  /** Error Comment (0000,0902, LO): why a C-STORE failed, for the sender's log. */
  ErrorComment?: string;
}

const NO_DATA_SET = 0x0101;

/** A text element padded to even length: UI with NUL, LO with a space (PS3.5 6.2). */
function textElement(element: number, value: string, pad: '\0' | ' '): Buffer {
  const bytes = Buffer.from(value.length % 2 === 0 ? value : `${value}${pad}`, 'latin1');
  const head = Buffer.alloc(8);
  head.writeUInt16LE(0x0000, 0);
  head.writeUInt16LE(element, 2);
  head.writeUInt32LE(bytes.length, 4);
  return Buffer.concat([head, bytes]);
}

function usElement(element: number, value: number): Buffer {
  const b = Buffer.alloc(10);
  b.writeUInt16LE(0x0000, 0);
  b.writeUInt16LE(element, 2);
  b.writeUInt32LE(2, 4);
  b.writeUInt16LE(value & 0xffff, 8);
  return b;
}

/** The command set, implicit VR little endian, elements in ascending order, led by its group length. */
export function encodeResponseCommand(f: ResponseFields): Buffer {
  const elements = [
    textElement(0x0002, f.AffectedSOPClassUID, '\0'),
    usElement(0x0100, f.CommandField),
    usElement(0x0120, f.MessageIDBeingRespondedTo),
    usElement(0x0800, NO_DATA_SET),
    usElement(0x0900, f.Status),
  ];
  if (f.ErrorComment) elements.push(textElement(0x0902, f.ErrorComment.slice(0, 64).replace(/[^ -~]/g, '?'), ' '));
  if (f.AffectedSOPInstanceUID !== undefined) elements.push(textElement(0x1000, f.AffectedSOPInstanceUID, '\0'));
  const body = Buffer.concat(elements);
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt32LE(0x00000000, 0);
  groupLength.writeUInt32LE(4, 4);
  groupLength.writeUInt32LE(body.length, 8);
  return Buffer.concat([groupLength, body]);
}

/**
 * The response as P-DATA-TF PDUs: one PDU holding the whole command set in a single PDV (command, last fragment),
 * or, when the peer's Maximum Length Received (PS3.8 D.1) is smaller than that PDU's variable field, one PDU per
 * command fragment that fits it (the last one marked last). 0 means the peer set no limit.
 */
export function encodeResponsePdu(f: ResponseFields, peerMaxPduLength = 0): Buffer {
  const command = encodeResponseCommand(f);
  // A PDU's variable field is its PDV items: 4 bytes of item length, context ID, message control header, fragment.
  const room = peerMaxPduLength > 0 ? Math.max(1, peerMaxPduLength - 6) : command.length;
  const pdus: Buffer[] = [];
  for (let start = 0; start < command.length; start += room) {
    const fragment = command.subarray(start, start + room);
    const last = start + room >= command.length;
    const pdu = Buffer.alloc(12 + fragment.length);
    pdu[0] = 0x04;
    pdu[1] = 0x00;
    pdu.writeUInt32BE(6 + fragment.length, 2);
    pdu.writeUInt32BE(2 + fragment.length, 6);
    pdu[10] = f.presentationContextId;
    pdu[11] = last ? 0x03 : 0x01;
    fragment.copy(pdu, 12);
    pdus.push(pdu);
  }
  return pdus.length === 1 ? pdus[0] : Buffer.concat(pdus);
}
