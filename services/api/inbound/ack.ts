// ACK messages of the report feed (HL7 v2 original acknowledgment mode): AA after the durable write, AE or AR with
// the reason in MSA-3 and in an ERR segment (ERR-2 location, ERR-3 HL7 error code from table 0357, ERR-4 severity,
// ERR-8 the words). MSA-3 is deprecated since v2.4 but still what most RIS show an operator, so both carry it.
// Pure: the caller passes the time.
import { Hl7Segment, type Hl7Message } from '@medplum/core';
import { hl7Escape, hl7Segment, singleByteOf } from '../../../shared/hl7-text';
import { hl7DateTime } from '../outbound/hl7/message';
import { charsetOf, type MessageEncoding } from './oru';

export type AckCode = 'AA' | 'AE' | 'AR';

export interface AckDetail {
  /** MSA-3 and ERR-8; our words only. */
  text: string;
  /** ERR-3: HL7 table 0357 code, e.g. 101 (required field missing), 207 (application internal error). */
  errorCode?: string;
  /** ERR-2 (ERL): segment^sequence^field, e.g. OBR^1^25. */
  location?: string;
}

const ERROR_TEXT: Record<string, string> = {
  '100': 'Segment sequence error', '101': 'Required field missing', '102': 'Data type error', '103': 'Table value not found',
  '200': 'Unsupported message type', '201': 'Unsupported event code', '203': 'Unsupported version id', '207': 'Application internal error',
};

function errSegment(code: AckCode, detail: AckDetail): string | null {
  if (code === 'AA' || !detail.errorCode) return null;
  return hl7Segment('ERR', {
    2: detail.location ?? '', 3: `${detail.errorCode}^${ERROR_TEXT[detail.errorCode] ?? ''}^HL70357`, 4: 'E', 8: hl7Escape(detail.text),
  });
}

/**
 * The ACK's text as bytes in the encoding the message was read with. Every character can be written: the ACK holds
 * our words (ASCII) and fields of the message itself (read in that encoding, with the same table: 8859/1's quotes
 * and dashes, read as windows-1252, go back as the bytes they came as); '?' stands in for any other.
 */
function encode(text: string, encoding: MessageEncoding): Buffer {
  if (encoding === 'utf8') return Buffer.from(text, 'utf8');
  const out = Buffer.alloc(text.length);
  let n = 0;
  for (const ch of text) out[n++] = singleByteOf(ch, encoding) ?? 0x3f;
  return out.subarray(0, n);
}

/** MSH-11 values of HL7 table 0103 (and its mode, 0207): what the ACK repeats; anything else is answered as P. */
const PROCESSING_ID = /^[DPT](\^[AIRT]?)?$/;

/**
 * The ACK to a message we could parse: MSH mirrors its sender and receiver and its processing id (MSH-11: a test
 * system's T message is answered T, not P), MSA-2 is its MSH-10. MSH-7 is the time in UTC with its offset and
 * MSH-10 our own id for the ACK, as in every other message we write: the library's MSH-7 had no offset (a RIS
 * reads it as its local time) and dropped leading zeros of the milliseconds (.5 for 5 ms), and its MSH-10 was the
 * time in ms (two ACKs in one ms had the same id). When the message names its character set (MSH-18), the ACK is
 * written in it and names it too (the library's ACK named none and was always UTF-8); with none named, neither
 * does the ACK (HL7's default) and it is UTF-8, as the message was read.
 */
export function ackFor(message: Hl7Message, code: AckCode, detail: AckDetail, opts: { now: number; ackControlId: string }): Buffer {
  const ack = message.buildAck({ ackCode: code });
  const msh = ack.getSegment('MSH');
  const processingId = message.header.getField(11)?.toString().trim().toUpperCase() ?? '';
  msh?.setField(7, hl7DateTime(opts.now));
  msh?.setField(10, hl7Escape(opts.ackControlId));
  msh?.setField(11, PROCESSING_ID.test(processingId) ? processingId : 'P');
  ack.getSegment('MSA')?.setField(3, hl7Escape(detail.text));
  // The first repetition only: the ACK switches to no alternate character set.
  const charset = charsetOf(message.header.getComponent(18, 1));
  if (charset?.name) msh?.setField(18, charset.name);
  const err = errSegment(code, detail);
  if (err) ack.segments.push(Hl7Segment.parse(err, ack.context));
  return encode(ack.toString(), charset?.encoding ?? 'utf8');
}

/**
 * The ACK to bytes that are not a parseable message: our own MSH, MSA-2 the control id when one could be read from
 * the header (so the sender can match the ACK), else empty. The control id is the sender's bytes (controlIdOf),
 * written as they came; everything else in this ACK is ASCII, so it reads the same in any character set.
 */
export function ackForUnparsed(code: AckCode, detail: AckDetail, opts: { controlId?: Buffer; now: number; ackControlId: string }): Buffer {
  const msh = hl7Segment('MSH', { 3: 'NEUROTRIAGE', 7: hl7DateTime(opts.now), 9: 'ACK', 10: hl7Escape(opts.ackControlId), 11: 'P', 12: '2.5.1' });
  const err = errSegment(code, detail);
  return Buffer.concat([
    Buffer.from(`${msh}\rMSA|${code}|`, 'utf8'),
    opts.controlId ?? Buffer.alloc(0),
    Buffer.from(`|${hl7Escape(detail.text)}${err ? `\r${err}` : ''}`, 'utf8'),
  ]);
}

/**
 * Best effort: MSH-10 from the first bytes of something that may not parse (an oversize or broken message), as the
 * sender's own bytes, so MSA-2 matches what it sent byte for byte whatever the character set (the message may not
 * even be valid in the one it names, or name none we read). Read as ISO 8859-1, one character per byte, so slicing
 * keeps every byte; only ASCII blanks are trimmed (a trim of that text would also take 0xA0, the last byte of a
 * UTF-8 letter such as à). With the default delimiters the field is repeated as written, its escape sequences
 * included; with others, ours are escaped in it.
 */
export function controlIdOf(bytes: Buffer): Buffer | undefined {
  const head = bytes.subarray(0, 2048).toString('latin1');
  if (!head.startsWith('MSH') || head.length < 8) return undefined;
  const fields = head.split(/[\r\n]/, 1)[0].split(head.charAt(3));
  const id = (fields[9] ?? '').replace(/^[ \t]+|[ \t]+$/g, '');
  if (!id || id.length > 199) return undefined;
  return Buffer.from(head.startsWith('MSH|^~\\&') ? id : hl7Escape(id), 'latin1');
}
