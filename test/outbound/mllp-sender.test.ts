// The MLLP transport alone against real sockets on 127.0.0.1: refused connections, a peer that hangs up while we
// wait, and one message in flight per connection even when callers send concurrently.
import net from 'node:net';
import { Hl7Message } from '@medplum/core';
import { KEEPALIVE_DELAY_MS, MllpSender } from '../../services/api/outbound/hl7/mllp-sender';
import { RetryableDeliveryError } from '../../services/api/outbound/errors';
import { freePort } from '../helpers/ports';
import { startMllpPeer, type MllpPeer } from './helpers/mllp-peer';

const msg = (id: string): Hl7Message => Hl7Message.parse(`MSH|^~\\&|NT||RIS||20260101||OMI^O23^OMI_O23|${id}|P|2.5.1\rORC|XO`);

/**
 * A stand-in RIS on 127.0.0.1 that handles each connection with `onConnection`, and a sender to it (connect timeout
 * 1 s); `body` runs with the sender, and both are closed after it, whatever it threw.
 */
async function withRis(onConnection: (socket: net.Socket) => void, ackTimeoutMs: number, body: (sender: MllpSender) => Promise<void>): Promise<void> {
  const server = net.createServer(onConnection);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const sender = new MllpSender({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, connectTimeoutMs: 1000, ackTimeoutMs });
  try {
    await body(sender);
  } finally {
    await sender.close();
    await new Promise((r) => server.close(r));
  }
}

/** A RIS that answers each message with `reply(its control id, which connection it came on: 1, 2, ...)`. */
function risAnswering(reply: (id: string, connection: number) => string): (socket: net.Socket) => void {
  let connections = 0;
  return (socket) => {
    const mine = ++connections;
    socket.on('data', (data) => socket.write(reply(/\|OMI\^O23\^OMI_O23\|([^|]+)\|/.exec(data.toString())![1], mine)));
    socket.on('error', () => undefined);
  };
}

let peer: MllpPeer;
beforeAll(async () => {
  peer = await startMllpPeer();
});
afterAll(async () => {
  await peer?.close();
});

test('a refused connection is a retryable connect-failed', async () => {
  const sender = new MllpSender({ host: '127.0.0.1', port: await freePort(), connectTimeoutMs: 1000, ackTimeoutMs: 1000 });
  const err = await sender.send(msg('R1')).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(RetryableDeliveryError);
  expect((err as RetryableDeliveryError).reason).toBe('connect-failed');
  await sender.close();
});

test('a peer that hangs up before the ACK gives connection-closed at once, not a timeout', async () => {
  await withRis((socket) => socket.once('data', () => socket.destroy()), 5000, async (sender) => {
    const t0 = Date.now();
    const err = await sender.send(msg('C1')).catch((e: unknown) => e);
    expect((err as RetryableDeliveryError).reason).toBe('connection-closed');
    expect(Date.now() - t0).toBeLessThan(4000);
  });
});

test('an ACK whose MSA-2 names another control id fails at once as ack-control-id (not a timeout), on a fresh connection next', async () => {
  let connections = 0;
  await withRis(
    (socket) => {
      connections += 1;
      // A RIS (or engine) that puts its own id in MSA-2 instead of echoing our MSH-10.
      socket.on('data', () => socket.write('\x0bMSH|^~\\&|RIS||NT||20260101||ACK^O23^ACK|A1|P|2.5.1\rMSA|AA|RIS-OWN-ID\x1c\r'));
      socket.on('error', () => undefined);
    },
    5000,
    async (sender) => {
      for (const id of ['W1', 'W2']) {
        const t0 = Date.now();
        const err = await sender.send(msg(id)).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RetryableDeliveryError);
        expect((err as RetryableDeliveryError).reason).toBe('ack-control-id');
        expect(Date.now() - t0).toBeLessThan(4000);
      }
      expect(connections).toBe(2);
    },
  );
});

test('a RIS that ends its frames <FS><CR><LF>, or splits and joins them across reads, is heard: every message gets its ACK', async () => {
  let connections = 0;
  const ack = (id: string) => `MSH|^~\\&|RIS||NT||20260101||ACK^O23^ACK|A-${id}|P|2.5.1\rMSA|AA|${id}`;
  await withRis(
    (socket) => {
      connections += 1;
      let n = 0;
      socket.on('data', (data) => {
        const id = /\|OMI\^O23\^OMI_O23\|([^|]+)\|/.exec(data.toString())![1];
        n += 1;
        if (n === 1) socket.write(`\x0b${ack(id)}\x1c\r\n`);
        // The ACK in two writes, the second beginning with the line feed that ended the one before.
        else {
          socket.write(`\n\x0b${ack(id).slice(0, 20)}`);
          setTimeout(() => socket.write(`${ack(id).slice(20)}\x1c\r\n`), 20);
        }
      });
      socket.on('error', () => undefined);
    },
    3000,
    async (sender) => {
      for (const id of ['L1', 'L2', 'L3']) {
        const reply = await sender.send(msg(id));
        expect([reply.getSegment('MSA')!.getField(1).toString(), reply.getSegment('MSA')!.getField(2).toString()]).toEqual(['AA', id]);
      }
      expect(connections).toBe(1);
    },
  );
});

test('a reply that is not an HL7 message fails at once as bad-ack, and the next message goes on a fresh connection', async () => {
  let connections = 0;
  await withRis(
    risAnswering((id, mine) => {
      connections = mine;
      return mine === 1 ? '\x0bNAK garbage\x1c\r' : `\x0bMSH|^~\\&|RIS||NT||20260101||ACK|A1|P|2.5.1\rMSA|AA|${id}\x1c\r`;
    }),
    5000,
    async (sender) => {
      const t0 = Date.now();
      const err = await sender.send(msg('G1')).catch((e: unknown) => e);
      expect((err as RetryableDeliveryError).reason).toBe('bad-ack');
      expect(Date.now() - t0).toBeLessThan(4000);
      expect((await sender.send(msg('G2'))).getSegment('MSA')!.getField(2).toString()).toBe('G2');
      expect(connections).toBe(2);
    },
  );
});

test('a reply with no acknowledgment code in MSA-1 fails as bad-ack, and the next message goes on a fresh connection', async () => {
  // Such a reply is not the RIS's answer (a commit reply without a code, a half-written ACK): the real one may still
  // come, and on the same connection it would be taken for the next message's.
  let connections = 0;
  await withRis(
    risAnswering((id, mine) => {
      connections = mine;
      return `\x0bMSH|^~\\&|RIS||NT||20260101||ACK|A1|P|2.5.1\rMSA|${mine === 1 ? '' : 'AA'}|${id}\x1c\r`;
    }),
    5000,
    async (sender) => {
      const err = await sender.send(msg('N1')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RetryableDeliveryError);
      expect((err as RetryableDeliveryError).reason).toBe('bad-ack');
      expect((await sender.send(msg('N2'))).getSegment('MSA')!.getField(1).toString()).toBe('AA');
      expect(connections).toBe(2);
    },
  );
});

test('an ACK whose MSA-2 is padded with spaces answers the message (ST: trailing spaces are not significant)', async () => {
  // Compared as sent, it failed as ack-control-id on every retry until the study was dead-lettered, though accepted.
  await withRis(
    risAnswering((id) => `\x0bMSH|^~\\&|RIS||NT||20260101||ACK|A1|P|2.5.1\rMSA|AA|${id}   \x1c\r`),
    5000,
    async (sender) => {
      expect((await sender.send(msg('P1'))).getSegment('MSA')!.getField(1).toString()).toBe('AA');
    },
  );
});

test('the connection sends TCP keep-alive probes after 30 s idle, not after the system default of hours', async () => {
  const connect = jest.spyOn(net, 'connect');
  const sender = new MllpSender({ host: '127.0.0.1', port: peer.port, connectTimeoutMs: 1000, ackTimeoutMs: 2000 });
  try {
    await sender.send(msg('K1'));
    expect(connect).toHaveBeenCalledWith(expect.objectContaining({ keepAlive: true, keepAliveInitialDelay: KEEPALIVE_DELAY_MS }));
    expect(KEEPALIVE_DELAY_MS).toBeLessThanOrEqual(60_000);
  } finally {
    connect.mockRestore();
    await sender.close();
  }
});

test('concurrent sends go out one at a time on one connection, each with its own ACK', async () => {
  const inFlight: number[] = [];
  let open = 0;
  peer.reply = () => {
    open += 1;
    inFlight.push(open);
    // Answer later: a second message arriving meanwhile would raise `open` to 2.
    return 'AA';
  };
  const sender = new MllpSender({ host: '127.0.0.1', port: peer.port, connectTimeoutMs: 1000, ackTimeoutMs: 2000 });
  const before = peer.connections;
  const replies = await Promise.all(['S1', 'S2', 'S3', 'S4'].map(async (id) => {
    const reply = await sender.send(msg(id));
    open -= 1;
    return reply;
  }));
  expect(replies.map((r) => r.getSegment('MSA')!.getField(2).toString())).toEqual(['S1', 'S2', 'S3', 'S4']);
  expect(Math.max(...inFlight)).toBe(1);
  expect(peer.connections).toBe(before + 1);
  expect(peer.received.slice(-4).map((m) => m.getSegment('MSH')!.getField(10).toString())).toEqual(['S1', 'S2', 'S3', 'S4']);
  await sender.close();
});

test('a close() while the connection is still being made leaves no connection open behind it', async () => {
  const open = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    // A RIS that acknowledges every message and keeps the connection for the next, until we close ours.
    open.add(socket);
    socket.on('data', () => socket.write('\x0bMSH|^~\\&|RIS||NT||20260101||ACK|A1|P|2.5.1\rMSA|AA|S1\x1c\r'));
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const sender = new MllpSender({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, connectTimeoutMs: 1000, ackTimeoutMs: 500 });
    const sent = sender.send(msg('S1')).catch((e: unknown) => e);
    // The send has begun connecting (the TCP handshake completes on a later turn of the event loop): the API stops.
    for (let i = 0; i < 5; i++) await Promise.resolve();
    await sender.close();
    await sent;
    await new Promise((r) => setTimeout(r, 1000));
    expect(open.size).toBe(0);
  } finally {
    for (const s of open) s.destroy();
    await new Promise((r) => server.close(r));
  }
});
