// A sender that writes report messages without waiting for their ACKs (or never reads them) must not grow the API's
// memory: MLLP is request/reply, so the listener reads nothing more from a connection until the reply to the
// message it holds has gone out, and the sender waits in TCP. Real MLLP on loopback, real Redis, and the flooding
// sender in a child process so its own buffers are not counted as the API's.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildOru } from '../../tools/synth/send-reports';
import { msa, send, startFeed, waitFor, type Feed } from './helpers';

const FRAMES = 300;

/** Writes `count` copies of the framed message in the file as fast as TCP takes them; reads nothing until told "read". */
const SENDER = `
const fs = require('node:fs');
const net = require('node:net');
const [port, file, count] = process.argv.slice(1);
const frame = Buffer.concat([Buffer.from([0x0b]), fs.readFileSync(file), Buffer.from([0x1c, 0x0d])]);
const socket = net.connect({ host: '127.0.0.1', port: Number(port) });
socket.pause();
let sent = 0;
const write = () => {
  while (sent < Number(count)) {
    sent += 1;
    if (!socket.write(frame)) return void socket.once('drain', write);
  }
};
socket.on('connect', write);
let acks = 0;
let accepted = 0;
socket.on('data', (chunk) => {
  const text = chunk.toString('latin1');
  acks += text.split('\\x1c').length - 1;
  accepted += text.split('MSA|AA|').length - 1;
  if (acks >= Number(count)) console.log('acks ' + acks + ' accepted ' + accepted);
});
process.stdin.on('data', () => socket.resume());
socket.on('error', (err) => console.log('error ' + err.code));
`;

let feed: Feed;
let sender: ChildProcess | undefined;

beforeAll(async () => {
  feed = await startFeed({ REPORTS_MLLP_MAX_MESSAGE_KB: '1024' });
});
afterAll(async () => {
  sender?.kill();
  await feed?.stop();
});

test('a sender that pipelines 300 MiB of messages without reading ACKs: memory stays bounded, others are served, every message is answered once it reads', async () => {
  // About 1000 KiB each, all the same message: the first is stored, the rest are duplicates (AA, nothing stored).
  const file = path.join(feed.dataDir, 'big.hl7');
  writeFileSync(file, buildOru({ AccessionNumber: 'ACC-FLOOD', text: 'x'.repeat(1000 * 1024) }, { now: Date.UTC(2026, 0, 5), controlId: 'FLOOD-1' }));
  const before = process.memoryUsage().arrayBuffers;
  sender = spawn(process.execPath, ['-e', SENDER, String(feed.port), file, String(FRAMES)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  sender.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });

  let peak = 0;
  const until = Date.now() + 5000;
  while (Date.now() < until) {
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - before);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  // Queued in memory, the 300 MiB the sender wrote would all be here within these seconds.
  expect(peak).toBeLessThan(96 * 1024 * 1024);

  // Another sender is answered meanwhile.
  const other = await send(feed.port, buildOru({ AccessionNumber: 'ACC-OTHER', text: 'IMPRESSION: normal.' }, { now: Date.UTC(2026, 0, 5), controlId: 'OTHER-1' }));
  expect([msa(other, 1), msa(other, 2)]).toEqual(['AA', 'OTHER-1']);

  // Once it reads its ACKs, every message it wrote is answered.
  sender.stdin!.write('read\n');
  await waitFor(async () => out.includes('acks'), 'the flooding sender to have every ACK', 90_000);
  expect(out.trim()).toBe(`acks ${FRAMES} accepted ${FRAMES}`);
}, 120_000);
