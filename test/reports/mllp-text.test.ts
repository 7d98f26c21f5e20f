// Report text as RIS really encode it, over real MLLP with real Redis: the bytes a RIS writes under the character set
// it names in MSH-18, read back from what was stored, word for word.
import { readReport, reportKeys } from '../../shared/reports';
import { hl7Segment } from '../../shared/hl7-text';
import { mllpExchange, msa, receiveStudy, scoreStudy, startFeed, waitFor, type Feed } from './helpers';
import { Hl7Message } from '@medplum/core';

let feed: Feed;
beforeAll(async () => {
  feed = await startFeed();
});
afterAll(async () => {
  await feed?.stop();
});

async function study(uid: string, accession: string): Promise<void> {
  await receiveStudy(feed.client, uid, accession);
  await scoreStudy(feed.client, uid);
  await waitFor(async () => (await feed.client.sismember(reportKeys.accession(accession), uid)) === 1, 'the study indexed');
}

test('8859/1 from a Windows RIS: typographic quotes and dashes (windows-1252 bytes 0x80-0x9F) are stored as the characters, not C1 controls', async () => {
  await study('1.2.6.1', 'ACCTX1');
  const header = [
    hl7Segment('MSH', { 3: 'RIS', 4: 'NT_SYNTH', 5: 'NEUROTRIAGE', 7: '20260105120000', 9: 'ORU^R01^ORU_R01', 10: 'TX1', 11: 'P', 12: '2.5.1', 18: '8859/1' }),
    hl7Segment('OBR', { 1: '1', 3: 'ACCTX1', 4: 'MRBRAIN^MRI brain^L', 25: 'F' }),
    'OBX|1|TX|REP^Report^L||',
  ].join('\r');
  // "Lésion 2–3 mm, “stable”; ±1 µl at 37 °C" as PowerScribe text reaches a Windows RIS: cp1252 en dash (0x96) and
  // quotes (0x93, 0x94) beside 8859-1 letters that are the same byte in both.
  const text = Buffer.from([
    ...Buffer.from('L'), 0xe9, ...Buffer.from('sion 2'), 0x96, ...Buffer.from('3 mm, '), 0x93, ...Buffer.from('stable'), 0x94,
    ...Buffer.from('; '), 0xb1, ...Buffer.from('1 '), 0xb5, ...Buffer.from('l at 37 '), 0xb0, ...Buffer.from('C'),
  ]);
  const [reply] = await mllpExchange(feed.port, Buffer.concat([Buffer.from(header, 'latin1'), text, Buffer.from('||||||F', 'latin1')]));
  expect(msa(Hl7Message.parse(reply.toString('latin1')), 1)).toBe('AA');
  expect((await readReport(feed.client, '1.2.6.1'))?.text).toBe('Lésion 2–3 mm, “stable”; ±1 µl at 37 °C');
});

test('windows-1252 quotes and dashes that reach us as C1 code points (UTF-8 from an engine that read cp1252 as 8859-1; 8859/15) are stored as the characters', async () => {
  await study('1.2.6.2', 'ACCTX2');
  await study('1.2.6.3', 'ACCTX3');
  const message = (accession: string, controlId: string, charset: string, text: Buffer) => Buffer.concat([
    Buffer.from([
      hl7Segment('MSH', { 3: 'RIS', 4: 'NT_SYNTH', 5: 'NEUROTRIAGE', 7: '20260105120000', 9: 'ORU^R01^ORU_R01', 10: controlId, 11: 'P', 12: '2.5.1', 18: charset }),
      hl7Segment('OBR', { 1: '1', 3: accession, 4: 'MRBRAIN^MRI brain^L', 25: 'F' }),
      'OBX|1|TX|REP^Report^L||',
    ].join('\r'), 'latin1'),
    text, Buffer.from('||||||F'),
  ]);
  // U+0093 U+0094 U+0096 U+0092 written as UTF-8: what "“stable”, 2–3 mm, patient’s" becomes after cp1252 bytes were
  // read as ISO 8859-1 and written out as UTF-8.
  const utf8 = Buffer.from('\u0093stable\u0094, 2\u00963 mm, patient\u0092s', 'utf8');
  const [a] = await mllpExchange(feed.port, message('ACCTX2', 'TX2', 'UNICODE UTF-8', utf8));
  expect(msa(Hl7Message.parse(a.toString('utf8')), 1)).toBe('AA');
  expect((await readReport(feed.client, '1.2.6.2'))?.text).toBe('“stable”, 2–3 mm, patient’s');
  const latin9 = Buffer.from([0x32, 0x96, 0x33, 0x20, 0x6d, 0x6d, 0x20, 0xa4]);
  const [b] = await mllpExchange(feed.port, message('ACCTX3', 'TX3', '8859/15', latin9));
  expect(msa(Hl7Message.parse(b.toString('latin1')), 1)).toBe('AA');
  expect((await readReport(feed.client, '1.2.6.3'))?.text).toBe('2–3 mm €');
});

test('a frame whose message is preceded by a UTF-8 byte order mark or a line break (Windows engines, file-fed senders) is read, not refused AR bad-msh', async () => {
  await study('1.2.6.4', 'ACCTX4');
  const message = (controlId: string, text: string) => Buffer.from([
    hl7Segment('MSH', { 3: 'RIS', 4: 'NT_SYNTH', 5: 'NEUROTRIAGE', 7: '20260105120000', 9: 'ORU^R01^ORU_R01', 10: controlId, 11: 'P', 12: '2.5.1', 18: 'UNICODE UTF-8' }),
    hl7Segment('OBR', { 1: '1', 3: 'ACCTX4', 4: 'MRBRAIN^MRI brain^L', 25: 'F' }),
    hl7Segment('OBX', { 1: '1', 2: 'TX', 3: 'REP^Report^L', 5: text, 11: 'F' }),
  ].join('\r'), 'utf8');
  const [bom] = await mllpExchange(feed.port, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), message('TX4', 'Läsion frontal.')]));
  expect([msa(Hl7Message.parse(bom.toString('utf8')), 1), msa(Hl7Message.parse(bom.toString('utf8')), 2)]).toEqual(['AA', 'TX4']);
  expect((await readReport(feed.client, '1.2.6.4'))?.text).toBe('Läsion frontal.');
  const [crlf] = await mllpExchange(feed.port, Buffer.concat([Buffer.from('\r\n'), message('TX5', 'Läsion parietal.')]));
  expect(msa(Hl7Message.parse(crlf.toString('utf8')), 1)).toBe('AA');
  expect((await readReport(feed.client, '1.2.6.4'))?.text).toBe('Läsion parietal.');
});
