// The RIS report feed over real MLLP on loopback, with real Redis and a real DATA_DIR: ACK only after the durable
// write, the same message twice stored once, malformed messages answered AE/AR with the reason and kept for
// replay (files mode 0600 plus a Redis index), replay after a fix, a report held until its study arrives and then
// matched, held reports expiring into the rejected store, the journal restoring what Redis lost, AR "try again"
// when the write cannot finish in time, and no report text or patient data in any log line or metric.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Hl7Message } from '@medplum/core';
import { hl7Segment } from '../../shared/hl7-text';
import { readReport, reportKeys } from '../../shared/reports';
import { hl7MessageKey } from '../../services/api/inbound';
import { buildOru, createReportSender } from '../../tools/synth/send-reports';
import { mllpExchange, msa, receiveStudy, sample, scoreStudy, send, startFeed, waitFor, type Feed } from './helpers';

const TEXT = 'FINDINGS:\nCANARY-FINDING restricted diffusion in the left MCA territory.\n\nIMPRESSION:\nAcute left MCA infarct.';
const PATIENT = 'PID|1||CANARY-PID-123^^^HOSP^MR||CANARYSURNAME^CANARYGIVEN||19600101|F';

/** An ORU from the PACS simulator's builder with a patient segment added, as a real RIS sends it. */
function oru(accession: string, controlId: string, text = TEXT, status: 'F' | 'C' | 'P' = 'F'): string {
  const [msh, ...rest] = buildOru({ AccessionNumber: accession, text }, { now: Date.UTC(2026, 0, 5), controlId, status }).split('\r');
  return [msh, PATIENT, ...rest].join('\r');
}
const TRY_AGAIN = 'temporarily unable to store the report; resend later';
const MSH = (controlId: string) => `MSH|^~\\&|RIS|NT_SYNTH|NEUROTRIAGE||20260105120000||ORU^R01^ORU_R01|${controlId}|P|2.5.1`;

let feed: Feed;

beforeAll(async () => {
  feed = await startFeed({ REPORTS_MLLP_MAX_MESSAGE_KB: '64', REPORTS_MLLP_ACK_TIMEOUT_MS: '1000', REPORTS_MLLP_MAX_BATCH_MESSAGES: '5' });
});
afterAll(async () => {
  await feed?.stop();
});

const metrics = () => feed.registry.metrics();

test('every metric label exists at 0 before the first message', async () => {
  const text = await metrics();
  expect(sample(text, 'neurotriage_api_reports_received_total{source="hl7"}')).toBe(0);
  expect(sample(text, 'neurotriage_api_reports_rejected_total{source="hl7",reason="no-accession"}')).toBe(0);
  expect(sample(text, 'neurotriage_api_reports_matched_total{when="study"}')).toBe(0);
  expect(sample(text, 'neurotriage_api_reports_duplicates_total{source="api"}')).toBe(0);
});

test('a valid ORU^R01 for a received study: AA after the journal and Redis have it, filed under the study', async () => {
  await receiveStudy(feed.client, '1.2.3.100', 'ACC100');
  await scoreStudy(feed.client, '1.2.3.100');
  await waitFor(async () => (await feed.client.sismember(reportKeys.accession('ACC100'), '1.2.3.100')) === 1, 'the study indexed');
  // Sent by the PACS simulator's client (@medplum/hl7 Hl7Client), as npm run synth -- --reports-to does.
  const sender = createReportSender({ host: '127.0.0.1', port: feed.port });
  try {
    expect(await sender.send({ AccessionNumber: 'ACC100', text: TEXT })).toBe('AA');
  } finally {
    await sender.close();
  }
  const stored = await readReport(feed.client, '1.2.3.100');
  expect(stored).toMatchObject({ AccessionNumber: 'ACC100', StudyInstanceUID: '1.2.3.100', status: 'F', source: 'hl7', text: TEXT });
  const journal = path.join(feed.dataDir, 'reports', 'journal');
  const [file] = readdirSync(journal);
  expect(statSync(path.join(journal, file)).mode & 0o777).toBe(0o600);
  expect(readFileSync(path.join(journal, file), 'utf8')).toContain('ACC100');
  expect(await feed.client.zscore(reportKeys.reported(), '1.2.3.100')).not.toBeNull();
});

test('the same message twice: AA both times, stored once', async () => {
  await receiveStudy(feed.client, '1.2.3.101', 'ACC101');
  await scoreStudy(feed.client, '1.2.3.101');
  await waitFor(async () => (await feed.client.sismember(reportKeys.accession('ACC101'), '1.2.3.101')) === 1, 'the study indexed');
  const before = await metrics();
  const first = await send(feed.port, oru('ACC101', 'DUP-1'));
  const stored = await readReport(feed.client, '1.2.3.101');
  const second = await send(feed.port, oru('ACC101', 'DUP-1'));
  expect([msa(first, 1), msa(second, 1)]).toEqual(['AA', 'AA']);
  expect([msa(first, 2), msa(second, 2)]).toEqual(['DUP-1', 'DUP-1']);
  expect(msa(second, 3)).toMatch(/duplicate/);
  expect(await readReport(feed.client, '1.2.3.101')).toEqual(stored);
  const after = await metrics();
  const delta = (series: string) => sample(after, series) - sample(before, series);
  expect(delta('neurotriage_api_reports_stored_total{source="hl7"}')).toBe(1);
  expect(delta('neurotriage_api_reports_duplicates_total{source="hl7"}')).toBe(1);
  expect(delta('neurotriage_api_reports_received_total{source="hl7"}')).toBe(2);
});

test('the same control id again with another report (a RIS whose counter restarted) is stored, not taken for a duplicate', async () => {
  await receiveStudy(feed.client, '1.2.3.103', 'ACC103');
  await receiveStudy(feed.client, '1.2.3.104', 'ACC104');
  for (const uid of ['1.2.3.103', '1.2.3.104']) await scoreStudy(feed.client, uid);
  await waitFor(async () => (await feed.client.sismember(reportKeys.accession('ACC104'), '1.2.3.104')) === 1, 'the study indexed');
  const first = await send(feed.port, oru('ACC103', 'REUSED-1'));
  expect(msa(first, 3)).toMatch(/matched/);
  // Weeks later the RIS's counter has come round to REUSED-1 again, for another patient's study.
  const second = await send(feed.port, oru('ACC104', 'REUSED-1', 'IMPRESSION:\nNo acute intracranial abnormality.'));
  expect([msa(second, 1), msa(second, 3)]).toEqual(['AA', '1 report(s): matched']);
  expect((await readReport(feed.client, '1.2.3.104'))?.text).toBe('IMPRESSION:\nNo acute intracranial abnormality.');
  // A true resend of either is still a duplicate.
  expect(msa(await send(feed.port, oru('ACC104', 'REUSED-1', 'IMPRESSION:\nNo acute intracranial abnormality.')), 3)).toMatch(/duplicate/);
  expect(msa(await send(feed.port, oru('ACC103', 'REUSED-1')), 3)).toMatch(/duplicate/);
});

test.each([
  ['no OBR', () => [MSH('BAD-1'), PATIENT, 'OBX|1|TX|x||CANARY-FINDING text'].join('\r'), 'AE', 'no-obr', /no OBR segment/],
  ['no accession number', () => [MSH('BAD-2'), PATIENT, hl7Segment('OBR', { 1: '1', 25: 'F' }), 'OBX|1|TX|x||CANARY-FINDING text'].join('\r'), 'AE', 'no-accession', /no accession number in OBR-3, OBR-18, ORC-3/],
  ['a bad MSH', () => `MSH|garbled header BAD-3\r${PATIENT}\rOBX|1|TX|x||CANARY-FINDING text`, 'AR', 'bad-msh', /MSH must begin/],
  ['not an ORU', () => [MSH('BAD-4').replace('ORU^R01^ORU_R01', 'ADT^A08^ADT_A01'), PATIENT].join('\r'), 'AR', 'unsupported-message', /ORU\^R01 only/],
  ['a facility not allowed', () => oru('ACC-X', 'BAD-5').replace('|NT_SYNTH|', '|ELSEWHERE|'), 'AR', 'facility-not-allowed', /ELSEWHERE" is not in REPORTS_MLLP_ALLOWED_FACILITIES/],
])('%s: %s with the reason in MSA-3 and ERR, kept for replay as a 0600 file and a Redis entry', async (_what, message, code, reason, words) => {
  const before = await feed.client.zcard(reportKeys.rejected());
  const ack = await send(feed.port, message());
  expect(msa(ack, 1)).toBe(code);
  expect(msa(ack, 3)).toMatch(words);
  const err = ack.getSegment('ERR');
  expect(err?.getComponent(3, 3)).toBe('HL70357');
  expect(err?.getField(4)?.toString()).toBe('E');
  const id = /kept as ([0-9a-z]+-[0-9a-f]+)/.exec(msa(ack, 3))?.[1];
  expect(id).toBeDefined();
  expect(await feed.client.zcard(reportKeys.rejected())).toBe(before + 1);
  expect(await feed.client.hget(reportKeys.rejectedEntry(id!), 'reason')).toBe(reason);
  const file = path.join(feed.dataDir, 'reports', 'rejected', `${id}.hl7`);
  expect(statSync(file).mode & 0o777).toBe(0o600);
  expect(readFileSync(file, 'utf8')).toBe(message());
});

test('a report whose text is only in NTE segments (no OBX text) is stored, in order, escapes decoded; OBX text wins when both come', async () => {
  for (const [uid, acc] of [['1.2.3.600', 'ACC600'], ['1.2.3.601', 'ACC601']]) {
    await receiveStudy(feed.client, uid, acc);
    await scoreStudy(feed.client, uid);
    await waitFor(async () => (await feed.client.sismember(reportKeys.accession(acc), uid)) === 1, 'the study indexed');
  }
  // NTE after PID is the patient's notes and NTE-2 P the orderer's: neither is report text.
  const nteOnly = [
    MSH('NTE-1'), PATIENT, 'NTE|1||CANARY-PATIENT-NOTE', hl7Segment('OBR', { 1: '1', 3: 'ACC600', 25: 'F' }),
    'NTE|1|P|CANARY-CLINICAL-QUESTION ?stroke',
    'NTE|2|L|FINDINGS:\\.br\\CANARY-FINDING restricted diffusion in the left MCA territory.',
    'NTE|3|L|',
    'NTE|4|L|IMPRESSION:~Acute left MCA infarct \\T\\ no haemorrhage.',
  ].join('\r');
  const ack = await send(feed.port, nteOnly);
  expect([msa(ack, 1), msa(ack, 3)]).toEqual(['AA', '1 report(s): matched']);
  expect((await readReport(feed.client, '1.2.3.600'))?.text)
    .toBe('FINDINGS:\nCANARY-FINDING restricted diffusion in the left MCA territory.\n\nIMPRESSION:\nAcute left MCA infarct & no haemorrhage.');

  const both = [
    MSH('NTE-2'), PATIENT, hl7Segment('OBR', { 1: '1', 3: 'ACC601', 25: 'F' }), 'NTE|1|L|Dictated by CANARY-RADIOLOGIST',
    'OBX|1|TX|18782-3^Findings^LN||No acute intracranial abnormality.', 'NTE|1|L|CANARY-COMMENT on the OBX',
  ].join('\r');
  expect(msa(await send(feed.port, both), 1)).toBe('AA');
  expect((await readReport(feed.client, '1.2.3.601'))?.text).toBe('FINDINGS:\nNo acute intracranial abnormality.');
});

test('no text in any OBX nor in an NTE after the OBR is still AE no-text', async () => {
  const none = [MSH('NTE-3'), PATIENT, 'NTE|1||CANARY-PATIENT-NOTE', hl7Segment('OBR', { 1: '1', 3: 'ACC602', 25: 'F' }), 'NTE|1|L|  ', 'NTE|2|P|CANARY-CLINICAL-QUESTION'].join('\r');
  const ack = await send(feed.port, none);
  expect(msa(ack, 1)).toBe('AE');
  expect(msa(ack, 3)).toMatch(/no OBX of type TX, FT or ST nor NTE after the OBR carries report text/);
  expect(ack.getSegment('ERR')?.getComponent(3, 1)).toBe('101');
});

test('the ACK repeats MSH-18 and is written in that character set; with MSH-18 empty it names none', async () => {
  // MSH-3 (sending application, mirrored into the ACK's MSH-5) with a letter outside ASCII, in the declared bytes.
  const header = (app: string, controlId: string, charset: string) => `MSH|^~\\&|${app}|NT_SYNTH|NEUROTRIAGE||20260105120000||ORU^R01^ORU_R01|${controlId}|P|2.5.1||||||${charset}`;
  const body = (acc: string) => `\r${hl7Segment('OBR', { 1: '1', 3: acc, 25: 'F' })}\rOBX|1|TX|x||No acute abnormality.`;
  const cases: Array<[string, string, Buffer]> = [
    ['UNICODE UTF-8', 'CS-1', Buffer.from('RADIOLOGÍA', 'utf8')],
    ['8859/1', 'CS-2', Buffer.from('RADIOLOGÍA', 'latin1')],
    // Š is 0xA6 in ISO 8859-15 (¦ in 8859-1).
    ['8859/15', 'CS-3', Buffer.from([0xa6, ...Buffer.from('KOFJA')])],
  ];
  for (const [charset, controlId, appBytes] of cases) {
    const [before, after] = header('@', controlId, charset).split('@');
    const message = Buffer.concat([Buffer.from(before, 'latin1'), appBytes, Buffer.from(`${after}${body('ACC700')}`, 'latin1')]);
    const [reply] = await mllpExchange(feed.port, message);
    const msh = reply.subarray(0, reply.indexOf(0x0d));
    const fields = msh.toString('latin1').split('|');
    expect(fields[17]).toBe(charset);
    expect(fields[1]).toBe('^~\\&');
    // MSH-5 of the ACK is the message's MSH-3, byte for byte in the declared character set.
    expect(Buffer.from(fields[4], 'latin1')).toEqual(appBytes);
    expect(reply.toString('latin1')).toMatch(new RegExp(`\rMSA\\|AA\\|${controlId}\\|`));
  }
  // An AE answer repeats it too.
  const [ae] = await mllpExchange(feed.port, Buffer.from(`${header('RIS', 'CS-4', '8859/1')}\r${hl7Segment('OBR', { 1: '1', 3: 'ACC701', 25: 'F' })}`, 'latin1'));
  expect(ae.toString('latin1').split('\r')[0].split('|')[17]).toBe('8859/1');
  expect(ae.toString('latin1')).toMatch(/\rMSA\|AE\|CS-4\|/);
  // None declared: none named (the HL7 default), as before.
  const [plain] = await mllpExchange(feed.port, Buffer.from(`${header('RIS', 'CS-5', '')}${body('ACC702')}`, 'latin1'));
  expect(plain.toString('latin1').split('\r')[0].split('|')[17] ?? '').toBe('');
});

test('the bad-MSH ACK still names the control id when the header shows one; bytes that are no message at all are answered AR', async () => {
  const [reply] = await mllpExchange(feed.port, 'hello, is this the RIS?');
  expect(reply.toString()).toMatch(/\rMSA\|AR\|\|the message does not start with an MSH segment/);
  const ack = await send(feed.port, `MSH|^~\\&|RIS|NT_SYNTH|NT||2026||ORU^R01|CTRL-77|P|9.9\rOBR|1`);
  expect([msa(ack, 1), msa(ack, 2)]).toEqual(['AR', 'CTRL-77']);
});

test('the ACK to a message that cannot be read repeats its MSH-10 byte for byte, whatever its character set', async () => {
  const header = (controlId: string, charset: string) => `MSH|^~\\&|RIS|NT_SYNTH|NT||2026||ORU^R01|${controlId}|P|2.5.1||||||${charset}`;
  const oversize = `\rOBR|1||ACC-BIG2\rOBX|1|TX|x||${'x'.repeat(70 * 1024)}`;
  const cases: Array<[string, Buffer, string, string]> = [
    // Larger than REPORTS_MLLP_MAX_MESSAGE_KB (AR, only its head read), in UTF-8: two-byte letters, one of them
    // ending in 0xA0 (à is C3 A0), a byte a trim of the text read as ISO 8859-1 would take for a space.
    ['UNICODE UTF-8', Buffer.from('BIG-Ü-à', 'utf8'), oversize, 'AR'],
    ['', Buffer.from('BIG-Ü', 'utf8'), oversize, 'AR'],
    // The same in ISO 8859-1: one byte each.
    ['8859/1', Buffer.from('BIG-Ü', 'latin1'), oversize, 'AR'],
    // Not UTF-8 although UTF-8 is what an empty MSH-18 means here (AE unsupported-charset): the sender's bytes still.
    ['', Buffer.from('CTRL-Ü', 'latin1'), '\rOBR|1', 'AE'],
  ];
  for (const [charset, controlId, rest, code] of cases) {
    const [before, after] = header('@', charset).split('@');
    const message = Buffer.concat([Buffer.from(before, 'latin1'), controlId, Buffer.from(`${after}${rest}`, 'latin1')]);
    const [reply] = await mllpExchange(feed.port, message);
    const msa = reply.subarray(reply.indexOf('\rMSA|') + 1);
    const expected = Buffer.concat([Buffer.from(`MSA|${code}|`), controlId, Buffer.from('|')]);
    expect(msa.subarray(0, expected.length).toString('hex')).toBe(expected.toString('hex'));
  }
});

test('replay after fixing: a corrected message is stored and leaves the rejected store', async () => {
  const ack = await send(feed.port, [MSH('FIX-1'), PATIENT, hl7Segment('OBR', { 1: '1', 25: 'F' }), 'OBX|1|TX|x||Corrected later.'].join('\r'));
  expect(msa(ack, 1)).toBe('AE');
  const id = /kept as (\S+)\)/.exec(msa(ack, 3))![1];
  // As kept it still fails, and says why; it stays.
  const again = await feed.inbound.feed.replay(id);
  expect(again).toMatchObject({ ok: false, outcome: { reason: 'no-accession' }, entry: { replays: 1 } });
  await receiveStudy(feed.client, '1.2.3.102', 'ACC102');
  await scoreStudy(feed.client, '1.2.3.102');
  await waitFor(async () => (await feed.client.sismember(reportKeys.accession('ACC102'), '1.2.3.102')) === 1, 'the study indexed');
  const kept = await feed.inbound.rejected.get(id);
  const corrected = kept!.payload.toString().replace(hl7Segment('OBR', { 1: '1', 25: 'F' }), hl7Segment('OBR', { 1: '1', 3: 'ACC102', 25: 'F' }));
  const replayed = await feed.inbound.feed.replay(id, corrected);
  expect(replayed).toMatchObject({ ok: true, outcome: { ack: 'AA', reports: [{ AccessionNumber: 'ACC102', outcome: 'matched', StudyInstanceUIDs: ['1.2.3.102'] }] } });
  expect((await readReport(feed.client, '1.2.3.102'))?.text).toBe('Corrected later.');
  expect(await feed.inbound.rejected.get(id)).toBeNull();
  expect(await feed.client.zscore(reportKeys.rejected(), id)).toBeNull();
});

test('a report before its study is held, then matched when the study is received and scored', async () => {
  const ack = await send(feed.port, oru('ACC200', 'EARLY-1'));
  expect(msa(ack, 1)).toBe('AA');
  expect(msa(ack, 3)).toMatch(/held/);
  expect(await feed.client.exists(reportKeys.held('ACC200'))).toBe(1);
  expect(await feed.client.zscore(reportKeys.holding(), 'ACC200')).not.toBeNull();
  // A preliminary report for the same accession never replaces the held final one.
  expect(msa(await send(feed.port, oru('ACC200', 'EARLY-2', 'Preliminary: CANARY-FINDING ?', 'P')), 1)).toBe('AA');
  await receiveStudy(feed.client, '1.2.3.200', 'ACC200');
  await scoreStudy(feed.client, '1.2.3.200');
  const stored = await waitFor(() => readReport(feed.client, '1.2.3.200'), 'the held report filed');
  expect(stored).toMatchObject({ status: 'F', text: TEXT, StudyInstanceUID: '1.2.3.200', messageControlId: 'EARLY-1' });
  expect(await feed.client.exists(reportKeys.held('ACC200'))).toBe(0);
  expect(await feed.client.zscore(reportKeys.holding(), 'ACC200')).toBeNull();
  expect(sample(await metrics(), 'neurotriage_api_reports_matched_total{when="study"}')).toBeGreaterThanOrEqual(1);
  // A correction later replaces the final.
  expect(msa(await send(feed.port, oru('ACC200', 'LATER-1', 'Corrected: no infarct.', 'C')), 3)).toMatch(/matched/);
  expect((await readReport(feed.client, '1.2.3.200'))?.status).toBe('C');
});

test('a study received while no API ran is found by the sweep', async () => {
  expect(msa(await send(feed.port, oru('ACC300', 'SWEEP-1')), 3)).toMatch(/held/);
  await receiveStudy(feed.client, '1.2.3.300', 'ACC300');
  // No scored event: the periodic sweep reads the study hashes.
  const r = await feed.inbound.intake.sweep();
  expect(r.matched).toBe(1);
  expect((await readReport(feed.client, '1.2.3.300'))?.text).toBe(TEXT);
});

test('two messages written at once get two ACKs in order; an oversize one gets AR and its head is kept', async () => {
  const big = oru('ACC-BIG', 'BIG-1', 'x'.repeat(70 * 1024));
  const replies = await mllpExchange(feed.port, [oru('ACC400', 'PIPE-1'), oru('ACC401', 'PIPE-2'), big]);
  const acks = replies.map((r) => r.toString());
  expect(acks[0]).toMatch(/\rMSA\|AA\|PIPE-1\|/);
  expect(acks[1]).toMatch(/\rMSA\|AA\|PIPE-2\|/);
  expect(acks[2]).toMatch(/\rMSA\|AR\|BIG-1\|the message is larger than REPORTS_MLLP_MAX_MESSAGE_KB/);
  const id = /kept as (\S+)\)/.exec(acks[2])![1];
  const kept = await feed.inbound.rejected.get(id);
  expect(kept?.entry).toMatchObject({ reason: 'too-large', truncated: true, bytes: 64 * 1024 });
});

test('a frame the sender gave up on (a new <VT> before its <FS>) is dropped: the next message is answered as itself', async () => {
  // MLLP content never holds <VT>: one inside a frame starts a new one. Glued to the cut-off message, the next
  // message (its PID too) was read as that one's text, answered with the cut-off one's control id, and never acked.
  const cut = oru('ACC402', 'CUT-1').slice(0, 150);
  const whole = oru('ACC403', 'WHOLE-1');
  const before = sample(await metrics(), 'neurotriage_api_reports_rejected_total{source="hl7",reason="bad-text"}');
  const [reply] = await mllpExchange(feed.port, Buffer.from(`\x0b${cut}\x0b${whole}\x1c\r`), { raw: true, replies: 1 });
  const ack = Hl7Message.parse(reply.toString());
  expect([msa(ack, 1), msa(ack, 2)]).toEqual(['AA', 'WHOLE-1']);
  expect(JSON.parse((await feed.client.get(reportKeys.held('ACC403')))!)).toMatchObject({ text: TEXT });
  expect(await feed.client.exists(reportKeys.held('ACC402'))).toBe(0);
  expect(sample(await metrics(), 'neurotriage_api_reports_rejected_total{source="hl7",reason="bad-text"}')).toBe(before);
});

test('two messages in one frame (not a batch) are refused AR under the first one\'s control id; neither is filed', async () => {
  // Read as one message, both reports went under the first one's control id with one ACK; a second message with
  // delimiters of its own (its PID too) was stored as text of the first report.
  for (const second of [oru('ACC405', 'TWO-2'), oru('ACC405', 'TWO-2').replace(/\|/g, '#')]) {
    const [reply] = await mllpExchange(feed.port, Buffer.from(`\x0b${oru('ACC404', 'TWO-1')}\r${second}\x1c\r`), { raw: true, replies: 1 });
    const ack = Hl7Message.parse(reply.toString());
    expect([msa(ack, 1), msa(ack, 2)]).toEqual(['AR', 'TWO-1']);
    expect(ack.getSegment('ERR')?.toString()).toContain('more than one message');
  }
  expect(await feed.client.exists(reportKeys.held('ACC404'))).toBe(0);
  expect(await feed.client.exists(reportKeys.held('ACC405'))).toBe(0);
});

test('a sender that shuts down its side right after writing (half-close) still gets every ACK, then the connection closes', async () => {
  const frame = (m: string) => Buffer.concat([Buffer.from([0x0b]), Buffer.from(m, 'utf8'), Buffer.from([0x1c, 0x0d])]);
  const { replies, closed } = await new Promise<{ replies: string; closed: boolean }>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port: feed.port, allowHalfOpen: true });
    let replies = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ replies, closed: false });
    }, 10_000);
    socket.on('connect', () => socket.end(Buffer.concat([frame(oru('ACC410', 'HALF-1')), frame(oru('ACC411', 'HALF-2'))])));
    socket.on('data', (chunk: Buffer) => {
      replies += chunk.toString('utf8');
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ replies, closed: true });
    });
  });
  expect(closed).toBe(true);
  const acks = replies.split('\u001c\r').filter(Boolean);
  expect(acks).toHaveLength(2);
  expect(acks[0]).toMatch(/\rMSA\|AA\|HALF-1\|/);
  expect(acks[1]).toMatch(/\rMSA\|AA\|HALF-2\|/);
  expect(await feed.client.exists(reportKeys.held('ACC411'))).toBe(1);
});

test('when the write cannot finish within REPORTS_MLLP_ACK_TIMEOUT_MS: AR "resend later"; the resend is then a duplicate', async () => {
  await feed.client.call('CLIENT', 'PAUSE', '2500', 'WRITE');
  const ack = await send(feed.port, oru('ACC500', 'SLOW-1'));
  expect(msa(ack, 1)).toBe('AR');
  expect(msa(ack, 2)).toBe('SLOW-1');
  expect(msa(ack, 3)).toMatch(/resend later/);
  await waitFor(async () => (await feed.client.exists(reportKeys.held('ACC500'))) === 1, 'the late write to land');
  const resent = await send(feed.port, oru('ACC500', 'SLOW-1'));
  expect([msa(resent, 1), msa(resent, 3)]).toEqual(['AA', '1 report(s): duplicate']);
});

test('held reports expire into the rejected store, never dropped, and can be replayed', async () => {
  const short = await startFeed({ REPORTS_HOLD_DAYS: '0.00001' }); // about 0.9 s; its own Redis and DATA_DIR
  try {
    expect(msa(await send(short.port, oru('ACC600', 'EXPIRE-1')), 3)).toMatch(/held/);
    await new Promise((r) => setTimeout(r, 1200));
    const r = await short.inbound.intake.sweep();
    expect(r.expired).toBe(1);
    expect(await short.client.exists(reportKeys.held('ACC600'))).toBe(0);
    const { items } = await short.inbound.rejected.list(100);
    expect(items).toHaveLength(1);
    const entry = items[0];
    expect(entry).toMatchObject({ kind: 'report', reason: 'no-study' });
    expect(JSON.parse((await short.inbound.rejected.get(entry.id))!.payload.toString())).toMatchObject({ AccessionNumber: 'ACC600', text: TEXT });
    expect(sample(await short.registry.metrics(), 'neurotriage_api_reports_rejected_total{source="hl7",reason="no-study"}')).toBe(1);
    await receiveStudy(short.client, '1.2.3.600', 'ACC600');
    await scoreStudy(short.client, '1.2.3.600');
    await waitFor(async () => (await short.client.sismember(reportKeys.accession('ACC600'), '1.2.3.600')) === 1, 'the study indexed');
    const replayed = await short.inbound.feed.replay(entry.id);
    expect(replayed?.outcome.reports[0]).toMatchObject({ outcome: 'matched', StudyInstanceUIDs: ['1.2.3.600'] });
    expect((await readReport(short.client, '1.2.3.600'))?.text).toBe(TEXT);
  } finally {
    await short.stop();
  }
});

test('a restart replays the journal: reports Redis lost are stored again, the rest are no-ops', async () => {
  await receiveStudy(feed.client, '1.2.3.700', 'ACC700');
  await scoreStudy(feed.client, '1.2.3.700');
  await waitFor(async () => (await feed.client.sismember(reportKeys.accession('ACC700'), '1.2.3.700')) === 1, 'the study indexed');
  expect(msa(await send(feed.port, oru('ACC700', 'LOST-1')), 1)).toBe('AA');
  // What an appendfsync-everysec Redis can lose in a crash: the report and its message id.
  const seen = reportKeys.seen(hl7MessageKey({ sendingApplication: 'NT_SYNTH_RIS', sendingFacility: 'NT_SYNTH', controlId: 'LOST-1' }, { AccessionNumber: 'ACC700', status: 'F', text: TEXT }));
  expect(await feed.client.exists(seen)).toBe(1);
  await feed.client.del(reportKeys.report('1.2.3.700'), seen);
  const again = await startFeed({}, { redis: feed.redis, dataDir: feed.dataDir });
  try {
    expect((await readReport(again.client, '1.2.3.700'))?.text).toBe(TEXT);
    expect(again.logs.join('\n')).toMatch(/report journal replayed/);
  } finally {
    await again.stopFeed();
  }
});

/** An HL7 batch of these messages: BHS (and FHS when asked) with control ids, BTS-1 the count unless given. */
function batchOf(messages: string[], opts: { fhs?: boolean; count?: number; eol?: string } = {}): string {
  const eol = opts.eol ?? '\r';
  const segments = [
    ...(opts.fhs ? ['FHS|^~\\&|NT_SYNTH_RIS|NT_SYNTH|NEUROTRIAGE|NT|20260105120000||||FILE-1'] : []),
    'BHS|^~\\&|NT_SYNTH_RIS|NT_SYNTH|NEUROTRIAGE|NT|20260105120000||||BATCH-1',
    ...messages,
    `BTS|${opts.count ?? messages.length}`,
    ...(opts.fhs ? ['FTS|1'] : []),
  ];
  return segments.join(eol) + eol;
}

/** A batch of ACKs: its envelope segments and each ACK (MSH ... up to the next MSH or trailer) parsed. */
function readBatchAck(reply: Buffer): { envelope: string[]; acks: Hl7Message[] } {
  const envelope: string[] = [];
  const acks: string[][] = [];
  for (const seg of reply.toString('utf8').split('\r')) {
    if (/^(FHS|BHS|BTS|FTS)/.test(seg)) envelope.push(seg);
    else if (seg.startsWith('MSH')) acks.push([seg]);
    else acks[acks.length - 1].push(seg);
  }
  return { envelope, acks: acks.map((a) => Hl7Message.parse(a.join('\r'))) };
}

test('a batch (FHS/BHS ... BTS/FTS) in one frame: each message stored or refused as alone, one batch of ACKs in order', async () => {
  await receiveStudy(feed.client, '1.2.3.800', 'ACC800');
  await scoreStudy(feed.client, '1.2.3.800');
  await waitFor(async () => (await feed.client.sismember(reportKeys.accession('ACC800'), '1.2.3.800')) === 1, 'the study indexed');
  const noAccession = [MSH('BATCH-BAD'), PATIENT, hl7Segment('OBR', { 1: '1', 25: 'F' }), 'OBX|1|TX|x||CANARY-FINDING text'].join('\r');
  const before = await metrics();
  const rejectedBefore = await feed.client.zcard(reportKeys.rejected());
  // A single message right behind the batch in the same write: answered after it, in order.
  const [reply, single] = await mllpExchange(feed.port, [batchOf([oru('ACC800', 'B-1'), oru('ACC801', 'B-2'), noAccession, oru('ACC800', 'B-1')], { fhs: true }), oru('ACC802', 'AFTER-1')]);
  const { envelope, acks } = readBatchAck(reply);
  expect(envelope).toEqual([
    expect.stringMatching(/^FHS\|\^~\\&\|NEUROTRIAGE\|NT\|NT_SYNTH_RIS\|NT_SYNTH\|\d{14}\.\d{3}\+0000\|\|\|\|FILE-1\|FILE-1$/),
    expect.stringMatching(/^BHS\|\^~\\&\|NEUROTRIAGE\|NT\|NT_SYNTH_RIS\|NT_SYNTH\|\d{14}\.\d{3}\+0000\|\|\|\|BATCH-1\|BATCH-1$/),
    'BTS|4',
    'FTS|1',
  ]);
  expect(acks.map((a) => [msa(a, 1), msa(a, 2)])).toEqual([['AA', 'B-1'], ['AA', 'B-2'], ['AE', 'BATCH-BAD'], ['AA', 'B-1']]);
  expect(acks.map((a) => msa(a, 3).replace(/kept as \S+\)/, 'kept)'))).toEqual([
    '1 report(s): matched', '1 report(s): held', 'no accession number in OBR-3, OBR-18, ORC-3 of OBR 1 (kept)', '1 report(s): duplicate',
  ]);
  // Each ACK as a message alone would have it: its header mirrored, ERR on the AE.
  expect(acks[0].header.getField(9)?.toString()).toBe('ACK^R01^ACK');
  expect(acks[2].getSegment('ERR')?.getField(2)?.toString()).toBe('OBR^1^3');
  expect(msa(Hl7Message.parse(single.toString()), 2)).toBe('AFTER-1');
  expect((await readReport(feed.client, '1.2.3.800'))?.messageControlId).toBe('B-1');
  expect(await feed.client.exists(reportKeys.held('ACC801'))).toBe(1);
  // The bad one is kept on its own (its bytes, not the batch's), for replay like any other.
  expect(await feed.client.zcard(reportKeys.rejected())).toBe(rejectedBefore + 1);
  const id = /kept as (\S+)\)/.exec(msa(acks[2], 3))![1];
  expect((await feed.inbound.rejected.get(id))?.payload.toString()).toBe(noAccession);
  const after = await metrics();
  const delta = (series: string) => sample(after, series) - sample(before, series);
  expect(delta('neurotriage_api_reports_received_total{source="hl7"}')).toBe(5);
  expect(delta('neurotriage_api_reports_stored_total{source="hl7"}')).toBe(3);
  expect(delta('neurotriage_api_reports_duplicates_total{source="hl7"}')).toBe(1);
  expect(delta('neurotriage_api_reports_rejected_total{source="hl7",reason="no-accession"}')).toBe(1);
  expect(delta('neurotriage_api_reports_batches_total{outcome="processed"}')).toBe(1);
  expect(delta('neurotriage_api_reports_batch_count_mismatch_total{trailer="BTS"}')).toBe(0);
  expect(delta('neurotriage_api_reports_batch_seconds_count')).toBe(1);
});

test('a batch without FHS, segments ending CR LF: answered without FHS; BTS-1 wrong: all processed, logged and counted; empty: BTS-1 0', async () => {
  const before = await metrics();
  const [reply] = await mllpExchange(feed.port, batchOf([oru('ACC810', 'C-1'), oru('ACC811', 'C-2')], { count: 3, eol: '\r\n' }));
  const { envelope, acks } = readBatchAck(reply);
  expect(envelope.map((s) => s.slice(0, 3))).toEqual(['BHS', 'BTS']);
  expect(envelope[1]).toBe('BTS|2');
  expect(acks.map((a) => [msa(a, 1), msa(a, 2)])).toEqual([['AA', 'C-1'], ['AA', 'C-2']]);
  expect(await feed.client.exists(reportKeys.held('ACC811'))).toBe(1);
  expect(sample(await metrics(), 'neurotriage_api_reports_batch_count_mismatch_total{trailer="BTS"}') - sample(before, 'neurotriage_api_reports_batch_count_mismatch_total{trailer="BTS"}')).toBe(1);
  expect(feed.logs.some((l) => l.includes('BTS-1 disagrees') && l.includes('"declared":"3"') && l.includes('"messages":2'))).toBe(true);
  const [empty] = await mllpExchange(feed.port, 'BHS|^~\\&|NT_SYNTH_RIS|NT_SYNTH|||||||EMPTY-1\rBTS|0');
  expect(empty.toString()).toMatch(/^BHS\|\^~\\&\|\|\|NT_SYNTH_RIS\|NT_SYNTH\|[^|]+\|\|\|\|EMPTY-1\|EMPTY-1\rBTS\|0$/);
});

test('a message in a batch with delimiters of its own (MSH#...) is answered AR bad-msh alone, never read into the report before it', async () => {
  // HL7 lets each message name its delimiters in MSH-1/2. Read as raw line breaks of the message before, this one
  // (its PID too) was stored inside that report, answered AA, and got no ACK of its own.
  const other = oru('ACC851', 'HASH-1', 'CANARY-OTHER report of another patient.').replace(/\|/g, '#');
  const [reply] = await mllpExchange(feed.port, batchOf([oru('ACC850', 'OWN-1'), other, oru('ACC852', 'OWN-2')]));
  const { envelope, acks } = readBatchAck(reply);
  expect(envelope[envelope.length - 1]).toBe('BTS|3');
  expect(acks.map((a) => [msa(a, 1), msa(a, 2)])).toEqual([['AA', 'OWN-1'], ['AR', 'HASH-1'], ['AA', 'OWN-2']]);
  expect(msa(acks[1], 3)).toMatch(/^MSH must begin "MSH\|\^~\\&" \(the standard delimiters\) \(kept as \S+\)$/);
  const held = JSON.parse((await feed.client.get(reportKeys.held('ACC850')))!) as { text: string };
  expect(held.text).toBe(TEXT);
  expect(await feed.client.exists(reportKeys.held('ACC851'))).toBe(0);
  const id = /kept as (\S+)\)/.exec(msa(acks[1], 3))![1];
  expect((await feed.inbound.rejected.get(id))?.payload.toString()).toBe(other);
});

test('a batch over REPORTS_MLLP_MAX_BATCH_MESSAGES, or one whose envelope cannot be read, is refused whole: one AR, nothing stored', async () => {
  const before = await metrics();
  const rejectedBefore = await feed.client.zcard(reportKeys.rejected());
  const six = [0, 1, 2, 3, 4, 5].map((i) => oru(`ACC82${i}`, `BIG-${i}`));
  const [reply] = await mllpExchange(feed.port, batchOf(six));
  const ack = Hl7Message.parse(reply.toString());
  expect(ack.header.name).toBe('MSH');
  expect([msa(ack, 1), msa(ack, 2)]).toEqual(['AR', 'BATCH-1']);
  expect(msa(ack, 3)).toBe('the batch has 6 messages, more than REPORTS_MLLP_MAX_BATCH_MESSAGES (5): send smaller batches');
  expect(ack.getSegment('ERR')?.getComponent(3, 1)).toBe('207');
  expect(await feed.client.exists(reportKeys.held('ACC820'))).toBe(0);
  // In a file, MSA-2 is still the batch's control id (BHS-11), not the file's (FHS-11).
  const [inFile] = await mllpExchange(feed.port, batchOf(six, { fhs: true }));
  expect(msa(Hl7Message.parse(inFile.toString()), 2)).toBe('BATCH-1');
  // A batch frame over REPORTS_MLLP_MAX_MESSAGE_KB (64 here) is refused whole too, named by its BHS-11 (its MSA-2
  // was empty: it was answered as one oversize message, whose head has no MSH-10 first). Nothing of it is kept.
  const [huge] = await mllpExchange(feed.port, batchOf([oru('ACC825', 'HUGE-1', 'x'.repeat(70 * 1024))], { fhs: true }));
  const hugeAck = Hl7Message.parse(huge.toString());
  expect([msa(hugeAck, 1), msa(hugeAck, 2)]).toEqual(['AR', 'BATCH-1']);
  expect(msa(hugeAck, 3)).toMatch(/^the batch frame is larger than REPORTS_MLLP_MAX_MESSAGE_KB \(\d+ bytes\): send smaller batches$/);
  expect(await feed.client.exists(reportKeys.held('ACC825'))).toBe(0);
  const [bad] = await mllpExchange(feed.port, `BHS|^~\\&|NT_SYNTH_RIS|NT_SYNTH\r${PATIENT}\r${oru('ACC830', 'BADB-1')}\rBTS|1`);
  expect(bad.toString()).toMatch(/\rMSA\|AR\|\|the batch cannot be read: segment PID outside any message/);
  expect(await feed.client.zcard(reportKeys.rejected())).toBe(rejectedBefore);
  const after = await metrics();
  const delta = (series: string) => sample(after, series) - sample(before, series);
  expect(delta('neurotriage_api_reports_batches_total{outcome="refused"}')).toBe(4);
  expect(delta('neurotriage_api_reports_rejected_total{source="hl7",reason="batch-too-large"}')).toBe(3);
  expect(delta('neurotriage_api_reports_rejected_total{source="hl7",reason="bad-batch"}')).toBe(1);
  expect(delta('neurotriage_api_reports_stored_total{source="hl7"}')).toBe(0);
});

test('a batch whose write hangs: that message and the rest AR "resend later" within REPORTS_MLLP_ACK_TIMEOUT_MS; the resend stores the rest', async () => {
  await feed.client.call('CLIENT', 'PAUSE', '2500', 'WRITE');
  const t0 = Date.now();
  const [reply] = await mllpExchange(feed.port, batchOf([oru('ACC840', 'SLOWB-1'), oru('ACC841', 'SLOWB-2'), oru('ACC842', 'SLOWB-3')]));
  expect(Date.now() - t0).toBeLessThan(2400);
  const { envelope, acks } = readBatchAck(reply);
  expect(envelope[envelope.length - 1]).toBe('BTS|3');
  expect(acks.map((a) => [msa(a, 1), msa(a, 2), msa(a, 3)])).toEqual(['SLOWB-1', 'SLOWB-2', 'SLOWB-3'].map((id) => ['AR', id, TRY_AGAIN]));
  await waitFor(async () => (await feed.client.exists(reportKeys.held('ACC840'))) === 1, 'the late write to land');
  expect(await feed.client.exists(reportKeys.held('ACC841'))).toBe(0);
  const [resent] = await mllpExchange(feed.port, batchOf([oru('ACC840', 'SLOWB-1'), oru('ACC841', 'SLOWB-2'), oru('ACC842', 'SLOWB-3')]));
  expect(readBatchAck(resent).acks.map((a) => msa(a, 3))).toEqual(['1 report(s): duplicate', '1 report(s): held', '1 report(s): held']);
  // The listener's own deadline for a batch frame is REPORTS_MLLP_ACK_TIMEOUT_MS per message and one more; its
  // backstop reply, should that ever pass, is a batch of "resend later" too.
  const frame = { kind: 'message' as const, bytes: Buffer.from(batchOf([oru('ACC850', 'LATE-1'), oru('ACC851', 'LATE-2')])) };
  expect(feed.inbound.feed.replyTimeoutMs(frame)).toBe(3000);
  expect(feed.inbound.feed.replyTimeoutMs({ kind: 'message', bytes: Buffer.from(oru('ACC850', 'LATE-1')) })).toBe(1000);
  const late = readBatchAck(feed.inbound.feed.timeoutReply(frame));
  expect(late.acks.map((a) => [msa(a, 1), msa(a, 2), msa(a, 3)])).toEqual([['AR', 'LATE-1', TRY_AGAIN], ['AR', 'LATE-2', TRY_AGAIN]]);
  expect(late.envelope[late.envelope.length - 1]).toBe('BTS|2');
});

test('no report text, patient segment or accession number in any log line or metric', async () => {
  const logs = feed.logs.join('\n');
  expect(logs.length).toBeGreaterThan(1000);
  expect(logs).toMatch(/report message stored/);
  expect(logs).toMatch(/report message rejected and kept for replay/);
  const text = `${logs}\n${await metrics()}`;
  for (const canary of ['CANARY', 'restricted diffusion', 'MCA', 'ACC100', 'ACC200', 'ELSEWHERE']) expect(text).not.toContain(canary);
});

test('a connection waiting for its ACK is not closed as idle: a batch that takes longer than REPORTS_MLLP_IDLE_TIMEOUT_SECONDS is still answered', async () => {
  // A second listener on the same Redis and DATA_DIR with an idle time shorter than the writes take.
  const quick = await startFeed({ REPORTS_MLLP_IDLE_TIMEOUT_SECONDS: '0.3', REPORTS_MLLP_ACK_TIMEOUT_MS: '3000' }, { redis: feed.redis, dataDir: feed.dataDir });
  try {
    await feed.client.call('CLIENT', 'PAUSE', '900', 'WRITE');
    const [reply] = await mllpExchange(quick.port, batchOf([oru('ACC860', 'IDLE-1'), oru('ACC861', 'IDLE-2')]), { timeoutMs: 8000 });
    expect(readBatchAck(reply).acks.map((a) => [msa(a, 1), msa(a, 2)])).toEqual([['AA', 'IDLE-1'], ['AA', 'IDLE-2']]);
    await feed.client.call('CLIENT', 'PAUSE', '900', 'WRITE');
    const single = await send(quick.port, oru('ACC862', 'IDLE-3'));
    expect([msa(single, 1), msa(single, 2)]).toEqual(['AA', 'IDLE-3']);
    // Once answered, a connection that stays silent is still closed as idle.
    const socket = net.connect({ host: '127.0.0.1', port: quick.port });
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    await new Promise((resolve) => socket.on('connect', resolve));
    await feed.client.call('CLIENT', 'PAUSE', '600', 'WRITE');
    const t0 = Date.now();
    socket.write(Buffer.concat([Buffer.from([0x0b]), Buffer.from(oru('ACC863', 'IDLE-4')), Buffer.from([0x1c, 0x0d])]));
    const got = await new Promise<string>((resolve) => socket.once('data', (chunk) => resolve(chunk.toString())));
    expect(got).toMatch(/\rMSA\|AA\|IDLE-4\|/);
    expect(Date.now() - t0).toBeGreaterThan(500);
    await closed;
  } finally {
    await quick.stopFeed();
  }
});
