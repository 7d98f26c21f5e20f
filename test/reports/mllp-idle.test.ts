// REPORTS_MLLP_IDLE_TIMEOUT_SECONDS counts from the last whole message a connection brought (its reply sent), not
// from its last byte: senders trickling a frame one byte at a time held their connections for ever, and
// REPORTS_MLLP_MAX_CONNECTIONS of them refused every RIS. Real MLLP on loopback, real Redis.
import net from 'node:net';
import { buildOru } from '../../tools/synth/send-reports';
import { msa, send, startFeed, type Feed } from './helpers';

let feed: Feed;
beforeAll(async () => {
  feed = await startFeed({ REPORTS_MLLP_IDLE_TIMEOUT_SECONDS: '1', REPORTS_MLLP_MAX_CONNECTIONS: '2' });
});
afterAll(async () => {
  await feed?.stop();
});

const oru = (controlId: string) => buildOru({ AccessionNumber: `ACC-${controlId}`, text: 'IMPRESSION: normal.' }, { now: Date.UTC(2026, 0, 5), controlId });
const frame = (m: string) => Buffer.concat([Buffer.from([0x0b]), Buffer.from(m, 'utf8'), Buffer.from([0x1c, 0x0d])]);

/** A connection and the time (ms after it opened) it was closed by the listener; null while open. */
async function open(): Promise<{ socket: net.Socket; closedAfter: () => number | null }> {
  const socket = net.connect({ host: '127.0.0.1', port: feed.port });
  const started = Date.now();
  let closed: number | null = null;
  socket.on('close', () => {
    closed = Date.now() - started;
  });
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.once('connect', resolve));
  return { socket, closedAfter: () => closed };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('senders trickling a frame byte by byte are closed after the idle timeout, and a RIS is then served', async () => {
  const slow = [await open(), await open()];
  for (const { socket } of slow) socket.write(Buffer.from([0x0b]));
  const trickle = setInterval(() => {
    for (const { socket } of slow) if (!socket.destroyed) socket.write('M');
  }, 200);
  try {
    await sleep(3500);
    for (const { closedAfter } of slow) {
      expect(closedAfter()).not.toBeNull();
      expect(closedAfter()!).toBeLessThan(3000);
    }
  } finally {
    clearInterval(trickle);
    for (const { socket } of slow) socket.destroy();
  }
  const ack = await send(feed.port, oru('IDLE-1'));
  expect([msa(ack, 1), msa(ack, 2)]).toEqual(['AA', 'IDLE-1']);
  expect(feed.logs.filter((l) => l.includes('MLLP connection idle: closed')).length).toBeGreaterThanOrEqual(2);
});

test('a connection bringing a whole message more often than the idle timeout stays open', async () => {
  const ris = await open();
  let acks = 0;
  ris.socket.on('data', (chunk: Buffer) => {
    acks += chunk.toString('latin1').split('\u001c').length - 1;
  });
  for (let i = 1; i <= 6; i++) {
    ris.socket.write(frame(oru(`KEEP-${i}`)));
    await sleep(500);
  }
  expect(acks).toBe(6);
  expect(ris.closedAfter()).toBeNull();
  ris.socket.destroy();
});
