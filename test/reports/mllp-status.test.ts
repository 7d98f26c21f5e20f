// Report versions over real MLLP with real Redis: which of a study's reports is kept when the RIS sends its
// preliminary, final, corrected (addendum) and cancelled versions as separate messages, in the orders interface
// engines really deliver them (a final resent from an engine's retry queue after its correction went through).
import { readReport, reportKeys } from '../../shared/reports';
import { hl7Segment } from '../../shared/hl7-text';
import { READER } from '../api/helpers';
import { msa, receiveStudy, scoreStudy, send, startFeed, waitFor, type Feed } from './helpers';

let feed: Feed;
beforeAll(async () => {
  feed = await startFeed();
});
afterAll(async () => {
  await feed?.stop();
});

/** One ORU^R01 as an Epic/Cerner-style RIS sends it: OBR-25 and every OBX-11 carry the status. */
function oru(accession: string, controlId: string, status: string, lines: string[]): string {
  return [
    hl7Segment('MSH', { 3: 'RIS', 4: 'NT_SYNTH', 5: 'NEUROTRIAGE', 7: '20260105120000', 9: 'ORU^R01^ORU_R01', 10: controlId, 11: 'P', 12: '2.5.1', 18: 'UNICODE UTF-8' }),
    hl7Segment('ORC', { 1: 'RE', 3: accession }),
    hl7Segment('OBR', { 1: '1', 3: accession, 4: 'MRBRAIN^MRI brain^L', 25: status }),
    ...lines.map((line, i) => hl7Segment('OBX', { 1: String(i + 1), 2: 'TX', 3: 'REP^Report^L', 5: line, 11: status })),
  ].join('\r');
}

async function study(uid: string, accession: string): Promise<void> {
  await receiveStudy(feed.client, uid, accession);
  await scoreStudy(feed.client, uid);
  await waitFor(async () => (await feed.client.sismember(reportKeys.accession(accession), uid)) === 1, 'the study indexed');
}

test('a final that arrives after its correction (an engine resending from its queue) does not replace the correction', async () => {
  await study('1.2.7.1', 'ACCST1');
  const final = oru('ACCST1', 'ST1-F', 'F', ['IMPRESSION:', 'No acute abnormality.']);
  const corrected = oru('ACCST1', 'ST1-C', 'C', ['IMPRESSION:', 'No acute abnormality.', 'ADDENDUM: small right frontal subdural haematoma.']);
  expect(msa(await send(feed.port, final), 1)).toBe('AA');
  expect(msa(await send(feed.port, corrected), 1)).toBe('AA');
  expect((await readReport(feed.client, '1.2.7.1'))?.status).toBe('C');
  // The final again under a new control id (a RIS that resends on its own schedule): answered AA, not filed.
  const late = await send(feed.port, oru('ACCST1', 'ST1-F2', 'F', ['IMPRESSION:', 'No acute abnormality.']));
  expect(msa(late, 1)).toBe('AA');
  expect(msa(late, 3)).toMatch(/superseded/);
  expect(await readReport(feed.client, '1.2.7.1')).toMatchObject({ status: 'C', text: 'IMPRESSION:\nNo acute abnormality.\nADDENDUM: small right frontal subdural haematoma.' });
  // A second correction still replaces the first.
  expect(msa(await send(feed.port, oru('ACCST1', 'ST1-C2', 'C', ['IMPRESSION:', 'Small right frontal subdural haematoma.'])), 1)).toBe('AA');
  expect(await readReport(feed.client, '1.2.7.1')).toMatchObject({ status: 'C', text: 'IMPRESSION:\nSmall right frontal subdural haematoma.' });
});

test('a cancelled report (OBR-25 X, often without text) is taken and withdraws the final: not used for calibration, not brought back by a late final', async () => {
  await study('1.2.7.2', 'ACCST2');
  expect(msa(await send(feed.port, oru('ACCST2', 'ST2-F', 'F', ['IMPRESSION:', 'Acute left MCA infarct.'])), 1)).toBe('AA');
  // The RIS retracts it (dictated on the wrong study): OBR-25 X, no OBX text at all.
  const cancelled = await send(feed.port, oru('ACCST2', 'ST2-X', 'X', []));
  expect([msa(cancelled, 1), msa(cancelled, 3)]).toEqual(['AA', '1 report(s): matched']);
  expect(await readReport(feed.client, '1.2.7.2')).toMatchObject({ status: 'X', text: '' });
  // The final again from an engine's queue does not bring the withdrawn text back.
  expect(msa(await send(feed.port, oru('ACCST2', 'ST2-F2', 'F', ['IMPRESSION:', 'Acute left MCA infarct.'])), 3)).toMatch(/superseded/);
  expect((await readReport(feed.client, '1.2.7.2'))?.status).toBe('X');
  // A corrected report after the cancellation is the study's report again.
  expect(msa(await send(feed.port, oru('ACCST2', 'ST2-C', 'C', ['IMPRESSION:', 'No acute abnormality.'])), 1)).toBe('AA');
  expect(await readReport(feed.client, '1.2.7.2')).toMatchObject({ status: 'C', text: 'IMPRESSION:\nNo acute abnormality.' });
  // Through the API the withdrawn state is a status of its own.
  await send(feed.port, oru('ACCST2', 'ST2-X2', 'X', ['Report cancelled.']));
  const res = await feed.app.inject({ method: 'GET', url: '/api/v1/studies/1.2.7.2/report', headers: READER });
  expect([res.statusCode, res.json().status, res.json().text]).toEqual([200, 'X', 'Report cancelled.']);
});


test('a report not yet verified (OBR-25 R, or A: some results) is taken as preliminary, not refused; the final replaces it', async () => {
  await study('1.2.7.4', 'ACCST4');
  for (const status of ['R', 'A']) {
    const ack = await send(feed.port, oru('ACCST4', `ST4-${status}`, status, [`Dictated, not signed (${status}).`]));
    expect(msa(ack, 1)).toBe('AA');
    expect(await readReport(feed.client, '1.2.7.4')).toMatchObject({ status: 'P', text: `Dictated, not signed (${status}).` });
  }
  expect(msa(await send(feed.port, oru('ACCST4', 'ST4-F', 'F', ['Signed.'])), 1)).toBe('AA');
  expect(await readReport(feed.client, '1.2.7.4')).toMatchObject({ status: 'F', text: 'Signed.' });
});
