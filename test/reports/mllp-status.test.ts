// Report versions over real MLLP with real Redis: which of a study's reports is kept when the RIS sends its
// preliminary, final, corrected (addendum) and cancelled versions as separate messages, in the orders interface
// engines really deliver them (a final resent from an engine's retry queue after its correction went through), and
// two versions of one rank ordered by their own times (OBR-22, else MSH-7) when they reach us out of order.
import { readReport, reportKeys } from '../../shared/reports';
import { hl7Segment } from '../../shared/hl7-text';
import { hl7MessageKey } from '../../services/api/inbound';
import { ADMIN, READER } from '../api/helpers';
import { msa, receiveStudy, scoreStudy, send, startFeed, waitFor, type Feed } from './helpers';

/** The site's zone: times without an offset are read in it (changes to summer time on 29 March, back on 25 October 2026). */
const SITE = { timeZone: 'Europe/London' };

let feed: Feed;
beforeAll(async () => {
  feed = await startFeed({}, undefined, SITE);
});
afterAll(async () => {
  await feed?.stop();
});

/**
 * One ORU^R01 as an Epic/Cerner-style RIS sends it: OBR-25 and every OBX-11 carry the status. MSH-7 the same time
 * in every message unless given (so only the order received tells them apart), OBR-22 empty unless given.
 */
function oru(accession: string, controlId: string, status: string, lines: string[], times: { msh7?: string; obr22?: string; facility?: string } = {}): string {
  return [
    hl7Segment('MSH', { 3: 'RIS', 4: times.facility ?? 'NT_SYNTH', 5: 'NEUROTRIAGE', 7: times.msh7 ?? '20260105120000', 9: 'ORU^R01^ORU_R01', 10: controlId, 11: 'P', 12: '2.5.1', 18: 'UNICODE UTF-8' }),
    hl7Segment('ORC', { 1: 'RE', 3: accession }),
    hl7Segment('OBR', { 1: '1', 3: accession, 4: 'MRBRAIN^MRI brain^L', 22: times.obr22 ?? '', 25: status }),
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

test('two corrections out of order: the newer by OBR-22 is kept when the older is replayed from the rejected store after it, also through a journal replay', async () => {
  await study('1.2.7.5', 'ACCST5');
  // The older correction (09:15) comes from the RIS's second facility, not yet allowed: AR, kept for replay.
  const older = oru('ACCST5', 'ST5-C1', 'C', ['IMPRESSION:', 'Small subdural haematoma.'], { obr22: '20260105091500', msh7: '20260105091501', facility: 'NT_NIGHT' });
  const refused = await send(feed.port, older);
  expect([msa(refused, 1), msa(refused, 3)]).toEqual(['AR', expect.stringMatching(/facility \(MSH-4\).*kept as/)]);
  const id = /kept as (\S+)\)/.exec(msa(refused, 3))![1];
  // The radiologist's later correction (10:00) is filed.
  const newer = oru('ACCST5', 'ST5-C2', 'C', ['IMPRESSION:', 'Small subdural haematoma, unchanged; no midline shift.'], { obr22: '20260105100000', msh7: '20260105100001' });
  expect(msa(await send(feed.port, newer), 3)).toBe('1 report(s): matched');
  const current = 'IMPRESSION:\nSmall subdural haematoma, unchanged; no midline shift.';
  // Days later the administrator allows the facility (a restart with the setting) and replays what was refused.
  const fixed = await startFeed({ REPORTS_MLLP_ALLOWED_FACILITIES: 'NT_SYNTH,NT_NIGHT' }, { redis: feed.redis, dataDir: feed.dataDir }, SITE);
  try {
    const replay = await fixed.app.inject({ method: 'POST', url: `/api/v1/reports/rejected/${id}/replay`, headers: ADMIN });
    expect([replay.statusCode, replay.json()]).toEqual([200, expect.objectContaining({ ack: 'AA', detail: '1 report(s): superseded', reports: [{ outcome: 'superseded', AccessionNumber: 'ACCST5', StudyInstanceUIDs: ['1.2.7.5'] }] })]);
    expect(await readReport(feed.client, '1.2.7.5')).toMatchObject({
      status: 'C', text: current, messageControlId: 'ST5-C2', reportTime: { field: 'OBR-22', from: Date.UTC(2026, 0, 5, 10), to: Date.UTC(2026, 0, 5, 10, 0, 1) },
    });
    // The API shows the time that decided it.
    const shown = await fixed.app.inject({ method: 'GET', url: '/api/v1/studies/1.2.7.5/report', headers: READER });
    expect(shown.json().reportTime).toEqual({ field: 'OBR-22', from: Date.UTC(2026, 0, 5, 10), to: Date.UTC(2026, 0, 5, 10, 0, 1) });
    // Recorded and done with: out of the rejected store.
    expect((await fixed.app.inject({ method: 'GET', url: `/api/v1/reports/rejected/${id}`, headers: ADMIN })).statusCode).toBe(404);
  } finally {
    await fixed.stopFeed();
  }
  // A Redis that lost both (their message ids too): the journal, replayed at start in the order received, ends the same.
  const keys = [
    hl7MessageKey({ sendingApplication: 'RIS', sendingFacility: 'NT_SYNTH', controlId: 'ST5-C2' }, { AccessionNumber: 'ACCST5', status: 'C', text: current }),
    hl7MessageKey({ sendingApplication: 'RIS', sendingFacility: 'NT_NIGHT', controlId: 'ST5-C1' }, { AccessionNumber: 'ACCST5', status: 'C', text: 'IMPRESSION:\nSmall subdural haematoma.' }),
  ].map((k) => reportKeys.seen(k));
  expect(await feed.client.exists(...keys)).toBe(2);
  await feed.client.del(reportKeys.report('1.2.7.5'), ...keys);
  const again = await startFeed({}, { redis: feed.redis, dataDir: feed.dataDir }, SITE);
  try {
    expect(await readReport(again.client, '1.2.7.5')).toMatchObject({ status: 'C', text: current });
    expect(await again.client.exists(...keys)).toBe(2);
  } finally {
    await again.stopFeed();
  }
});

test('report times without an offset are the site\'s local time (Europe/London), on either side of the change to winter time', async () => {
  await study('1.2.7.6', 'ACCST6');
  const send6 = async (controlId: string, obr22: string, impression: string) =>
    msa(await send(feed.port, oru('ACCST6', controlId, 'C', ['IMPRESSION:', impression], { obr22 })), 3);
  // 25 October 2026: 00:30 UTC, then a correction written at 00:50 local, still summer time (23:50 UTC the day before).
  expect(await send6('ST6-1', '20261025003000+0000', 'First.')).toBe('1 report(s): matched');
  expect(await send6('ST6-2', '20261025005000', 'Older: 23:50 UTC.')).toBe('1 report(s): superseded');
  // 02:30 local is winter time again (02:30 UTC), newer than 02:15 UTC, whichever came last.
  expect(await send6('ST6-3', '20261025023000', 'Newest: 02:30 UTC.')).toBe('1 report(s): matched');
  expect(await send6('ST6-4', '20261025021500+0000', 'Older: 02:15 UTC.')).toBe('1 report(s): superseded');
  expect(await readReport(feed.client, '1.2.7.6')).toMatchObject({ text: 'IMPRESSION:\nNewest: 02:30 UTC.', messageControlId: 'ST6-3' });
});

test('a replayed message\'s time is judged against when it first came, not the replay: a RIS clock days ahead stays unused', async () => {
  await study('1.2.7.8', 'ACCST8');
  // Stamped a day before now, by a RIS whose clock ran two days ahead: it came three days ago (refused AR, kept).
  const stamped = new Date(Date.now() - 86_400_000).toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const refused = await send(feed.port, oru('ACCST8', 'ST8-C', 'C', ['Clock ahead.'], { obr22: `${stamped}+0000`, facility: 'NT_NIGHT' }));
  const id = /kept as (\S+)\)/.exec(msa(refused, 3))![1];
  await feed.client.hset(reportKeys.rejectedEntry(id), 'receivedAt', String(Date.now() - 3 * 86_400_000));
  const fixed = await startFeed({ REPORTS_MLLP_ALLOWED_FACILITIES: 'NT_SYNTH,NT_NIGHT' }, { redis: feed.redis, dataDir: feed.dataDir }, SITE);
  try {
    const replay = await fixed.app.inject({ method: 'POST', url: `/api/v1/reports/rejected/${id}/replay`, headers: ADMIN });
    expect([replay.statusCode, replay.json().detail]).toEqual([200, '1 report(s): matched']);
    // Two days after it came: not used, or it would outrank every version stamped by a right clock meanwhile.
    expect(await readReport(feed.client, '1.2.7.8')).toMatchObject({ text: 'Clock ahead.' });
    expect((await readReport(feed.client, '1.2.7.8'))?.reportTime).toBeUndefined();
  } finally {
    await fixed.stopFeed();
  }
});

test('when either version has no time (MSH-7 and OBR-22 empty, or a report through the API), the one received last is kept, as before', async () => {
  await study('1.2.7.7', 'ACCST7');
  expect(msa(await send(feed.port, oru('ACCST7', 'ST7-1', 'C', ['Timed at 10:00.'], { obr22: '20260105100000+0000' })), 3)).toBe('1 report(s): matched');
  // No time at all, received after: it replaces the timed one.
  expect(msa(await send(feed.port, oru('ACCST7', 'ST7-2', 'C', ['No time.'], { msh7: '' })), 3)).toBe('1 report(s): matched');
  expect(await readReport(feed.client, '1.2.7.7')).toMatchObject({ text: 'No time.', messageControlId: 'ST7-2' });
  expect((await readReport(feed.client, '1.2.7.7'))?.reportTime).toBeUndefined();
  // An older timed one after it: nothing to order them by, so the later received again.
  expect(msa(await send(feed.port, oru('ACCST7', 'ST7-3', 'C', ['Timed at 09:00.'], { obr22: '20260105090000+0000' })), 3)).toBe('1 report(s): matched');
  expect(await readReport(feed.client, '1.2.7.7')).toMatchObject({ text: 'Timed at 09:00.', messageControlId: 'ST7-3' });
  // A time more than a day after the message came (a RIS clock years ahead) is not used: it would outrank every
  // later version for ever.
  expect(msa(await send(feed.port, oru('ACCST7', 'ST7-4', 'C', ['Dated 2099.'], { obr22: '20990101000000+0000' })), 3)).toBe('1 report(s): matched');
  expect(await readReport(feed.client, '1.2.7.7')).toMatchObject({ text: 'Dated 2099.' });
  expect((await readReport(feed.client, '1.2.7.7'))?.reportTime).toBeUndefined();
  // POST /api/v1/reports carries no time: a correction through it replaces the timed one too.
  const api = await feed.app.inject({ method: 'POST', url: '/api/v1/reports', headers: ADMIN, payload: { AccessionNumber: 'ACCST7', status: 'C', text: 'Through the API.' } });
  expect([api.statusCode, api.json().outcome]).toEqual([201, 'matched']);
  expect(await readReport(feed.client, '1.2.7.7')).toMatchObject({ text: 'Through the API.', source: 'api' });
});
