// The report feed's MLLP port admits connections per address and in all (REPORTS_MLLP_MAX_CONNECTIONS_PER_HOST,
// REPORTS_MLLP_MAX_CONNECTIONS): one host holding silent connections takes only its own share, so the RIS on another
// address is still served; every refusal is counted by reason and logged. Real MLLP on loopback (127.0.0.1, .2 and .3
// are all this machine's), real Redis.
import net from 'node:net';
import { Hl7Message } from '@medplum/core';
import { buildOru } from '../../tools/synth/send-reports';
import { msa, sample, startFeed, waitFor, type Feed } from './helpers';

let feed: Feed;
beforeAll(async () => {
  feed = await startFeed({ REPORTS_MLLP_MAX_CONNECTIONS: '4', REPORTS_MLLP_MAX_CONNECTIONS_PER_HOST: '2' });
});
afterAll(async () => {
  await feed?.stop();
});

const oru = (controlId: string) => buildOru({ AccessionNumber: `ACC-${controlId}`, text: 'IMPRESSION: normal.' }, { now: Date.UTC(2026, 0, 6), controlId });
const frame = (m: string) => Buffer.concat([Buffer.from([0x0b]), Buffer.from(m, 'utf8'), Buffer.from([0x1c, 0x0d])]);

interface Conn {
  socket: net.Socket;
  closed: () => boolean;
  /** The first reply frame's text, once it came. */
  reply: () => Promise<string>;
}

/** A connection from `localAddress`, open once connected (a refused one is then closed by the listener at once). */
async function connect(localAddress: string): Promise<Conn> {
  const socket = net.connect({ host: '127.0.0.1', port: feed.port, localAddress });
  let closed = false;
  let data = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    data = Buffer.concat([data, chunk]);
  });
  socket.on('close', () => {
    closed = true;
  });
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.once('connect', resolve));
  return {
    socket,
    closed: () => closed,
    reply: () => waitFor(async () => (data.includes(0x1c) ? data.subarray(1, data.indexOf(0x1c)).toString('utf8') : null), 'an MLLP reply', 10_000),
  };
}

const metrics = async () => feed.registry.metrics();
const refused = async (reason: string) => sample(await metrics(), `neurotriage_api_reports_mllp_refused_connections_total{reason="${reason}"}`);

test('a host holding its share of silent connections is refused more; the RIS on another address is served', async () => {
  expect(await refused('peer-connection-limit')).toBe(0);
  const silent = [await connect('127.0.0.2'), await connect('127.0.0.2')];
  const third = await connect('127.0.0.2');
  await waitFor(async () => third.closed(), 'the third connection from one host to be closed');
  expect(silent.every((c) => !c.closed())).toBe(true);
  expect(await refused('peer-connection-limit')).toBe(1);
  expect(feed.logs.some((l) => /"listener":"mllp".*"peer":"127\.0\.0\.2","reason":"peer-connection-limit".*"connection refused"/.test(l))).toBe(true);

  const ris = await connect('127.0.0.1');
  ris.socket.write(frame(oru('CONN-1')));
  const ack = Hl7Message.parse(await ris.reply());
  expect([msa(ack, 1), msa(ack, 2)]).toEqual(['AA', 'CONN-1']);

  // One silent connection gone, the host has a slot again.
  silent[0].socket.destroy();
  await waitFor(async () => sample(await metrics(), 'neurotriage_api_reports_mllp_connections') === 2, 'the slot given back');
  const again = await connect('127.0.0.2');
  again.socket.write(frame(oru('CONN-2')));
  expect(msa(Hl7Message.parse(await again.reply()), 1)).toBe('AA');

  // The port's own limit: 4 open (2 + 1 from .2, the RIS), a fifth from a third address is refused.
  const fourth = await connect('127.0.0.3');
  const fifth = await connect('127.0.0.3');
  await waitFor(async () => fifth.closed(), 'the fifth connection to be closed');
  expect(fourth.closed()).toBe(false);
  expect(await refused('connection-limit')).toBe(1);
  for (const c of [silent[1], ris, again, fourth]) c.socket.destroy();
});
