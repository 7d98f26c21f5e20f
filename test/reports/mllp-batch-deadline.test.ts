// A large batch under the longest per-message deadline: the listener's deadline for the whole frame (the per-message
// deadline times the messages) passes 2^31 - 1 ms, which Node's timers cannot hold.
import { Hl7Message } from '@medplum/core';
import { buildOru } from '../../tools/synth/send-reports';
import { mllpExchange, msa, startFeed, type Feed } from './helpers';

let feed: Feed;

beforeAll(async () => {
  feed = await startFeed({ REPORTS_MLLP_ACK_TIMEOUT_MS: '600000', REPORTS_MLLP_MAX_BATCH_MESSAGES: '5000', REPORTS_MLLP_MAX_MESSAGE_KB: '8192' });
});
afterAll(async () => {
  await feed?.stop();
});

test('a batch whose frame deadline passes 2^31 - 1 ms is processed, not answered "resend later" at once', async () => {
  const n = 3600; // 600 s x 3601 > 2^31 - 1 ms
  const messages = Array.from({ length: n }, (_, i) => buildOru({ AccessionNumber: `ACC9${i}`, text: 'IMPRESSION:\nNo acute findings.' }, { now: Date.UTC(2026, 0, 5), controlId: `BIG-${i}`, status: 'F' }));
  const frame = ['BHS|^~\\&|NT_SYNTH_RIS|NT_SYNTH|NEUROTRIAGE|NT|20260105120000||||BIG-BATCH', ...messages, `BTS|${n}`].join('\r');
  expect(feed.inbound.feed.replyTimeoutMs({ kind: 'message', bytes: Buffer.from(frame) })).toBeGreaterThan(2 ** 31 - 1);
  const [reply] = await mllpExchange(feed.port, frame, { timeoutMs: 120_000 });
  // Each ACK (MSH ... up to the next MSH or BTS); before the fix every one was the backstop's AR, sent at once while
  // the messages were still being stored.
  const acks = reply.toString().split(/\r(?=MSH\||BTS\|)/).filter((s) => s.startsWith('MSH|'));
  expect(acks).toHaveLength(n);
  expect(new Set(acks.map((a) => msa(Hl7Message.parse(a), 1)))).toEqual(new Set(['AA']));
}, 180_000);
