// PDU framing of one association's socket, in place of dcmjs-dimse's accumulator. That one buffers each PDU whole,
// whatever length its header claims (re-concatenating the buffer for every TCP chunk, quadratic in the PDU size),
// and answers any A-ASSOCIATE-RQ it meets; so a header claiming 0xFFFFFFFF bytes was waited for until the idle
// timeout, and a second A-ASSOCIATE-RQ inside an open association was accepted. PduGate checks each 6-byte PDU
// header (type, length) against PS3.8 9 and the state machine of PS3.8 9.2 (which PDU may come when) before any of
// its body is kept, reports the first violation so the caller can send A-ABORT and close the socket at once, and
// hands back complete PDUs, each as the list of its pieces: a view of the TCP chunk it lies in, or views of the
// chunks it spans, never one copied buffer. parsePDataTfPieces() reads the PDVs of a P-DATA-TF from such a list
// (parsePDataTf() from one buffer) without copying their values: a data set fragment reaches the spool as views of
// the socket's chunks.

/** PDU types (PS3.8 9.3.1). */
export const PduType = { AssociateRq: 0x01, AssociateAc: 0x02, AssociateRj: 0x03, PDataTf: 0x04, ReleaseRq: 0x05, ReleaseRp: 0x06, Abort: 0x07 } as const;

/** A-ABORT reasons when the service provider aborts (PS3.8 9.3.8). */
export const AbortReason = { NotSpecified: 0, UnrecognizedPdu: 1, UnexpectedPdu: 2, UnrecognizedPduParameter: 4, UnexpectedPduParameter: 5, InvalidPduParameterValue: 6 } as const;

export type ViolationLabel = 'pdu-too-long' | 'unexpected-pdu' | 'unknown-pdu' | 'invalid-pdu';

export interface Violation {
  label: ViolationLabel;
  reason: number;
  /** For the log: which PDU and why; no data from the stream beyond its type and length. */
  detail: string;
}

/**
 * Largest A-ASSOCIATE-RQ accepted. A request proposing all 128 presentation contexts with ten transfer syntaxes
 * each is under 40 KB.
 */
export const MAX_ASSOCIATE_RQ_LENGTH = 256 * 1024;

type Phase = 'awaiting-request' | 'negotiating' | 'associated' | 'releasing' | 'closing';

/** A-ABORT from the service provider (source 2) with the given reason. */
export function abortPdu(reason: number): Buffer {
  return Buffer.from([PduType.Abort, 0, 0, 0, 0, 4, 0, 0, 2, reason]);
}

/** What the association policy reads from an A-ASSOCIATE-RQ that dcmjs-dimse does not expose (PS3.8 9.3.2). */
export interface AssociateRqHeader {
  protocolVersion: number;
  /** The Application Context Item's name; '' when the request has none. */
  applicationContextName: string;
}

/** Protocol Version and Application Context Name of a whole A-ASSOCIATE-RQ PDU (header included). */
export function readAssociateRqHeader(pdu: Buffer): AssociateRqHeader {
  const protocolVersion = pdu.length >= 8 ? pdu.readUInt16BE(6) : 0;
  let applicationContextName = '';
  for (let o = 74; o + 4 <= pdu.length; ) {
    const length = pdu.readUInt16BE(o + 2);
    if (pdu[o] === 0x10) {
      applicationContextName = pdu.toString('latin1', o + 4, Math.min(pdu.length, o + 4 + length)).replace(/[\0 ]+$/, '');
      break;
    }
    o += 4 + length;
  }
  return { protocolVersion, applicationContextName };
}

/** One presentation data value, shaped as dcmjs-dimse's Pdv (which its P-DATA handling reads). */
export class Pdv {
  private value: Buffer | undefined;
  constructor(
    private readonly presentationContextId: number,
    private readonly control: number,
    /** The value as views of the PDU's pieces, in order (one, unless the PDV spans TCP chunks). */
    private readonly pieces: Buffer[],
  ) {}
  getPresentationContextId(): number {
    return this.presentationContextId;
  }
  /** The value as one buffer: a view when it lies in one piece, else a copy (made once). */
  getValue(): Buffer {
    this.value ??= this.pieces.length === 1 ? this.pieces[0] : Buffer.concat(this.pieces);
    return this.value;
  }
  /** The value as views, for consumers that take it piece by piece (the spool). */
  getValues(): Buffer[] {
    return this.pieces;
  }
  isCommand(): boolean {
    return (this.control & 0x01) !== 0;
  }
  isLastFragment(): boolean {
    return (this.control & 0x02) !== 0;
  }
}

/** The PDVs of a whole P-DATA-TF PDU (header included); undefined when an item's length does not fit (PS3.8 9.3.5). */
export function parsePDataTf(pdu: Buffer): Pdv[] | undefined {
  const pdvs: Pdv[] = [];
  for (let o = 6; o < pdu.length; ) {
    if (o + 6 > pdu.length) return undefined;
    const length = pdu.readUInt32BE(o);
    if (length < 2 || o + 4 + length > pdu.length) return undefined;
    pdvs.push(new Pdv(pdu[o + 4], pdu[o + 5], [pdu.subarray(o + 6, o + 4 + length)]));
    o += 4 + length;
  }
  return pdvs.length > 0 ? pdvs : undefined;
}

/** A PDU as PduGate.push() hands it back: its bytes in order, header first, as views of the socket's chunks. */
export type PduPieces = Buffer[];

/**
 * parsePDataTf() for a P-DATA-TF held as pieces. PDV item headers (6 bytes) that straddle pieces are gathered into
 * a small buffer; values stay views of the pieces.
 */
export function parsePDataTfPieces(pieces: PduPieces): Pdv[] | undefined {
  if (pieces.length === 1) return parsePDataTf(pieces[0]);
  let total = 0;
  for (const p of pieces) total += p.length;
  // Cursor over the pieces: piece index and offset inside it.
  let i = 0;
  let at = 0;
  const take = (n: number): Buffer[] => {
    const out: Buffer[] = [];
    while (n > 0) {
      const piece = pieces[i];
      const k = Math.min(n, piece.length - at);
      if (k > 0) out.push(piece.subarray(at, at + k));
      n -= k;
      at += k;
      if (at === piece.length) {
        i += 1;
        at = 0;
      }
    }
    return out;
  };
  take(6);
  const pdvs: Pdv[] = [];
  for (let o = 6; o < total; ) {
    if (o + 6 > total) return undefined;
    const head = take(6);
    const h = head.length === 1 ? head[0] : Buffer.concat(head);
    const length = h.readUInt32BE(0);
    if (length < 2 || o + 4 + length > total) return undefined;
    pdvs.push(new Pdv(h[4], h[5], take(length - 2)));
    o += 4 + length;
  }
  return pdvs.length > 0 ? pdvs : undefined;
}

export interface Framed {
  /** Complete PDUs, header included, in arrival order, each as its pieces (views of the chunks it came in). */
  pdus: PduPieces[];
  /** The first violation, after which nothing more is framed. */
  violation?: Violation;
}

export class PduGate {
  private phase: Phase = 'awaiting-request';
  /** Body bytes of the current PDU still to come. */
  private remaining = 0;
  private readonly head = Buffer.alloc(6);
  private headLen = 0;
  /** The current PDU's pieces so far (header first). */
  private parts: Buffer[] = [];

  constructor(
    /** The maximum P-DATA-TF length we announce in A-ASSOCIATE-AC (DICOM_MAX_PDU_LENGTH). */
    private readonly maxPDataLength: number,
  ) {}

  /** Our A-ASSOCIATE-AC went out: P-DATA, release and abort may follow. */
  accepted(): void {
    if (this.phase === 'negotiating') this.phase = 'associated';
  }

  /** Our A-ASSOCIATE-RJ or A-ABORT went out: anything more from the peer is a violation. */
  closing(): void {
    this.phase = 'closing';
  }

  /**
   * Frames the PDUs in `chunk` (with what came before), checking each header before its body is kept. Each PDU is
   * handed back as its pieces, never copied: one view when it lies in one chunk.
   */
  push(chunk: Buffer): Framed {
    const pdus: PduPieces[] = [];
    let pos = 0;
    while (pos < chunk.length && !this.violated) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - pos);
        this.parts.push(chunk.subarray(pos, pos + n));
        this.remaining -= n;
        pos += n;
        if (this.remaining === 0) pdus.push(this.complete());
        continue;
      }
      // The header: read in place, or gathered across chunks when it is split.
      let start = pos;
      if (this.headLen > 0 || chunk.length - pos < 6) {
        const n = Math.min(6 - this.headLen, chunk.length - pos);
        chunk.copy(this.head, this.headLen, pos, pos + n);
        this.headLen += n;
        pos += n;
        if (this.headLen < 6) break;
        this.headLen = 0;
        start = -1;
      }
      const header = start >= 0 ? chunk.subarray(start, start + 6) : this.head;
      const length = header.readUInt32BE(2);
      const violation = this.check(header[0], length);
      if (violation) {
        this.violated = true;
        this.phase = 'closing';
        return { pdus, violation };
      }
      if (start >= 0 && chunk.length - start >= 6 + length) {
        // The whole PDU is in this chunk: a view, no copy.
        pdus.push([chunk.subarray(start, start + 6 + length)]);
        pos = start + 6 + length;
        continue;
      }
      if (start >= 0) {
        this.parts = [chunk.subarray(start, start + 6)];
        pos = start + 6;
      } else {
        this.parts = [Buffer.from(this.head)];
      }
      this.remaining = length;
      if (length === 0) pdus.push(this.complete());
    }
    return { pdus };
  }

  private violated = false;

  private complete(): PduPieces {
    const parts = this.parts;
    this.parts = [];
    return parts;
  }

  private check(type: number, length: number): Violation | undefined {
    const name = `PDU type ${type} of ${length} bytes`;
    if (type < PduType.AssociateRq || type > PduType.Abort) {
      return { label: 'unknown-pdu', reason: AbortReason.UnrecognizedPdu, detail: `unknown ${name}` };
    }
    if (type === PduType.Abort) {
      return length === 4 ? undefined : { label: 'invalid-pdu', reason: AbortReason.InvalidPduParameterValue, detail: `A-ABORT length ${length}` };
    }
    switch (this.phase) {
      case 'awaiting-request':
        if (type !== PduType.AssociateRq) break;
        if (length > MAX_ASSOCIATE_RQ_LENGTH) {
          return { label: 'pdu-too-long', reason: AbortReason.InvalidPduParameterValue, detail: `A-ASSOCIATE-RQ claims ${length} bytes` };
        }
        // Shorter than its fixed fields (protocol version, AE titles, reserved: 68 bytes) is malformed, not long.
        if (length < 68) return { label: 'invalid-pdu', reason: AbortReason.InvalidPduParameterValue, detail: `A-ASSOCIATE-RQ of ${length} bytes, under its 68 fixed bytes` };
        this.phase = 'negotiating';
        return undefined;
      case 'associated':
        if (type === PduType.PDataTf) {
          if (length > this.maxPDataLength) {
            return { label: 'pdu-too-long', reason: AbortReason.InvalidPduParameterValue, detail: `P-DATA-TF claims ${length} bytes, more than the ${this.maxPDataLength} announced` };
          }
          // At least one PDV item: a 4-byte length, the context id and the message control header.
          if (length < 6) return { label: 'invalid-pdu', reason: AbortReason.InvalidPduParameterValue, detail: `P-DATA-TF of ${length} bytes` };
          return undefined;
        }
        if (type === PduType.ReleaseRq) {
          if (length !== 4) return { label: 'invalid-pdu', reason: AbortReason.InvalidPduParameterValue, detail: `A-RELEASE-RQ length ${length}` };
          this.phase = 'releasing';
          return undefined;
        }
        break;
      default:
        break;
    }
    return { label: 'unexpected-pdu', reason: AbortReason.UnexpectedPdu, detail: `${name} while ${this.phase}` };
  }
}
