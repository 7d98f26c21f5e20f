// The report routes through app.inject() with real Redis and the same intake as the HL7 feed: POST
// /api/v1/reports (role reporter) with the hold / match / dedupe / precedence rules, GET the study's report
// (reader), the 4xx that say what is wrong, the admin view of held reports and of rejected HL7 messages (list,
// read, replay, delete), the audit lines (lengths, never text) and the OpenAPI description.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { hl7Segment } from '../../shared/hl7-text';
import { buildOru } from '../../tools/synth/send-reports';
import { ADMIN, READER, SCRAPER } from '../api/helpers';
import { REPORTER, msa, receiveStudy, scoreStudy, send, startFeed, waitFor, type Feed } from './helpers';

const TEXT = 'FINDINGS:\nCANARY-API dilated lateral ventricles.\n\nIMPRESSION:\nHydrocephalus.';
let feed: Feed;

beforeAll(async () => {
  feed = await startFeed();
});
afterAll(async () => {
  await feed?.stop();
});

const post = (body: unknown, headers: Record<string, string> = REPORTER) =>
  feed.app.inject({ method: 'POST', url: '/api/v1/reports', headers, payload: body as object });
const getReport = (uid: string, headers: Record<string, string> = READER) =>
  feed.app.inject({ method: 'GET', url: `/api/v1/studies/${uid}/report`, headers });

async function scoredStudy(uid: string, accession: string): Promise<void> {
  await receiveStudy(feed.client, uid, accession);
  await scoreStudy(feed.client, uid);
  await waitFor(async () => (await feed.client.sismember(`nt:reports:accession:${accession}`, uid)) === 1, 'the study indexed');
}

test('a report for a scored study: 201 with Location, then readable by a reader', async () => {
  await scoredStudy('1.2.9.1', 'API-1');
  const res = await post({ AccessionNumber: ' API-1 ', text: TEXT });
  expect(res.statusCode).toBe(201);
  expect(res.headers.location).toBe('/api/v1/studies/1.2.9.1/report');
  expect(res.json()).toEqual({ outcome: 'matched', AccessionNumber: 'API-1', StudyInstanceUIDs: ['1.2.9.1'] });
  const read = await getReport('1.2.9.1');
  expect(read.statusCode).toBe(200);
  expect(read.json()).toMatchObject({ AccessionNumber: 'API-1', StudyInstanceUID: '1.2.9.1', text: TEXT, status: 'F', source: 'api' });
  // Report text is patient data: no cache keeps it, and it is not content-sniffed.
  expect(read.headers).toMatchObject({ 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
});

test('C1 code points in the text are stored as the windows-1252 quotes and dashes they stand for, as the HL7 feed reads them', async () => {
  await scoredStudy('1.2.9.9', 'API-C1');
  // U+0096 and U+0093/U+0094: a Windows RIS's dash and quotes read as ISO 8859-1 by the client; U+0081 has no windows-1252 character and stays.
  const res = await post({ AccessionNumber: 'API-C1', text: 'Lesion 2\u00963 mm, \u0093ring\u0094 enhancing.\u0081' });
  expect(res.statusCode).toBe(201);
  expect((await getReport('1.2.9.9')).json().text).toBe('Lesion 2\u20133 mm, \u201Cring\u201D enhancing.\u0081');
  // The same report sent with the characters themselves is the same report.
  expect((await post({ AccessionNumber: 'API-C1', text: 'Lesion 2\u20133 mm, \u201Cring\u201D enhancing.\u0081' })).json().outcome).toBe('duplicate');
});

test('the same report twice is stored once; a reportId makes a resend a duplicate whatever its text', async () => {
  await scoredStudy('1.2.9.2', 'API-2');
  expect((await post({ AccessionNumber: 'API-2', text: TEXT })).statusCode).toBe(201);
  const first = (await getReport('1.2.9.2')).json();
  const again = await post({ AccessionNumber: 'API-2', text: TEXT });
  expect(again.statusCode).toBe(200);
  expect(again.json().outcome).toBe('duplicate');
  expect((await getReport('1.2.9.2')).json()).toEqual(first);
  expect((await post({ AccessionNumber: 'API-2', text: 'v1', reportId: 'ris-77:1' })).statusCode).toBe(201);
  const resend = await post({ AccessionNumber: 'API-2', text: 'v1 (resent with other whitespace) ', reportId: 'ris-77:1' });
  expect(resend.json().outcome).toBe('duplicate');
  expect((await getReport('1.2.9.2')).json().text).toBe('v1');
});

test('a preliminary report never replaces a final one; a correction does', async () => {
  await scoredStudy('1.2.9.3', 'API-3');
  await post({ AccessionNumber: 'API-3', text: 'final' });
  const prelim = await post({ AccessionNumber: 'API-3', text: 'prelim', status: 'P' });
  expect([prelim.statusCode, prelim.json().outcome]).toEqual([200, 'superseded']);
  expect((await getReport('1.2.9.3')).json()).toMatchObject({ text: 'final', status: 'F' });
  expect((await post({ AccessionNumber: 'API-3', text: 'corrected', status: 'C' })).statusCode).toBe(201);
  expect((await getReport('1.2.9.3')).json()).toMatchObject({ text: 'corrected', status: 'C' });
});

test('a report before its study: 202 held, listed for admins, filed when the study is scored', async () => {
  const res = await post({ AccessionNumber: 'API-4', text: TEXT });
  expect(res.statusCode).toBe(202);
  expect(res.json()).toEqual({ outcome: 'held', AccessionNumber: 'API-4', StudyInstanceUIDs: [] });
  const held = await feed.app.inject({ method: 'GET', url: '/api/v1/reports/held', headers: ADMIN });
  expect(held.json().items).toEqual(expect.arrayContaining([expect.objectContaining({ AccessionNumber: 'API-4', status: 'F', source: 'api' })]));
  await receiveStudy(feed.client, '1.2.9.4', 'API-4');
  expect((await getReport('1.2.9.4')).json().detail).toBe('study 1.2.9.4 has no report yet');
  await scoreStudy(feed.client, '1.2.9.4');
  await waitFor(async () => (await getReport('1.2.9.4')).statusCode === 200, 'the held report filed');
  expect((await getReport('1.2.9.4')).json().text).toBe(TEXT);
});

test.each([
  [{ text: TEXT }, /body\/AccessionNumber must have required property/],
  [{ AccessionNumber: 'A', text: TEXT, status: 'X' }, /^body\/status must be equal to one of the allowed values \(F, C, P\)$/],
  [{ AccessionNumber: 'A', text: TEXT, author: 'dr x' }, /body\/author must NOT have additional properties/],
  [{ AccessionNumber: 'A', text: '   ' }, /body\/text holds only white space/],
  [{ AccessionNumber: 'A', text: '\u200B\u200B\u200B' }, /^body\/text has no text: only white space, punctuation or invisible characters/],
  [{ AccessionNumber: 'A', text: '\u0000\u0000' }, /^body\/text holds a control character \(U\+0000 at character 1\)/],
  [{ AccessionNumber: 'A', text: `${TEXT}\u0000` }, /^body\/text holds a control character \(U\+0000/],
  [{ AccessionNumber: 'A', text: 123 }, /^body\/text must be string$/],
  [{ AccessionNumber: '   ', text: TEXT }, /body\/AccessionNumber holds only white space/],
  [{ AccessionNumber: 'A\nB', text: TEXT }, /body\/AccessionNumber holds a control character/],
  [{ AccessionNumber: 'A\u2028B', text: TEXT }, /body\/AccessionNumber holds a control character/],
  // Invisible characters only: no study can carry it, so the report was held (202) until it expired.
  [{ AccessionNumber: '\u200B', text: TEXT }, /^body\/AccessionNumber has no letter or digit: only white space, punctuation or invisible characters/],
  [{ AccessionNumber: 'A'.repeat(65), text: TEXT }, /body\/AccessionNumber must NOT have more than 64 characters/],
  [{ AccessionNumber: 'A', text: '' }, /body\/text must NOT have fewer than 1 characters/],
  [{ AccessionNumber: 'A', text: TEXT, reportId: 'has spaces' }, /body\/reportId must match pattern/],
])('400 that says what is wrong: %j', async (body, detail) => {
  const res = await post(body);
  expect(res.statusCode).toBe(400);
  expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
  expect(res.json().detail).toMatch(detail);
});

test('roles: reporter posts but reads nothing; metrics cannot post; without a token 401', async () => {
  expect((await post({ AccessionNumber: 'A', text: 't' }, SCRAPER)).statusCode).toBe(403);
  expect((await post({ AccessionNumber: 'A', text: 't' }, {})).statusCode).toBe(401);
  const read = await getReport('1.2.9.1', REPORTER);
  expect(read.statusCode).toBe(403);
  expect(read.json().detail).toMatch(/needs the reader role; "ris-feed" has reporter/);
  expect((await feed.app.inject({ method: 'GET', url: '/api/v1/worklist', headers: REPORTER })).statusCode).toBe(403);
  expect((await feed.app.inject({ method: 'GET', url: '/api/v1/reports/rejected', headers: READER })).statusCode).toBe(403);
  expect((await getReport('9.9.9')).json().detail).toBe('no study 9.9.9 has been received');
});

test('admins list, read, replay and delete rejected HL7 messages', async () => {
  const bad = [
    'MSH|^~\\&|RIS|NT_SYNTH|NEUROTRIAGE||20260105||ORU^R01^ORU_R01|ADM-1|P|2.5.1',
    hl7Segment('OBR', { 1: '1', 25: 'F' }),
    'OBX|1|TX|x||CANARY-API kept text',
  ].join('\r');
  const ack = await send(feed.port, bad);
  expect(msa(ack, 1)).toBe('AE');
  const list = await feed.app.inject({ method: 'GET', url: '/api/v1/reports/rejected', headers: ADMIN });
  expect(list.statusCode).toBe(200);
  const entry = list.json().items.find((e: { reason: string }) => e.reason === 'no-accession');
  expect(entry).toMatchObject({ kind: 'hl7', ack: 'AE', truncated: false, replays: 0 });
  expect(JSON.stringify(list.json())).not.toContain('CANARY');
  const one = await feed.app.inject({ method: 'GET', url: `/api/v1/reports/rejected/${entry.id}`, headers: ADMIN });
  expect(one.json().message).toBe(bad);
  // The whole HL7 message (PID included): no cache keeps it.
  expect(one.headers).toMatchObject({ 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });

  const still = await feed.app.inject({ method: 'POST', url: `/api/v1/reports/rejected/${entry.id}/replay`, headers: ADMIN });
  expect(still.statusCode).toBe(422);
  expect(still.json().detail).toMatch(/still rejected \(no-accession\): no accession number in OBR-3, OBR-18, ORC-3 of OBR 1; the message stays kept/);

  await scoredStudy('1.2.9.5', 'API-5');
  const corrected = bad.replace(hl7Segment('OBR', { 1: '1', 25: 'F' }), hl7Segment('OBR', { 1: '1', 3: 'API-5', 25: 'F' }));
  const fixed = await feed.app.inject({ method: 'POST', url: `/api/v1/reports/rejected/${entry.id}/replay`, headers: ADMIN, payload: { message: corrected } });
  expect(fixed.statusCode).toBe(200);
  expect(fixed.json()).toMatchObject({ ack: 'AA', reports: [{ outcome: 'matched', AccessionNumber: 'API-5', StudyInstanceUIDs: ['1.2.9.5'] }] });
  expect((await getReport('1.2.9.5')).json().text).toBe('CANARY-API kept text');
  expect((await feed.app.inject({ method: 'GET', url: `/api/v1/reports/rejected/${entry.id}`, headers: ADMIN })).statusCode).toBe(404);

  const other = await send(feed.port, buildOru({ AccessionNumber: 'X', text: 't' }, { now: 0, controlId: 'ADM-2' }).replace('ORU^R01^ORU_R01', 'ORM^O01^ORM_O01'));
  const id = /kept as (\S+)\)/.exec(msa(other, 3))![1];
  const del = await feed.app.inject({ method: 'DELETE', url: `/api/v1/reports/rejected/${id}`, headers: ADMIN });
  expect(del.statusCode).toBe(204);
  expect((await feed.app.inject({ method: 'DELETE', url: `/api/v1/reports/rejected/${id}`, headers: ADMIN })).statusCode).toBe(404);
  expect((await feed.app.inject({ method: 'GET', url: '/api/v1/reports/rejected/not-an-id', headers: ADMIN })).statusCode).toBe(400);
});

test('audited with lengths and outcomes, never the text; described in the OpenAPI document', async () => {
  // One file per API instance (its host name in the name): read them all.
  const dir = path.join(feed.dataDir, 'audit');
  const audit = readdirSync(dir).map((f) => readFileSync(path.join(dir, f), 'utf8')).join('');
  const lines = audit.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(lines).toEqual(expect.arrayContaining([
    expect.objectContaining({ action: 'report.create', user: 'ris-feed', role: 'reporter', outcome: 'matched', studies: ['1.2.9.1'], textLength: TEXT.length }),
    expect.objectContaining({ action: 'study.report.read', user: 'dr-reader', StudyInstanceUID: '1.2.9.1' }),
    expect.objectContaining({ action: 'report.rejected.replay', user: 'pacs-admin' }),
    expect.objectContaining({ action: 'report.rejected.delete', user: 'pacs-admin' }),
  ]));
  expect(audit).not.toContain('CANARY');
  expect(feed.logs.join('\n')).not.toContain('CANARY');
  const doc = (await feed.app.inject({ method: 'GET', url: '/docs/json' })).json();
  expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining([
    '/api/v1/reports', '/api/v1/studies/{StudyInstanceUID}/report', '/api/v1/reports/rejected/{id}/replay',
  ]));
});
