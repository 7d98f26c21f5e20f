// A real MLLP peer for tests: a node:net server on 127.0.0.1:0 whose connections are framed and parsed by
// @medplum/hl7's Hl7Connection (not the sender's own framing, so each checks the other). A script decides each
// reply: AA, AE, AR or none, at once or when a promise it returns settles (a RIS slow to acknowledge).
// Like a RIS, it records a message (in memory, the "durable write") before it acknowledges it.
import net from 'node:net';
import { Hl7Segment, type Hl7Message } from '@medplum/core';
import { Hl7Connection, type Hl7MessageEvent } from '@medplum/hl7';

/** An ACK code, none at all, or an AE/AR with an ERR segment as written (a RIS's own words in it). */
export type PeerReply = 'AA' | 'AE' | 'AR' | 'none' | { code: 'AE' | 'AR'; err: string };

export interface MllpPeer {
  port: number;
  /** Every message received, in order (retries included). */
  received: Hl7Message[];
  /** Date.now() when each message of `received` arrived (for latency figures: ACK goes out right after). */
  receivedAt: number[];
  connections: number;
  /** Messages received and not answered yet, now and at most at once (a reply of 'none' stays unanswered). */
  unanswered: number;
  maxUnanswered: number;
  /** Decides the reply to the next message; default AA. */
  reply: (message: Hl7Message, index: number) => PeerReply | Promise<PeerReply>;
  waitFor(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startMllpPeer(): Promise<MllpPeer> {
  const sockets = new Set<net.Socket>();
  const waiters: Array<() => void> = [];
  const peer: MllpPeer = {
    port: 0,
    received: [],
    receivedAt: [],
    connections: 0,
    unanswered: 0,
    maxUnanswered: 0,
    reply: () => 'AA',
    waitFor(count, timeoutMs = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const deadline = setTimeout(() => reject(new Error(`MLLP peer got ${peer.received.length} of ${count} messages`)), timeoutMs);
        const check = (): void => {
          if (peer.received.length >= count) {
            clearTimeout(deadline);
            resolve();
          } else waiters.push(check);
        };
        check();
      });
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    peer.connections += 1;
    const connection = new Hl7Connection(socket, 'utf-8');
    connection.addEventListener('message', (event: Hl7MessageEvent) => {
      const index = peer.received.length;
      peer.received.push(event.message);
      peer.receivedAt.push(Date.now());
      peer.unanswered += 1;
      peer.maxUnanswered = Math.max(peer.maxUnanswered, peer.unanswered);
      for (const w of waiters.splice(0)) w();
      void Promise.resolve(peer.reply(event.message, index)).then((reply) => {
        if (reply === 'none') return;
        peer.unanswered -= 1;
        const ack = event.message.buildAck({ ackCode: typeof reply === 'string' ? reply : reply.code });
        if (typeof reply !== 'string') ack.segments.push(Hl7Segment.parse(reply.err, ack.context));
        connection.send(ack);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  peer.port = (server.address() as net.AddressInfo).port;
  return peer;
}
