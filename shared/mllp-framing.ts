// MLLP release 2 framing (HL7 v2 transport, Appendix C): <VT> message bytes <FS><CR>. A decoder that takes TCP
// chunks as they come (a frame split anywhere, several frames in one chunk) and yields whole frames as bytes; it
// never decodes text, so a message in any character set, or a broken one, reaches the application intact.
// Written here rather than taken from @medplum/hl7 4.5.2: its Hl7Connection ends a frame only when a TCP chunk
// ends in <FS><CR> (two messages in one chunk are glued together), parses before handing anything over (a message
// it cannot parse is lost without an ACK), has no size limit, and its Hl7Server cannot bind to one address.
export const VT = 0x0b;
export const FS = 0x1c;
export const CR = 0x0d;
const LF = 0x0a;

export type Frame =
  | { kind: 'message'; bytes: Buffer }
  /** Over the size limit: the first `head.length` bytes (enough for the MSH and a look), and how many there were. */
  | { kind: 'oversize'; head: Buffer; totalBytes: number }
  /** Bytes outside any frame that are not line breaks (a sender without MLLP, a port scanner), or of a frame cut off
   * by a new <VT>. */
  | { kind: 'garbage'; bytes: number };

export interface MllpDecoderOptions {
  maxMessageBytes: number;
  /** Bytes of an oversize message kept for review (default 64 KiB). */
  headBytes?: number;
}

export class MllpDecoder {
  private inFrame = false;
  private parts: Buffer[] = [];
  private size = 0;
  private oversize = false;
  private readonly headBytes: number;

  constructor(private readonly options: MllpDecoderOptions) {
    this.headBytes = Math.min(options.headBytes ?? 64 * 1024, options.maxMessageBytes);
  }

  /** True while a frame has started and not ended (a connection closing now loses it: nothing was ACKed). */
  get partial(): boolean {
    return this.inFrame;
  }

  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    let garbage = 0;
    let i = 0;
    while (i < chunk.length) {
      if (!this.inFrame) {
        const start = chunk.indexOf(VT, i);
        const end = start === -1 ? chunk.length : start;
        for (let j = i; j < end; j++) if (chunk[j] !== CR && chunk[j] !== LF) garbage++;
        if (start === -1) break;
        this.inFrame = true;
        this.parts = [];
        this.size = 0;
        this.oversize = false;
        i = start + 1;
        continue;
      }
      const fs = chunk.indexOf(FS, i);
      const end = fs === -1 ? chunk.length : fs;
      // MLLP content never holds <VT>: one before the <FS> means the sender gave up on this frame and began again.
      // The cut-off bytes are dropped (counted as outside a frame; the sender resends what got no ACK): glued to the
      // next message, they made one message of both, answered with the first one's control id.
      const vt = chunk.subarray(i, end).indexOf(VT);
      if (vt !== -1) {
        garbage += this.size + vt;
        this.inFrame = false;
        this.parts = [];
        i += vt;
        continue;
      }
      this.append(chunk.subarray(i, end));
      if (fs === -1) break;
      frames.push(this.finish());
      // <FS> is followed by <CR>; if the <CR> is in the next chunk it is skipped there as a line break.
      i = chunk[fs + 1] === CR ? fs + 2 : fs + 1;
    }
    if (garbage > 0) frames.push({ kind: 'garbage', bytes: garbage });
    return frames;
  }

  private append(bytes: Buffer): void {
    if (bytes.length === 0) return;
    const before = this.size;
    this.size += bytes.length;
    if (this.size > this.options.maxMessageBytes) this.oversize = true;
    // Past the limit only the head is kept; memory stays bounded whatever the sender does.
    const keep = this.oversize ? Math.max(0, this.headBytes - before) : bytes.length;
    if (keep > 0) this.parts.push(Buffer.from(bytes.subarray(0, keep)));
  }

  private finish(): Frame {
    this.inFrame = false;
    const bytes = withoutLeader(Buffer.concat(this.parts));
    this.parts = [];
    if (this.oversize) return { kind: 'oversize', head: bytes.subarray(0, this.headBytes), totalBytes: this.size };
    return { kind: 'message', bytes };
  }
}

/** One reply in MLLP framing. */
export function mllpFrame(payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from([VT]), payload, Buffer.from([FS, CR])]);
}

/**
 * The frame without what some senders write before the message's first segment: a UTF-8 byte order mark (Windows
 * engines, a sender fed from files) and line breaks. Neither is part of an HL7 message, and with them the frame did
 * not begin MSH (or FHS/BHS) and a valid message was refused AR bad-msh.
 */
function withoutLeader(bytes: Buffer): Buffer {
  let start = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  while (start < bytes.length && (bytes[start] === CR || bytes[start] === LF)) start += 1;
  return start === 0 ? bytes : bytes.subarray(start);
}
