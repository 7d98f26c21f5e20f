// MLLP transport to one RIS: a persistent TCP connection (no-delay), framing and parsing by @medplum/hl7's
// Hl7Connection, explicit connect and ACK timeouts, and one message in flight per connection so ACKs can never
// be matched to the wrong message. Knows nothing about what the message says; never logs message bodies.
import net from 'node:net';
import type { Hl7Message } from '@medplum/core';
import { Hl7Connection, type Hl7ErrorEvent, type Hl7MessageEvent } from '@medplum/hl7';
import type { Logger } from '../../../../shared/logger';
import type { HostPort } from '../config';
import { RetryableDeliveryError, safeMessage } from '../errors';

export interface MllpSenderOptions extends HostPort {
  connectTimeoutMs: number;
  ackTimeoutMs: number;
  logger?: Logger;
}

export class MllpSender {
  private connection?: Hl7Connection;
  private connecting?: Promise<Hl7Connection>;
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
    if (connection && !connection.isClosed()) await connection.close();
  }

  private async sendNow(message: Hl7Message): Promise<Hl7Message> {
    if (this.closed) throw new RetryableDeliveryError('HL7 sender is closed', 'closed');
    const connection = await this.connect();
    const { ackTimeoutMs } = this.options;
    let timer: NodeJS.Timeout | undefined;
    let onClose: (() => void) | undefined;
    let onReply: ((event: Hl7MessageEvent) => void) | undefined;
    const controlId = message.getSegment('MSH')?.getField(10)?.toString() ?? '';
    try {
      return await Promise.race([
        connection.sendAndWait(message),
        // One message in flight: any reply that names another control id in MSA-2 (or none) answers ours wrongly.
        // The library drops such a reply, so without this the send would wait out the ACK timeout and be reported
        // as one although the RIS answered at once.
        new Promise<never>((_, reject) => {
          onReply = (event: Hl7MessageEvent) => {
            const msa2 = event.message.getSegment('MSA')?.getField(2)?.toString() ?? '';
            if (msa2 !== controlId) {
              reject(new RetryableDeliveryError('the reply names another message control id in MSA-2 than the MSH-10 sent', 'ack-control-id'));
            }
          };
          connection.addEventListener('message', onReply);
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new RetryableDeliveryError(`no ACK within ${ackTimeoutMs} ms`, 'ack-timeout')),
            ackTimeoutMs,
          );
        }),
        new Promise<never>((_, reject) => {
          onClose = () => reject(new RetryableDeliveryError('connection closed before the ACK', 'connection-closed'));
          connection.addEventListener('close', onClose);
        }),
      ]);
    } catch (err) {
      // A late ACK on this connection would belong to a message we gave up on: start the next one on a fresh socket.
      this.drop(connection);
      if (err instanceof RetryableDeliveryError) throw err;
      throw new RetryableDeliveryError('HL7 send failed', 'send-failed', { cause: err });
    } finally {
      clearTimeout(timer);
      if (onClose) connection.removeEventListener('close', onClose);
      if (onReply) connection.removeEventListener('message', onReply);
    }
  }

  private drop(connection: Hl7Connection): void {
    if (this.connection === connection) this.connection = undefined;
    // Destroying the socket rejects the library's pending promise, so nothing waits on it.
    connection.close().catch(() => undefined);
  }

  private connect(): Promise<Hl7Connection> {
    if (this.connection && !this.connection.isClosed()) return Promise.resolve(this.connection);
    this.connecting ??= this.openSocket().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private openSocket(): Promise<Hl7Connection> {
    const { host, port, connectTimeoutMs, logger } = this.options;
    return new Promise<Hl7Connection>((resolve, reject) => {
      const socket = net.connect({ host, port, noDelay: true, keepAlive: true });
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
        const connection = new Hl7Connection(socket, 'utf-8');
        connection.addEventListener('error', (event: Hl7ErrorEvent) => {
          // Name and code only: a parse error's message may quote the peer's bytes.
          logger?.warn({ err: safeMessage(event.error) }, 'MLLP connection error');
        });
        connection.addEventListener('close', () => {
          if (this.connection === connection) this.connection = undefined;
        });
        this.connection = connection;
        logger?.debug({ host, port }, 'MLLP connected');
        resolve(connection);
      });
    });
  }
}
