// HL7 v2 batches in one MLLP frame (v2.5.1 chapter 2, batch protocol: [FHS] { [BHS] { MSH ... } [BTS] } [FTS]):
// the messages a batch carries, each as the sender's own bytes (read exactly as a message in a frame of its own
// would be), and the batch of ACKs that answers them. Pure: no I/O, no clock.
// Written here: @medplum/core 4.5.2 has nothing for batches (Hl7Message.parse refuses text that does not begin
// MSH, and nothing reads or writes FHS, BHS, BTS or FTS), and @medplum/hl7's connection hands over one message.
// The envelope is read on bytes, one character per byte (ISO 8859-1), so each message keeps its own character set
// (its MSH-18) and the batch header fields mirrored into the ACK batch go back byte for byte as the sender wrote them.

/** A header (FHS, BHS) or trailer (BTS, FTS) as written: field n is fields[n] (fields[1] the field separator). */
export type EnvelopeFields = readonly string[];

export interface Batch {
  /** The BHS; null for messages in a file (FHS) with no BHS of their own, which HL7 allows. */
  header: EnvelopeFields | null;
  /** Each message, MSH to its last segment, as the sender's bytes (its line breaks included). */
  messages: Buffer[];
  /** BTS-1 as written (trimmed); null with no BTS or an empty BTS-1. */
  declaredCount: string | null;
}

export interface BatchFrame {
  /** The FHS when the frame had one: the ACK batch is then wrapped in FHS ... FTS too. */
  file: EnvelopeFields | null;
  /** FTS-1 as written (trimmed); null with no FTS or an empty FTS-1. */
  declaredBatches: string | null;
  batches: Batch[];
  /** Messages in all batches. */
  messageCount: number;
}

/** The frame is not a batch we can split (refused whole, AR); words that never quote the message. */
export class BatchProblem extends Error {
  override name = 'BatchProblem';
  constructor(
    readonly detail: string,
    /** ERR-2: the segment id, e.g. BHS, BTS. */
    readonly location: string,
  ) {
    super(detail);
  }
}

const ENVELOPE = new Set(['FHS', 'BHS', 'BTS', 'FTS', 'MSH']);

/** A frame that begins with a file or batch header. */
export function isBatch(bytes: Buffer): boolean {
  const id = bytes.subarray(0, 3).toString('latin1');
  return id === 'FHS' || id === 'BHS';
}

/**
 * An MSH with delimiters of its own: HL7 lets each message name them (MSH-1, MSH-2), whatever the batch's. "MSH", a
 * field separator, 3 to 5 encoding characters (v2.7 adds a fifth), the separator again. Read as text of the message
 * before, such a message (its PID included) was stored inside that one's report and never answered; now it begins
 * a message of its own, answered AR bad-msh alone. Prose ("MSH: ...") does not match.
 */
const MSH_OWN_DELIMITERS = /^MSH([^A-Za-z0-9\s])[^A-Za-z0-9\s]{3,5}\1/;

/** The segment id of a line that begins an envelope segment or a message ("BTS" alone counts), else null. */
function envelopeId(line: string): string | null {
  const id = line.slice(0, 3);
  if (!ENVELOPE.has(id)) return null;
  if (line.length === 3 || line.charAt(3) === '|') return id;
  return id === 'MSH' && MSH_OWN_DELIMITERS.test(line) ? id : null;
}

/** A line that begins a message: MSH with the standard field separator, or with delimiters of its own. */
export function beginsMessage(line: string): boolean {
  return envelopeId(line) === 'MSH';
}

/** Fields of FHS/BHS (field 1 the separator, field 2 the encoding characters) or of BTS/FTS (field 1 first). */
function fieldsOf(line: string, header: boolean): EnvelopeFields {
  const parts = line.split('|');
  return header ? [parts[0], '|', ...parts.slice(1)] : parts;
}

function safe(value: string): string {
  return value.replace(/[^A-Za-z0-9 ._-]/g, '?').slice(0, 20);
}

/**
 * Splits a frame that isBatch() into its batches and messages. Segments end with CR, CR LF or LF, as in a
 * message; a line that begins no segment of the envelope and no MSH belongs to the message before it (its other
 * segments, or a raw line break in its text, as oru.ts joinSegments reads it). Throws BatchProblem for an
 * envelope that cannot be read: headers without the standard delimiters, FHS not first, a BTS with no batch open,
 * FTS without FHS, anything after FTS, a segment outside any message.
 */
export function splitBatch(bytes: Buffer): BatchFrame {
  const text = bytes.toString('latin1');
  let file: EnvelopeFields | null = null;
  let declaredBatches: string | null = null;
  let ended = false;
  const batches: Batch[] = [];
  let open: Batch | null = null;
  let msgStart = -1;
  let msgEnd = -1;
  let first = true;
  const closeMessage = (): void => {
    if (msgStart >= 0 && open) open.messages.push(bytes.subarray(msgStart, msgEnd));
    msgStart = -1;
  };
  const lineBreak = /\r\n|\r|\n/g;
  let at = 0;
  while (at <= text.length) {
    lineBreak.lastIndex = at;
    const m = lineBreak.exec(text);
    const end = m ? m.index : text.length;
    const line = text.slice(at, end);
    const start = at;
    at = m ? m.index + m[0].length : text.length + 1;
    if (line === '') continue;
    if (ended) throw new BatchProblem('a segment follows FTS, the end of the file', 'FTS');
    const id = envelopeId(line);
    if (id === 'FHS' || id === 'BHS') {
      if (!line.startsWith(`${id}|^~\\&`)) throw new BatchProblem(`${id} must begin "${id}|^~\\&" (the standard delimiters)`, id);
      if (id === 'FHS' && !first) throw new BatchProblem('FHS is not the first segment of the frame', 'FHS');
    }
    first = false;
    switch (id) {
      case 'FHS':
        file = fieldsOf(line, true);
        break;
      case 'BHS':
        closeMessage();
        open = { header: fieldsOf(line, true), messages: [], declaredCount: null };
        batches.push(open);
        break;
      case 'MSH':
        closeMessage();
        if (!open) {
          // Messages in a file with no BHS, or after a BTS: a batch without a header of its own.
          open = { header: null, messages: [], declaredCount: null };
          batches.push(open);
        }
        msgStart = start;
        msgEnd = end;
        break;
      case 'BTS': {
        closeMessage();
        if (!open) throw new BatchProblem('BTS ends no batch (no BHS or MSH before it since the last BTS)', 'BTS');
        open.declaredCount = declaredCount(line);
        open = null;
        break;
      }
      case 'FTS': {
        closeMessage();
        if (!file) throw new BatchProblem('FTS without FHS', 'FTS');
        declaredBatches = declaredCount(line);
        open = null;
        ended = true;
        break;
      }
      default:
        if (msgStart < 0) throw new BatchProblem(`segment ${safe(line.slice(0, 3))} outside any message (messages begin MSH)`, safe(line.slice(0, 3)));
        msgEnd = end;
    }
  }
  closeMessage();
  return { file, declaredBatches, batches, messageCount: batches.reduce((n, b) => n + b.messages.length, 0) };
}

/** A trailer's count (BTS-1, FTS-1) as written, trimmed; null when empty. */
function declaredCount(trailer: string): string | null {
  const count = (fieldsOf(trailer, false)[1] ?? '').trim();
  return count === '' ? null : count;
}

/** MSH lines in a frame: a quick count, for a time limit set before the frame is read. */
export function countMessages(bytes: Buffer): number {
  return bytes.toString('latin1').split(/\r\n|\r|\n/).filter(beginsMessage).length;
}

/** HL7 batch control id of the frame (the first BHS-11, else FHS-11), as the sender's bytes; for a refusal's MSA-2. */
export function batchControlIdOf(bytes: Buffer): Buffer | undefined {
  const text = bytes.subarray(0, 4096).toString('latin1');
  const ids = new Map<string, string>();
  for (const line of text.split(/\r\n|\r|\n/, 3)) {
    const header = /^(FHS|BHS)\|\^~\\&/.exec(line)?.[1];
    if (!header || ids.has(header)) continue;
    const id = (fieldsOf(line, true)[11] ?? '').replace(/^[ \t]+|[ \t]+$/g, '');
    if (id && id.length <= 199) ids.set(header, id);
  }
  // The FHS comes first in the frame, but the batch's own id is the one to name.
  const id = ids.get('BHS') ?? ids.get('FHS');
  return id === undefined ? undefined : Buffer.from(id, 'latin1');
}

/** Whether a declared count (BTS-1, FTS-1) disagrees with what came; none declared never does. */
export function countDisagrees(declared: string | null, actual: number): boolean {
  return declared !== null && !(/^\d+$/.test(declared) && Number(declared) === actual);
}

/**
 * The header of an answering batch: sending and receiving application and facility swapped (as an ACK's MSH
 * mirrors the message's), the creation time ours, field 11 (control id) the received one as agreed for this
 * interface, and field 12 (reference control id) the received one as well, where HL7 says an answering batch
 * echoes it. Fields are the sender's text, written back unchanged.
 */
function answeringHeader(id: 'FHS' | 'BHS', received: EnvelopeFields | null, time: string): string {
  const f = (n: number): string => received?.[n] ?? '';
  const controlId = received ? f(11) : '';
  return [`${id}|^~\\&`, f(5), f(6), f(3), f(4), time, '', '', '', controlId, controlId].join('|').replace(/\|+$/, '');
}

/**
 * The batch of ACKs for a frame: per received batch a BHS, its messages' ACKs in order (each exactly as a single
 * message's ACK, in its own character set) and BTS-1 the number of ACKs; wrapped in FHS ... FTS (FTS-1 the number
 * of batches) when the frame had FHS. A batch without a BHS of its own (in a file) is answered with a BHS from the
 * FHS. `time` is an HL7 date/time for FHS-7 and BHS-7.
 */
export function batchAck(frame: BatchFrame, acks: Buffer[][], time: string): Buffer {
  const parts: Buffer[] = [];
  const segment = (s: string) => parts.push(Buffer.from(s, 'latin1'));
  if (frame.file) segment(answeringHeader('FHS', frame.file, time));
  frame.batches.forEach((batch, i) => {
    segment(answeringHeader('BHS', batch.header ?? (frame.file ? [...frame.file.slice(0, 11)] : null), time));
    for (const ack of acks[i] ?? []) parts.push(ack);
    segment(`BTS|${acks[i]?.length ?? 0}`);
  });
  if (frame.file) segment(`FTS|${frame.batches.length}`);
  const out: Buffer[] = [];
  parts.forEach((p, i) => {
    if (i > 0) out.push(Buffer.from('\r'));
    out.push(p);
  });
  return Buffer.concat(out);
}
