// The PDU framing rules of one association's socket, checked on the raw bytes before dcmjs-dimse sees them.
// dcmjs-dimse buffers each PDU whole, whatever length its header claims, and answers any A-ASSOCIATE-RQ it meets;
// so a header claiming 0xFFFFFFFF bytes would be waited for until the idle timeout, and a second A-ASSOCIATE-RQ
// inside an open association would be accepted. PduGate reads only the 6-byte PDU headers (type, length) as the
// stream passes and reports the first violation of PS3.8 9 (PDU types and lengths) and of the state machine
// (PS3.8 9.2, which PDU may come when), so the caller can send A-ABORT and close the socket at once.

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

export class PduGate {
  private phase: Phase = 'awaiting-request';
  /** Body bytes of the current PDU still to pass. */
  private remaining = 0;
  private readonly head = Buffer.alloc(6);
  private headLen = 0;

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

  /** Checks every PDU header that starts in `chunk`; undefined when the chunk may go on to dcmjs-dimse. */
  inspect(chunk: Buffer): Violation | undefined {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - pos);
        this.remaining -= n;
        pos += n;
        continue;
      }
      const n = Math.min(6 - this.headLen, chunk.length - pos);
      chunk.copy(this.head, this.headLen, pos, pos + n);
      this.headLen += n;
      pos += n;
      if (this.headLen < 6) break;
      this.headLen = 0;
      const type = this.head[0];
      const length = this.head.readUInt32BE(2);
      const violation = this.check(type, length);
      if (violation) {
        this.phase = 'closing';
        return violation;
      }
      this.remaining = length;
    }
    return undefined;
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
        if (length > MAX_ASSOCIATE_RQ_LENGTH || length < 68) {
          return { label: 'pdu-too-long', reason: AbortReason.InvalidPduParameterValue, detail: `A-ASSOCIATE-RQ claims ${length} bytes` };
        }
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
