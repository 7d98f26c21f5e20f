// MLLP transport to one RIS: a persistent TCP connection (no-delay, keep-alive), explicit connect and ACK
// timeouts, and one message in flight per connection so ACKs can never be matched to the wrong message. Knows
// nothing about what the message says; never logs message bodies.
// The framing is the report feed's decoder (shared/mllp-framing.ts), not @medplum/hl7 4.5.2's Hl7Connection:
// that one ends a frame only when a TCP read happens to end in <FS><CR>, so a RIS that ends its frames
// <FS><CR><LF> (or whose ACK shares a read with other bytes) was never heard and every message timed out; and a
// reply it cannot parse poisoned the connection's buffer. Here bytes outside frames are ignored, as on the feed.
import net from 'node:net';
import { Hl7Message } from '@medplum/core';
import type { Logger } from '../../../../shared/logger';
import { MllpDecoder, mllpFrame } from '../../../../shared/mllp-framing';
import type { HostPort } from '../config';
import { RetryableDeliveryError } from '../errors';

export interface MllpSenderOptions extends HostPort {
  connectTimeoutMs: number;
  ackTimeoutMs: number;
  logger?: Logger;
}

/**
 * First TCP keep-alive probe after this much idle time. Node's keep-alive without a delay leaves the system's
 * (2 hours on Linux), long past the idle timeout of the firewalls between hospital networks (often 5 to 60
 * minutes), which drop the connection without a word: the first message after a quiet night then went into a
 * dead socket and waited out the ACK timeout before it was retried on a new connection.
 */
export const KEEPALIVE_DELAY_MS = 30_000;

/** MSA-1 values (HL7 table 0008): original and enhanced mode. */
const ACK_CODES = new Set(['AA', 'AE', 'AR', 'CA', 'CE', 'CR']);

/** An ACK is a few hundred bytes; a reply larger than this is not one. */
const MAX_REPLY_BYTES = 1024 * 1024;

/** The one message waiting for its reply on a connection. */
interface Pending {
  resolve: (reply: Hl7Message) => void;
  reject: (err: Error) => void;
}

/** One socket and its framing. */
class Connection {
  private readonly decoder = new MllpDecoder({ maxMessageBytes: MAX_REPLY_BYTES });
  pending?: Pending;

  constructor(readonly socket: net.Socket, onGone: (c: Connection) => void, logger?: Logger) {
    socket.on('data', (chunk: Buffer) => {
      for (const frame of this.decoder.push(chunk)) {
        const pending = this.pending;
        if (frame.kind === 'garbage') continue;
        if (!pending) {
          // Nothing is waiting (we close a connection whose message timed out): a reply now belongs to nobody.
          logger?.warn({ kind: frame.kind }, 'MLLP reply with no message waiting for it: ignored');
          continue;
        }
        this.pending = undefined;
        if (frame.kind === 'oversize') {
          pending.reject(new RetryableDeliveryError(`reply larger than ${MAX_REPLY_BYTES} bytes`, 'bad-ack'));
          continue;
        }
        let reply: Hl7Message;
        try {
          reply = Hl7Message.parse(frame.bytes.toString('utf8').replace(/\r\n/g, '\r'));
        } catch (err) {
          pending.reject(new RetryableDeliveryError('reply is not an HL7 message', 'bad-ack', { cause: err }));
          continue;
        }
        pending.resolve(reply);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      logger?.warn({ err: err.code ?? err.name }, 'MLLP connection error');
    });
    socket.on('close', () => {
      const pending = this.pending;
      this.pending = undefined;
      pending?.reject(new RetryableDeliveryError('connection closed before the ACK', 'connection-closed'));
      onGone(this);
    });
  }

  get closed(): boolean {
    return this.socket.destroyed || this.socket.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export class MllpSender {
  private connection?: Connection;
  private connecting?: Promise<Connection>;
  /** Serialises send(): the next message goes out only after the previous one's ACK (or failure). */
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(private readonly options: MllpSenderOptions) {}

  /** Sends one message and resolves with the peer's reply to it; rejects with RetryableDeliveryError otherwise. */
  send(message: Hl7Message): Promise<Hl7Message> {
    const run = this.tail.then(() => this.sendNow(message));
    this.tail = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    this.closed = true;
    const connection = this.connection;
    this.connection = undefined;
    if (connection && !connection.closed) {
      await new Promise<void>((resolve) => {
        connection.socket.once('close', () => resolve());
        connection.destroy();
      });
    }
  }

  private async sendNow(message: Hl7Message): Promise<Hl7Message> {
    if (this.closed) throw new RetryableDeliveryError('HL7 sender is closed', 'closed');
    const connection = await this.connect();
    const { ackTimeoutMs } = this.options;
    const controlId = message.getSegment('MSH')?.getField(10)?.toString() ?? '';
    let timer: NodeJS.Timeout | undefined;
    try {
      const reply = await new Promise<Hl7Message>((resolve, reject) => {
        connection.pending = { resolve, reject };
        timer = setTimeout(() => reject(new RetryableDeliveryError(`no ACK within ${ackTimeoutMs} ms`, 'ack-timeout')), ackTimeoutMs);
        connection.socket.write(mllpFrame(Buffer.from(message.toString(), 'utf8')));
      });
      // One message in flight: a reply whose MSA-2 names another control id (or none) answers ours wrongly.
      const msa = reply.getSegment('MSA');
      // Trailing spaces are not significant in an ST (a RIS that pads MSA-2 still answers ours).
      if (msa && (msa.getField(2)?.toString() ?? '').trimEnd() !== controlId) {
        throw new RetryableDeliveryError('the reply names another message control id in MSA-2 than the MSH-10 sent', 'ack-control-id');
      }
      // A reply without an acknowledgment code is not the RIS's answer; failing here (not in the caller) drops the
      // connection, so the real ACK, should it still come, is not taken for the next message's.
      if (!ACK_CODES.has(msa?.getField(1)?.toString().trim().toUpperCase() ?? '')) {
        throw new RetryableDeliveryError('the reply has no acknowledgment code in MSA-1', 'bad-ack');
      }
      return reply;
    } catch (err) {
      // A late ACK on this connection would belong to a message we gave up on: start the next one on a fresh socket.
      this.drop(connection);
      if (err instanceof RetryableDeliveryError) throw err;
      throw new RetryableDeliveryError('HL7 send failed', 'send-failed', { cause: err });
    } finally {
      clearTimeout(timer);
      connection.pending = undefined;
    }
  }

  private drop(connection: Connection): void {
    if (this.connection === connection) this.connection = undefined;
    connection.destroy();
  }

  private connect(): Promise<Connection> {
    if (this.connection && !this.connection.closed) return Promise.resolve(this.connection);
    this.connecting ??= this.openSocket().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private openSocket(): Promise<Connection> {
    const { host, port, connectTimeoutMs, logger } = this.options;
    return new Promise<Connection>((resolve, reject) => {
      const socket = net.connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: KEEPALIVE_DELAY_MS });
      socket.setNoDelay(true);
      const fail = (reason: string, message: string, cause?: unknown): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(new RetryableDeliveryError(message, reason, { cause }));
      };
      const timer = setTimeout(() => fail('connect-timeout', `no MLLP connection within ${connectTimeoutMs} ms`), connectTimeoutMs);
      socket.once('error', (err: NodeJS.ErrnoException) => fail('connect-failed', `MLLP connect failed (${err.code ?? 'error'})`, err));
      socket.once('connect', () => {
        // close() came while this connection was being made: it had nothing to close, so nothing may use this one.
        if (this.closed) {
          fail('closed', 'HL7 sender is closed');
          return;
        }
        clearTimeout(timer);
        socket.removeAllListeners('error');
        const connection = new Connection(socket, (gone) => {
          if (this.connection === gone) this.connection = undefined;
        }, logger);
        this.connection = connection;
        logger?.debug({ host, port }, 'MLLP connected');
        resolve(connection);
      });
    });
  }
}
