// The PDU lengths a PACS sends back to the SR sender, checked as the bytes arrive. dcmjs-dimse's Client buffers
// each PDU whole, whatever length its 6-byte header claims (PS3.8 9.3.1: type, reserved, 32-bit length), so a PACS
// answering with a header that claimed 2 GB had the API hold everything it sent until the C-STORE timed out.
// PduLengthWatch reads only the headers (no body is kept) and names the first PDU longer than the sender can take:
// an A-ASSOCIATE-AC beyond MAX_ASSOCIATE_AC_LENGTH, a P-DATA-TF beyond the maximum length the sender proposed, the
// fixed-length PDUs at any other length. (A type PS3.8 does not define, dcmjs-dimse refuses at its header.)

/** Largest A-ASSOCIATE-AC taken: one answering all 128 presentation contexts is a few KB. */
export const MAX_ASSOCIATE_AC_LENGTH = 256 * 1024;

/** Body length of each PDU type the SCU may receive (PS3.8 9.3); P-DATA-TF's bound is the proposed maximum. */
const FIXED: Record<number, { name: string; length: number }> = {
  0x03: { name: 'A-ASSOCIATE-RJ', length: 4 },
  0x05: { name: 'A-RELEASE-RQ', length: 4 },
  0x06: { name: 'A-RELEASE-RP', length: 4 },
  0x07: { name: 'A-ABORT', length: 4 },
};

export class PduLengthWatch {
  /** Bytes of the current PDU's body still to come. */
  private remaining = 0;
  private header = Buffer.alloc(6);
  private headerBytes = 0;

  /** @param maxPDataLength the maximum PDU length the sender proposed in its A-ASSOCIATE-RQ. */
  constructor(private readonly maxPDataLength: number) {}

  /** Reads `chunk`'s PDU headers; the first one the sender cannot take, described for the log, or undefined. */
  feed(chunk: Buffer): string | undefined {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.remaining > 0) {
        const skip = Math.min(this.remaining, chunk.length - offset);
        this.remaining -= skip;
        offset += skip;
        continue;
      }
      const take = Math.min(6 - this.headerBytes, chunk.length - offset);
      chunk.copy(this.header, this.headerBytes, offset, offset + take);
      this.headerBytes += take;
      offset += take;
      if (this.headerBytes < 6) break;
      this.headerBytes = 0;
      const type = this.header[0];
      const length = this.header.readUInt32BE(2);
      const problem = this.check(type, length);
      if (problem) return problem;
      this.remaining = length;
    }
    return undefined;
  }

  private check(type: number, length: number): string | undefined {
    if (type === 0x02) {
      return length > MAX_ASSOCIATE_AC_LENGTH ? `an A-ASSOCIATE-AC claiming ${length} bytes (at most ${MAX_ASSOCIATE_AC_LENGTH} taken)` : undefined;
    }
    if (type === 0x04) {
      return length > this.maxPDataLength ? `a P-DATA-TF claiming ${length} bytes, over the ${this.maxPDataLength} proposed` : undefined;
    }
    const fixed = FIXED[type];
    return !fixed || length === fixed.length ? undefined : `an ${fixed.name} claiming ${length} bytes (PS3.8 fixes ${fixed.length})`;
  }
}
