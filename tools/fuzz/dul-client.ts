// A minimal DICOM Upper Layer client (PS3.8) that sends exactly the bytes it is given: A-ASSOCIATE-RQ with the
// presentation contexts asked for, C-STORE-RQ with a data set taken as raw bytes (however broken), C-ECHO-RQ,
// A-RELEASE-RQ, and any raw PDU. DCMTK's storescu and dcmjs-dimse both parse (and refuse, or re-encode) what they
// send, so the fuzz corpus and the protocol-violation tests go through this instead. Not a general SCU: one
// operation at a time, little endian command sets, no extended negotiation.
import net from 'node:net';

export interface ProposedContext {
  /** Odd, 1-255 (PS3.8 9.3.2.2). */
  id: number;
  abstractSyntaxUID: string;
  transferSyntaxUIDs: string[];
}

export interface AcceptedContext {
  id: number;
  /** 0 accepted; 1-4 the rejection reasons of PS3.8 9.3.3.2. */
  result: number;
  transferSyntaxUID?: string;
}

export interface DimseAnswer {
  status: number;
  errorComment?: string;
}

export type AssociationOutcome =
  | { kind: 'accepted'; contexts: Map<number, AcceptedContext>; maxPduLength: number }
  | { kind: 'rejected'; result: number; source: number; reason: number }
  | { kind: 'aborted'; source: number; reason: number }
  | { kind: 'closed' };

const APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';
const IMPLEMENTATION_CLASS_UID = '2.25.311254938190946853917326118423947216215';

function aeField(ae: string): Buffer {
  return Buffer.from(ae.padEnd(16, ' ').slice(0, 16), 'latin1');
}

function item(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head[0] = type;
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([head, body]);
}

function pdu(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head[0] = type;
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

export function associateRequestPdu(callingAe: string, calledAe: string, contexts: ProposedContext[], maxPduLength = 65536): Buffer {
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(1, 0);
  aeField(calledAe).copy(fixed, 4);
  aeField(callingAe).copy(fixed, 20);
  const items = [item(0x10, Buffer.from(APPLICATION_CONTEXT, 'latin1'))];
  for (const c of contexts) {
    const sub = [item(0x30, Buffer.from(c.abstractSyntaxUID, 'latin1')), ...c.transferSyntaxUIDs.map((ts) => item(0x40, Buffer.from(ts, 'latin1')))];
    items.push(item(0x20, Buffer.concat([Buffer.from([c.id, 0, 0, 0]), ...sub])));
  }
  const maxLength = Buffer.alloc(4);
  maxLength.writeUInt32BE(maxPduLength, 0);
  items.push(item(0x50, Buffer.concat([item(0x51, maxLength), item(0x52, Buffer.from(IMPLEMENTATION_CLASS_UID, 'latin1'))])));
  return pdu(0x01, Buffer.concat([fixed, ...items]));
}

/** One implicit VR little endian element of a command set. */
function commandElement(element: number, value: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16LE(0x0000, 0);
  head.writeUInt16LE(element, 2);
  head.writeUInt32LE(value.length, 4);
  return Buffer.concat([head, value]);
}

const us = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v, 0);
  return b;
};
const ui = (v: string) => Buffer.from(v.length % 2 ? `${v}\0` : v, 'latin1');

export function commandSet(fields: { CommandField: number; MessageID: number; AffectedSOPClassUID: string; AffectedSOPInstanceUID?: string; hasDataSet: boolean }): Buffer {
  const elements = [
    commandElement(0x0002, ui(fields.AffectedSOPClassUID)),
    commandElement(0x0100, us(fields.CommandField)),
    commandElement(0x0110, us(fields.MessageID)),
    ...(fields.CommandField === 0x0001 ? [commandElement(0x0700, us(0))] : []),
    commandElement(0x0800, us(fields.hasDataSet ? 0x0000 : 0x0101)),
    ...(fields.AffectedSOPInstanceUID ? [commandElement(0x1000, ui(fields.AffectedSOPInstanceUID))] : []),
  ];
  const body = Buffer.concat(elements);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(body.length, 0);
  return Buffer.concat([commandElement(0x0000, length), body]);
}

/** P-DATA-TF PDUs carrying `value` on one context, split so each PDU stays within `maxPduLength`. */
export function pDataPdus(contextId: number, value: Buffer, command: boolean, maxPduLength: number): Buffer[] {
  const room = Math.max(2, maxPduLength - 6);
  const out: Buffer[] = [];
  for (let offset = 0; offset < value.length || (offset === 0 && value.length === 0); offset += room) {
    const part = value.subarray(offset, offset + room);
    const last = offset + room >= value.length;
    const pdv = Buffer.alloc(6);
    pdv.writeUInt32BE(part.length + 2, 0);
    pdv[4] = contextId;
    pdv[5] = (command ? 1 : 0) | (last ? 2 : 0);
    out.push(pdu(0x04, Buffer.concat([pdv, part])));
    if (value.length === 0) break;
  }
  return out;
}

function readCommandAnswer(bytes: Buffer): DimseAnswer {
  const answer: DimseAnswer = { status: -1 };
  for (let o = 0; o + 8 <= bytes.length; ) {
    const element = bytes.readUInt16LE(o + 2);
    const length = bytes.readUInt32LE(o + 4);
    const value = bytes.subarray(o + 8, o + 8 + length);
    if (element === 0x0900 && length === 2) answer.status = value.readUInt16LE(0);
    if (element === 0x0902) answer.errorComment = value.toString('latin1').trim();
    o += 8 + length;
  }
  return answer;
}

function parseAccept(body: Buffer): { contexts: Map<number, AcceptedContext>; maxPduLength: number } {
  const contexts = new Map<number, AcceptedContext>();
  let maxPduLength = 16384;
  for (let o = 68; o + 4 <= body.length; ) {
    const type = body[o];
    const length = body.readUInt16BE(o + 2);
    const value = body.subarray(o + 4, o + 4 + length);
    if (type === 0x21) {
      const ctx: AcceptedContext = { id: value[0], result: value[2] };
      if (value.length > 4 && value[4] === 0x40) ctx.transferSyntaxUID = value.toString('latin1', 8, 8 + value.readUInt16BE(6)).replace(/\0+$/, '');
      contexts.set(ctx.id, ctx);
    } else if (type === 0x50) {
      for (let u = 0; u + 4 <= value.length; ) {
        const subLength = value.readUInt16BE(u + 2);
        if (value[u] === 0x51) maxPduLength = value.readUInt32BE(u + 4);
        u += 4 + subLength;
      }
    }
    o += 4 + length;
  }
  return { contexts, maxPduLength };
}

/** One TCP connection to an SCP, read PDU by PDU. */
export class DulClient {
  private readonly socket: net.Socket;
  private buffer = Buffer.alloc(0);
  private readonly pdus: Array<{ type: number; body: Buffer }> = [];
  private waiter: (() => void) | undefined;
  private closedFlag = false;
  readonly connected: Promise<void>;
  maxPduLength = 16384;
  /** How many P-DATA-TF PDUs carried the last response. */
  responsePdus = 0;
  private announcedMaxPduLength = 0;
  private messageId = 0;

  constructor(host: string, port: number, localAddress?: string) {
    this.socket = net.connect({ host, port, noDelay: true, ...(localAddress ? { localAddress } : {}) });
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
    this.socket.on('error', () => undefined);
    this.socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      while (this.buffer.length >= 6) {
        const length = this.buffer.readUInt32BE(2);
        if (this.buffer.length < 6 + length) break;
        this.pdus.push({ type: this.buffer[0], body: this.buffer.subarray(6, 6 + length) });
        this.buffer = this.buffer.subarray(6 + length);
      }
      this.wake();
    });
    this.socket.on('close', () => {
      this.closedFlag = true;
      this.wake();
    });
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** The next PDU from the SCP, or undefined when the connection closed (or `timeoutMs` passed) first. */
  async nextPdu(timeoutMs = 30_000): Promise<{ type: number; body: Buffer } | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.pdus.length === 0 && !this.closedFlag && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.pdus.shift();
  }

  /** Resolves once the SCP has closed the connection; false when it is still open after `timeoutMs`. */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closedFlag && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return this.closedFlag;
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** `maxPduLength`: the Maximum Length Received this client announces (the SCP must split what it sends to fit). */
  async associate(callingAe: string, calledAe: string, contexts: ProposedContext[], maxPduLength = 65536): Promise<AssociationOutcome> {
    await this.connected;
    this.announcedMaxPduLength = maxPduLength;
    this.write(associateRequestPdu(callingAe, calledAe, contexts, maxPduLength));
    const reply = await this.nextPdu();
    if (!reply) return { kind: 'closed' };
    if (reply.type === 0x02) {
      const accepted = parseAccept(reply.body);
      this.maxPduLength = accepted.maxPduLength || 16384;
      return { kind: 'accepted', ...accepted };
    }
    if (reply.type === 0x03) return { kind: 'rejected', result: reply.body[1], source: reply.body[2], reason: reply.body[3] };
    if (reply.type === 0x07) return { kind: 'aborted', source: reply.body[2], reason: reply.body[3] };
    return { kind: 'closed' };
  }

  /** Sends a command (and its data set, if any) and reads the response; an A-ABORT or a close rejects. */
  private async exchange(contextId: number, command: Buffer, dataset: Buffer | undefined): Promise<DimseAnswer> {
    for (const p of pDataPdus(contextId, command, true, this.maxPduLength)) this.write(p);
    if (dataset) for (const p of pDataPdus(contextId, dataset, false, this.maxPduLength)) this.write(p);
    // The response command, in as many P-DATA-TF PDUs (one PDV each) as the SCP needed to fit our maximum length.
    const fragments: Buffer[] = [];
    for (;;) {
      const reply = await this.nextPdu();
      if (!reply) throw new Error('association closed before the response');
      if (reply.type === 0x07) throw new Error(`association aborted (source ${reply.body[2]}, reason ${reply.body[3]})`);
      if (reply.type !== 0x04) throw new Error(`unexpected PDU type ${reply.type}`);
      if (this.announcedMaxPduLength > 0 && reply.body.length > this.announcedMaxPduLength) throw new Error(`a ${reply.body.length}-byte P-DATA-TF, over the ${this.announcedMaxPduLength} announced`);
      if (reply.body.readUInt32BE(0) !== reply.body.length - 4) throw new Error('a response PDU holding more than one PDV');
      fragments.push(reply.body.subarray(6));
      if (reply.body[5] & 0x02) break;
    }
    this.responsePdus = fragments.length;
    return readCommandAnswer(Buffer.concat(fragments));
  }

  store(contextId: number, SOPClassUID: string, SOPInstanceUID: string, dataset: Buffer): Promise<DimseAnswer> {
    const command = commandSet({ CommandField: 0x0001, MessageID: (this.messageId += 1), AffectedSOPClassUID: SOPClassUID, AffectedSOPInstanceUID: SOPInstanceUID, hasDataSet: true });
    return this.exchange(contextId, command, dataset);
  }

  echo(contextId: number): Promise<DimseAnswer> {
    const command = commandSet({ CommandField: 0x0030, MessageID: (this.messageId += 1), AffectedSOPClassUID: '1.2.840.10008.1.1', hasDataSet: false });
    return this.exchange(contextId, command, undefined);
  }

  /** A-RELEASE-RQ; true when A-RELEASE-RP came back. */
  async release(): Promise<boolean> {
    this.write(pdu(0x05, Buffer.alloc(4)));
    const reply = await this.nextPdu();
    this.socket.end();
    return reply?.type === 0x06;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
