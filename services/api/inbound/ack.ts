// ACK messages of the report feed (HL7 v2 original acknowledgment mode): AA after the durable write, AE or AR with
// the reason in MSA-3 and in an ERR segment (ERR-2 location, ERR-3 HL7 error code from table 0357, ERR-4 severity,
// ERR-8 the words). MSA-3 is deprecated since v2.4 but still what most RIS show an operator, so both carry it.
// Pure: the caller passes the time.
import { Hl7Segment, type Hl7Message } from '@medplum/core';
import { hl7Escape, hl7Segment } from '../../../shared/hl7-text';
import { hl7DateTime } from '../outbound/hl7/message';

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

/** MSH-11 values of HL7 table 0103 (and its mode, 0207): what the ACK repeats; anything else is answered as P. */
const PROCESSING_ID = /^[DPT](\^[AIRT]?)?$/;

/**
 * The ACK to a message we could parse: MSH mirrors its sender and receiver and its processing id (MSH-11: a test
 * system's T message is answered T, not P), MSA-2 is its MSH-10. MSH-7 is the time in UTC with its offset and
 * MSH-10 our own id for the ACK, as in every other message we write: the library's MSH-7 had no offset (a RIS
 * reads it as its local time) and dropped leading zeros of the milliseconds (.5 for 5 ms), and its MSH-10 was the
 * time in ms (two ACKs in one ms had the same id).
 */
export function ackFor(message: Hl7Message, code: AckCode, detail: AckDetail, opts: { now: number; ackControlId: string }): Buffer {
  const ack = message.buildAck({ ackCode: code });
  const msh = ack.getSegment('MSH');
  const processingId = message.header.getField(11)?.toString().trim().toUpperCase() ?? '';
  msh?.setField(7, hl7DateTime(opts.now));
  msh?.setField(10, hl7Escape(opts.ackControlId));
  msh?.setField(11, PROCESSING_ID.test(processingId) ? processingId : 'P');
  ack.getSegment('MSA')?.setField(3, hl7Escape(detail.text));
  const err = errSegment(code, detail);
  if (err) ack.segments.push(Hl7Segment.parse(err, ack.context));
  return Buffer.from(ack.toString(), 'utf8');
}

/**
 * The ACK to bytes that are not a parseable message: our own MSH, MSA-2 the control id when one could be read from
 * the header (so the sender can match the ACK), else empty.
 */
export function ackForUnparsed(code: AckCode, detail: AckDetail, opts: { controlId?: string; now: number; ackControlId: string }): Buffer {
  const segments = [
    hl7Segment('MSH', { 3: 'NEUROTRIAGE', 7: hl7DateTime(opts.now), 9: 'ACK', 10: hl7Escape(opts.ackControlId), 11: 'P', 12: '2.5.1' }),
    hl7Segment('MSA', { 1: code, 2: hl7Escape(opts.controlId ?? ''), 3: hl7Escape(detail.text) }),
  ];
  const err = errSegment(code, detail);
  if (err) segments.push(err);
  return Buffer.from(segments.join('\r'), 'utf8');
}

/** Best effort: MSH-10 from the first bytes of something that may not parse (for an oversize or broken message). */
export function controlIdOf(bytes: Buffer): string | undefined {
  const head = bytes.subarray(0, 2048).toString('latin1');
  if (!head.startsWith('MSH') || head.length < 8) return undefined;
  const fields = head.split(/[\r\n]/, 1)[0].split(head.charAt(3));
  const id = (fields[9] ?? '').trim();
  return id && id.length <= 199 ? id : undefined;
}

