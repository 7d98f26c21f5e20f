// The worklist page in real headless Chromium (Debian's /usr/bin/chromium via playwright-core, no download),
// served by the API on listen(0) with a real Redis holding results in the shared/results.ts shape. Signs in,
// checks the STAT study leads, then writes and publishes a new result as the worker would and waits for the
// page to show it without a reload. The embedder is the deterministic test one (the page never embeds on load).
// NT_SCREENSHOT=docs/images/worklist.png also saves the worklist screenshot for the README.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Browser, Page } from 'playwright-core';
import type { TriageQuery } from '../../shared/model-manifest';
import { changeQuery } from '../../shared/queries';
import { queryFingerprint } from '../../shared/model-manifest';
import { connectRedis } from '../../shared/redis';
import { startRedis, type TestRedis } from '../helpers/redis';
import { launchChromium, waitInPage } from '../helpers/browser';
import { calibrated } from '../helpers/calibration';
import { QUERIES, TOKENS, buildTestApp, testModelStatus, writeResult } from './helpers';

const MORE: TriageQuery[] = [
  ...QUERIES,
  calibrated({ id: 'hydrocephalus', text: 'hydrocephalus enlarged ventricles', priority: 'STAT' }, { a: 10, b: -3, scoreThreshold: 0.3, targetSensitivity: 0.95 }),
  calibrated({ id: 'white_matter_disease', text: 'white matter hyperintensities small vessel disease', priority: 'ROUTINE' }, { a: 10, b: -3, scoreThreshold: 0.3, targetSensitivity: 0.9 }),
];

const DECISION = {
  STAT: {
    targetSensitivity: 0.95, threshold: 0.4, positives: 60, negatives: 340,
    table: [
      { threshold: 0.6, sensitivity: 0.9, falsePositiveRate: 0.04 },
      { threshold: 0.4, sensitivity: 0.95, falsePositiveRate: 0.08 },
      { threshold: 0.2, sensitivity: 0.99, falsePositiveRate: 0.21 },
    ],
  },
};

let server: TestRedis;
let redis: Redis;
let app: FastifyInstance;
let browser: Browser;
let page: Page;
let base: string;
const shots = process.env.NT_SHOTS_DIR ?? mkdtempSync(path.join(tmpdir(), 'nt-page-'));

const uid = (n: number) => `1.2.826.0.1.3680043.10.77.${n}`;
const minutesAgo = (m: number) => Date.now() - m * 60_000;

beforeAll(async () => {
  server = await startRedis();
  redis = connectRedis(server.url, 'producer');
  await new Promise((r) => redis.once('ready', r));
  const studies = [
    { n: 1, priority: 'ROUTINE', m: 58, looksLike: 'white matter hyperintensities small vessel', flagged: ['white_matter_disease'], acc: 'A24-10231' },
    { n: 2, priority: 'URGENT', m: 41, looksLike: 'enhancing mass lesion tumour oedema', flagged: ['mass'], acc: 'A24-10236' },
    { n: 3, priority: 'ROUTINE', m: 33, looksLike: 'normal brain for age', flagged: [], acc: 'A24-10240', missing: ['ADC'] },
    { n: 4, priority: 'STAT', m: 12, looksLike: 'acute infarct restricted diffusion left territory', flagged: ['acute_infarct'], acc: 'A24-10244' },
    { n: 5, priority: 'ROUTINE', m: 7, looksLike: 'normal brain', flagged: [], acc: 'A24-10247' },
  ] as const;
  for (const s of studies) {
    await writeResult(redis, { uid: uid(s.n), priority: s.priority, receivedAt: minutesAgo(s.m), looksLike: s.looksLike, flagged: [...s.flagged], accession: s.acc, missing: 'missing' in s ? [...s.missing] : [] }, false, MORE);
  }
  // One study the worker gave up on: it must stay visible, outside the triaged order.
  await redis.hset('nt:study:1.2.826.0.1.3680043.10.77.9', { status: 'failed', firstReceivedAt: minutesAgo(25), lastReceivedAt: minutesAgo(24), failureReason: 'no readable DWI or FLAIR series', instances: 22, AccessionNumber: 'A24-10243' });
  // The test bundle's defaults are MORE, with a study-level STAT decision table (as a v2 bundle carries).
  const status = testModelStatus({ manifest: { queries: MORE, decision: DECISION } });
  app = await buildTestApp(redis, { modelStatus: () => status });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1440, height: 820 } });
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  redis?.disconnect();
  await server?.stop();
});

const rowUids = () => page.locator('#worklist tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-uid')));

test('signs in, shows the STAT study first with its badge, and updates live when a result is published', async () => {
  await page.goto(base);
  await page.fill('#token', TOKENS[1].token);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#worklist tbody tr');
  // Signed in, the keyboard is on the worklist's heading, not lost on the page.
  expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('worklist-title');
  expect(await page.title()).toBe('Worklist · neurotriage');
  expect((await rowUids())[0]).toBe(uid(4));
  const first = page.locator('#worklist tbody tr').first();
  // Times are in the browser's zone, which the column heading names; the tooltip has the date, time and zone.
  expect(await page.locator('#worklist thead .zone').textContent()).toMatch(/^\(\S+\)$/);
  const arrival = first.locator('time');
  expect(new Date((await arrival.getAttribute('datetime'))!).getTime()).toBeCloseTo(minutesAgo(12), -5);
  expect(await arrival.getAttribute('title')).toMatch(/\b20\d\d\b.*\d\d:\d\d \S+$/);
  expect(await first.locator('.badge').textContent()).toBe('STAT');
  expect(await first.textContent()).toContain('Acute infarct');
  expect(await page.locator('#who').textContent()).toContain('pacs-admin');
  expect(await page.locator('#untriaged tbody tr').count()).toBe(1);
  expect(await page.locator('#untriaged tbody tr').textContent()).toContain('no readable DWI or FLAIR series');
  // Open it, or (an admin) score it again.
  expect(await page.locator('#untriaged tbody tr button').evaluateAll((bs) => bs.map((b) => b.getAttribute('aria-label')))).toEqual(['Open study A24-10243', 'Score study A24-10243 again']);
  await page.locator('#live', { hasText: /^Live$/ }).waitFor();

  // The worker writes a haemorrhage scored STAT that arrived before the infarct: it must go to the top.
  await writeResult(redis, { uid: uid(6), priority: 'STAT', receivedAt: minutesAgo(20), looksLike: 'intracranial haemorrhage blood products', flagged: ['haemorrhage'], accession: 'A24-10242' }, true, MORE);
  // A reader on a study's row with the keyboard stays there when the list is rebuilt around it.
  await page.locator(`#worklist tbody tr[data-uid="${uid(2)}"] button`).first().focus();
  await page.locator(`#worklist tbody tr:first-child[data-uid="${uid(6)}"]`).waitFor({ timeout: 10_000 });
  expect(await page.evaluate("document.activeElement && document.activeElement.closest('tr') && document.activeElement.closest('tr').getAttribute('data-uid')")).toBe(uid(2));
  expect(await rowUids()).toEqual([uid(6), uid(4), uid(2), uid(1), uid(3), uid(5)]);
  // Routine studies with nothing flagged name the finding that orders them among the routine ones, highest first.
  const highest = await page.locator('#worklist tbody tr [data-role=highest]').allTextContents();
  expect(highest).toHaveLength(2);
  // Each read against its threshold, as the chips are ("highest: Atrophy 3% < 46%").
  const shownP = highest.map((t) => Number(/^highest: \S.* (<1|>99|\d+)% < (<1|>99|\d+)%$/.exec(t)?.[1]?.replace(/[<>]/, '')));
  expect(shownP.every(Number.isFinite)).toBe(true);
  expect(shownP[0]).toBeGreaterThanOrEqual(shownP[1]);
  expect(await page.locator('#worklist tbody tr').first().getAttribute('class')).toContain('fresh');
  await page.screenshot({ path: path.join(shots, 'worklist.png') });
  if (process.env.NT_SCREENSHOT) {
    await page.waitForTimeout(2500); // let the arrival highlight fade for the README picture
    await page.screenshot({ path: path.resolve(process.env.NT_SCREENSHOT) });
  }
});

test('the study view shows findings, and the admin query editor changes a query', async () => {
  await page.locator('#worklist tbody tr').first().click();
  await page.waitForSelector('#study[open] table.findings');
  expect(await page.title()).toBe('STAT study · neurotriage');
  expect(await page.locator('#study-title').textContent()).toContain('A24-10242');
  expect(await page.locator('#study table.findings tbody tr.triggered th').first().textContent()).toContain('Haemorrhage');
  expect(await page.locator('#study table.findings tbody tr.triggered .statement').first().textContent()).toMatch(/^flagged: P \d\.\d+ >= threshold \d\.\d+; sets the STAT priority$/);
  expect(await page.locator('#study .facts').textContent()).toContain('flagged when P');
  await page.screenshot({ path: path.join(shots, 'study.png') });
  await page.fill('#adhoc-text', 'haemorrhage with blood products');
  await page.click('#adhoc-form button');
  await page.locator('#adhoc-result', { hasText: 'Similarity' }).waitFor();
  await page.fill('#check-text', 'No intracranial haemorrhage. Ventricles normal.');
  await page.click('#check-form button');
  await page.waitForSelector('#check-result h4');
  expect(await page.locator('#check-result').textContent()).toContain('stated absent in the report');
  await page.screenshot({ path: path.join(shots, 'report-check.png') });
  // A sentence the images do not support is shown with its probability against the threshold (both
  // probabilities), not with its raw image score beside a probability threshold.
  const unsupported = {
    StudyInstanceUID: uid(6), notMentioned: [], contradicted: [], unsupported: [0, 1], mentionSimilarity: 0.6, truncated: null, warnings: [],
    sentences: [{ index: 0, text: 'A mass in the right frontal lobe.', assertion: 'present', about: 'A mass in the right frontal lobe', matchedQueryId: 'mass', matchSimilarity: 0.9, matchMargin: 0.2, imageScore: -0.041, probability: 0.012, threshold: 0.4, supported: false, notChecked: null },
      { index: 1, text: 'Hydrocephalus.', assertion: 'present', about: 'Hydrocephalus', matchedQueryId: 'hydrocephalus', matchSimilarity: 0.9, matchMargin: 0.2, imageScore: -0.3, probability: 0.0000412, threshold: 0.4, supported: false, notChecked: null }],
  };
  await page.route('**/report-check', (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(unsupported) }));
  await page.click('#check-form button');
  await page.locator('#check-result h4', { hasText: 'not supported by the images' }).waitFor();
  expect(await page.locator('#check-result li').allTextContents()).toEqual([
    'A mass in the right frontal lobe. (Mass: P 0.012 < threshold 0.400)',
    // Never rounded to a certainty (0.000).
    'Hydrocephalus. (Hydrocephalus: P <0.001 < threshold 0.400)',
  ]);
  await page.unroute('**/report-check');
  await page.click('#study-close');
  // The dialog's 'close' event (which restores the title) is dispatched as a task after the click.
  await waitInPage(page, "document.title === 'Worklist · neurotriage'");
  expect(await page.title()).toBe('Worklist · neurotriage');

  await changeQuery(redis, { put: { id: 'infarct_dwi', text: 'acute infarct with restricted diffusion', priority: 'STAT', sequences: ['DWI'] } });
  await page.click('.tab[data-view=queries]');
  await page.waitForSelector('#query-form:not([hidden])');
  await page.fill('#query-form [name=id]', 'subdural');
  await page.fill('#query-form [name=text]', 'subdural haematoma crescentic collection');
  await page.selectOption('#query-form [name=priority]', 'STAT');
  await page.click('#query-save');
  await page.locator('#queries code', { hasText: /^subdural$/ }).waitFor();
  const stored = JSON.parse((await redis.hget('nt:queries', 'subdural')) as string);
  // A site query, with the normal-study sentence as its contrast, stored explicitly; not calibrated (no reports yet).
  expect(stored).toEqual({ id: 'subdural', text: 'subdural haematoma crescentic collection', negativeText: 'normal brain no abnormality', priority: 'STAT', targetSensitivity: 0.95, origin: 'site' });
  const row0 = page.locator('#queries tbody tr', { has: page.locator('code', { hasText: /^subdural$/ }) });
  expect(await row0.locator('.warning').textContent()).toContain('Not calibrated');
  expect(await page.locator('#query-result').textContent()).toContain('Calibration: not calibrated');
  expect(await page.locator('#queries-warnings').textContent()).toContain('subdural');
  await page.screenshot({ path: path.join(shots, 'queries.png') });
  // A query read on named sequences says so, and editing its priority keeps them.
  const row = page.locator('#queries tbody tr', { has: page.locator('code', { hasText: /^infarct_dwi$/ }) });
  expect(await row.textContent()).toContain('on: DWI');
  await row.locator('button', { hasText: 'Edit' }).click();
  await page.selectOption('#query-form [name=priority]', 'URGENT');
  await page.click('#query-save');
  await page.locator('#queries tbody tr', { hasText: 'infarct_dwi' }).locator('.badge', { hasText: 'URGENT' }).waitFor();
  expect(JSON.parse((await redis.hget('nt:queries', 'infarct_dwi')) as string)).toMatchObject({ priority: 'URGENT', sequences: ['DWI'] });
  // A refused query shows its error alone: the earlier save's outcome is gone.
  expect(await page.locator('#query-result').textContent()).not.toBe('');
  await page.fill('#query-form [name=id]', 'nonsense');
  await page.fill('#query-form [name=text]', 'the weather is nice');
  await page.click('#query-save');
  await page.locator('#query-error', { hasText: 'not text the model can use' }).waitFor();
  expect(await page.locator('#query-result').textContent()).toBe('');
});

test('search lists past studies by similarity and opens one', async () => {
  await page.click('.tab[data-view=search]');
  await page.fill('#search-q', 'enhancing mass lesion');
  await page.click('#search-form button');
  await page.locator('#search-results li').first().waitFor();
  expect(await page.locator('#search-results li').first().textContent()).toContain('A24-10236');
  expect(await page.title()).toBe('Search past studies · neurotriage');
  // The search score is signed and named, never a bare number that reads as a probability.
  const scores = await page.locator('#search-results .score').allTextContents();
  expect(scores.every((t) => /^score ([+\u2212]\d\.\d{3}|0\.000)$/.test(t))).toBe(true);
  expect(await page.locator('#search-results .score').first().getAttribute('title')).toContain('not a probability');
  // Its arrival time has the full date, time and zone as tooltip, as on the worklist.
  expect(await page.locator('#search-results time').first().getAttribute('title')).toMatch(/\b20\d\d\b.*\d\d:\d\d \S+$/);
  expect(await page.locator('#search-results li').count()).toBe(6);
  await page.screenshot({ path: path.join(shots, 'search.png') });
  await page.locator('#search-results li button').first().click();
  await page.waitForSelector('#study[open]');
  expect(await page.locator('#study-title').textContent()).toContain('A24-10236');
  await page.click('#study-close');
});

test('a wrong token is refused on the sign-in form; a reader sees queries without editing controls', async () => {
  const other = await browser.newPage();
  try {
    await other.goto(base);
    await other.screenshot({ path: path.join(shots, 'login.png') });
    expect(await other.locator('#nav').isVisible()).toBe(false);
    expect(await other.locator('#logout').isVisible()).toBe(false);
    await other.fill('#token', 'wrong-token-wrong-token');
    await other.click('#login-form button[type=submit]');
    await other.locator('#login-error', { hasText: /./ }).waitFor();
    expect(await other.locator('#login-error').textContent()).toBe('That token was not accepted.');
    expect(await other.locator('#view-worklist').isHidden()).toBe(true);
    // A reader signs in: the query list is there, the editing controls are not.
    await other.fill('#token', TOKENS[0].token);
    await other.click('#login-form button[type=submit]');
    await other.locator('#worklist tbody tr').first().waitFor();
    await other.click('.tab[data-view=queries]');
    await other.locator('#queries tbody tr').first().waitFor();
    expect(await other.locator('#queries button', { hasText: 'Edit' }).count()).toBe(0);
    expect(await other.locator('#query-form').isVisible()).toBe(false);
  } finally {
    await other.close();
  }
});

test('the worklist shows 100 studies at a time and "Show more" pages on with the cursor', async () => {
  for (let n = 100; n < 200; n++) {
    await writeResult(redis, { uid: uid(n), priority: 'ROUTINE', receivedAt: minutesAgo(300 - n), looksLike: 'normal brain', accession: `B${n}` }, false, MORE);
  }
  await page.reload();
  await page.locator('#worklist tbody tr').first().waitFor();
  expect(await page.locator('#worklist tbody tr').count()).toBe(100);
  expect(await page.locator('#worklist-more').isVisible()).toBe(true);
  await page.click('#worklist-more');
  await page.locator('#worklist tbody tr').nth(105).waitFor();
  expect((await rowUids()).slice(0, 2)).toEqual([uid(6), uid(4)]);
  expect(new Set(await rowUids()).size).toBe(106);
  expect(await page.locator('#worklist-more').isVisible()).toBe(false);
});

test('chips that set the priority look different from flagged ones that do not, and from unflagged findings', async () => {
  // A STAT infarct that also has a flagged URGENT mass: the infarct sets the priority, the mass does not.
  await writeResult(redis, { uid: uid(300), priority: 'STAT', receivedAt: minutesAgo(1), looksLike: 'acute infarct restricted diffusion enhancing mass lesion', flagged: ['acute_infarct', 'mass'], accession: 'A24-30000' }, true, MORE);
  await page.click('.tab[data-view=worklist]');
  const row = page.locator(`#worklist tbody tr[data-uid="${uid(300)}"]`);
  await row.waitFor();
  const triggered = row.locator('.chip[data-state=triggered]');
  const flagged = row.locator('.chip[data-state=flagged]');
  expect(await triggered.textContent()).toContain('Acute infarct');
  expect(await triggered.textContent()).toContain('(sets the priority)');
  expect(await flagged.textContent()).toContain('Mass');
  expect(await flagged.textContent()).toContain('(flagged, does not set the priority)');
  const styleOf = (l: typeof triggered) => l.evaluate((n) => { const c = (globalThis as unknown as { getComputedStyle(e: unknown): { borderTopStyle: string; fontWeight: string; borderTopWidth: string } }).getComputedStyle(n); return { border: c.borderTopStyle, weight: c.fontWeight, width: c.borderTopWidth }; });
  // A live update can re-render the row between finding a chip and reading its style (a detached node has no
  // computed style): read again until the chip is in the page.
  const look = async (l: typeof triggered) => {
    for (let i = 0; ; i++) {
      const style = await styleOf(l);
      if (style.border !== '' || i >= 20) return style;
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const [t, f] = [await look(triggered), await look(flagged)];
  expect(t.border).toBe('solid');
  expect(f.border).toBe('dashed');
  expect(Number(t.weight)).toBeGreaterThan(Number(f.weight));
  expect(await triggered.getAttribute('title')).toMatch(/^flagged: P .* >= threshold .*; sets the STAT priority$/);
  // The percent is shown with the threshold it cleared, not alone.
  expect(await triggered.locator('.thr').textContent()).toMatch(/^ \u2265 (<1|>99|\d+)%$/);
  expect(await flagged.locator('.thr').textContent()).toMatch(/^ \u2265 (<1|>99|\d+)%$/);
  // The study view: three states, each with the decision in words.
  await row.click();
  await page.waitForSelector('#study[open] table.findings');
  const states = await page.locator('#study table.findings tbody tr').evaluateAll((rows) => rows.map((r) => [r.getAttribute('data-query'), r.className]));
  expect(states).toEqual(expect.arrayContaining([['acute_infarct', 'triggered'], ['mass', 'flagged'], ['haemorrhage', 'unflagged']]));
  expect(await page.locator('#study tr.unflagged .statement').first().textContent()).toMatch(/^not flagged: P .* < threshold /);
  expect(await page.locator('#study .facts').textContent()).toContain('Judged with');
  await page.screenshot({ path: path.join(shots, 'chips.png') });
  await page.click('#study-close');
});

test('the study view says which images of the series read were left out, which series were joined, and a post-contrast or lossy-compressed series', async () => {
  await writeResult(redis, {
    uid: uid(302), priority: 'ROUTINE', receivedAt: minutesAgo(2), looksLike: 'normal brain', accession: 'A24-30002', confidence: 0.94,
    series: [
      { SeriesInstanceUID: `${uid(302)}.1`, SeriesNumber: 3, sequence: 'T2', used: true, dropped: [{ images: 7, reason: 'missing-slices' }, { images: 1, reason: 'unreadable' }] },
      { SeriesInstanceUID: `${uid(302)}.2`, SeriesNumber: 9, sequence: 'FLAIR', used: true, contrastEnhanced: true, lossyCompressed: true },
      { SeriesInstanceUID: `${uid(302)}.3`, SeriesNumber: 4, sequence: 'DWI', used: true },
      { SeriesInstanceUID: `${uid(302)}.4`, SeriesNumber: 5, sequence: 'DWI', used: false, reason: 'not-selected', dropped: [{ images: 2, reason: 'unreadable' }], lossyCompressed: true },
      // Instances the listener refused at C-STORE: two of the SWI read, and a series refused whole.
      { SeriesInstanceUID: `${uid(302)}.5`, SeriesNumber: 6, sequence: 'SWI', used: true, dropped: [{ images: 2, reason: 'refused-at-intake', refusal: 'invalid-image', status: 'A900' }] },
      { SeriesInstanceUID: `${uid(302)}.60606060`, sequence: 'unknown', used: false, reason: 'refused-at-intake', dropped: [{ images: 12, reason: 'refused-at-intake', refusal: 'invalid-image', status: 'A900' }] },
      { SeriesInstanceUID: `${uid(302)}.7`, SeriesNumber: 7, sequence: 'ADC', used: true, joinedWith: [`${uid(302)}.8`] },
      { SeriesInstanceUID: `${uid(302)}.8`, SeriesNumber: 57, sequence: 'ADC', used: true, joinedWith: [`${uid(302)}.7`] },
    ],
  }, true, MORE);
  const row = page.locator(`#worklist tbody tr[data-uid="${uid(302)}"]`);
  await row.waitFor();
  await row.click();
  await page.waitForSelector('#study[open] .facts');
  const facts = await page.locator('#study .facts').textContent();
  expect(facts).toContain('Confidence94%');
  expect(facts).toContain('Images left outT2 (series 3): 7 images missing-slices, 1 image unreadable; SWI (series 6): 2 images refused at intake (A900 invalid-image)');
  expect(facts).toContain('Refused at intakeseries …60606060: 12 images (A900 invalid-image): not stored, not read');
  expect(facts).toContain('Post-contrastFLAIR (series 9): no pre-contrast series of the sequence was received');
  // Lossy history (lossy-compressed before, sent on decompressed): marked on the series read, not on one not read.
  expect(facts).toContain('Lossy-compressed beforeFLAIR (series 9): marked, not scored differently (the models are trained on lossless pixel data)');
  expect(facts).toContain('Joined seriesADC: series 7 + 57 (one acquisition received as several series, read as one volume)');
  // A series not read is not listed: its images did not lower the confidence.
  expect(facts).not.toContain('series 5');
  await page.click('#study-close');
});

test('a provisional result says what it waits for', async () => {
  await writeResult(redis, {
    uid: uid(301), priority: 'URGENT', receivedAt: minutesAgo(1), looksLike: 'enhancing mass lesion tumour', flagged: ['mass'], accession: 'A24-30001',
    missing: ['DWI'], provisional: { waitingFor: ['DWI'], until: Date.now() + 300_000 },
  }, true, MORE);
  const row = page.locator(`#worklist tbody tr[data-uid="${uid(301)}"]`);
  await row.waitFor();
  expect(await row.locator('.tag.provisional').textContent()).toContain('PROVISIONAL');
  expect(await row.locator('.tag.provisional').getAttribute('title')).toContain('Waiting for DWI');
});

test('the queries page shows calibration, the threshold in use and the operating points with the point in use marked', async () => {
  await page.click('.tab[data-view=queries]');
  const infarct = page.locator('#queries tbody tr[data-id=acute_infarct]');
  await infarct.waitFor();
  // A bundle query of the STAT class is judged with the class threshold of the decision table (0.4 in use).
  expect(await infarct.textContent()).toContain('STAT class threshold');
  expect(await infarct.locator(':scope > td.num').textContent()).toContain('0.400');
  // ...and says the class's sensitivity it is judged at (as GET /api/v1/queries judgedAtSensitivity), not its own target.
  expect(await infarct.locator(':scope > td.num').textContent()).toContain('STAT class threshold, for 95% study-level sensitivity');
  await infarct.locator('button', { hasText: 'Edit' }).click();
  // The edit form leaves the own target empty (the class's applies), saying which one.
  expect(await page.locator('#query-form [name=targetSensitivity]').inputValue()).toBe('');
  expect(await page.locator('#query-form [name=targetSensitivity]').getAttribute('placeholder')).toBe('STAT class: 0.95');
  await page.click('#query-cancel');
  await infarct.locator('details.points summary').click();
  expect(await infarct.locator('table.points tbody tr').count()).toBeGreaterThan(0);
  // None of its own rows is in use (the class threshold is), and its own estimate says it is not the one in use.
  expect(await infarct.locator('table.points tr.in-use').count()).toBe(0);
  expect(await infarct.locator('table.points caption').textContent()).toContain('judged with the STAT class threshold');
  expect(await infarct.textContent()).toContain('at its own threshold (not the one in use)');
  // The study-level STAT table: sensitivity against false-STAT rate, the bundle's default row marked in use.
  const decision = page.locator('#decision table.points');
  await decision.first().waitFor();
  expect(await decision.first().locator('caption').textContent()).toContain('false-STAT rate');
  const inUse = decision.first().locator('tr.in-use');
  expect(await inUse.count()).toBe(1);
  expect(await inUse.textContent()).toContain('95%');
  expect(await inUse.textContent()).toContain('in use');
  // A site query calibrated from reports shows where its calibration came from.
  const q = { id: 'white_matter_site', text: 'white matter hyperintensities small vessel disease', negativeText: 'normal brain no abnormality', priority: 'ROUTINE' as const, sequences: undefined };
  const calibration = {
    a: 8, b: -2, threshold: 0.3, targetSensitivity: 0.9, method: 'report-pseudo-labels' as const, studies: 412, positives: 57, calibratedAt: '2026-11-30T10:00:00Z',
    fittedFor: queryFingerprint(q), bundleVersion: 'test-bundle-1', estimated: { sensitivity: 0.91, specificity: 0.83 },
    operatingPoints: [
      { threshold: 0.5, sensitivity: 0.8, falsePositiveRate: 0.1 }, { threshold: 0.3, sensitivity: 0.91, falsePositiveRate: 0.17 },
      { threshold: 0.1, sensitivity: 1, falsePositiveRate: 0.999 },
    ],
  };
  await changeQuery(redis, { put: { id: q.id, text: q.text, negativeText: q.negativeText, priority: q.priority, targetSensitivity: 0.9, calibration } });
  const site = page.locator('#queries tbody tr[data-id=white_matter_site]');
  await site.waitFor();
  expect(await site.textContent()).toContain('calibrated on 412 past studies of this site');
  expect(await site.textContent()).toContain('estimated sensitivity 91%, specificity 83%');
  await site.locator('details.points summary').click();
  expect(await site.locator('table.points tr.in-use').textContent()).toContain('91%');
  // Measured rates are shown as measured: a sensitivity of 1 is 100% (">99%" is for one study's probability).
  const last = site.locator('table.points tbody tr').last();
  expect(await last.locator('td').first().textContent()).toBe('100%');
  expect(await last.locator('td').nth(1).textContent()).toBe('99.9%');
  expect(await site.locator('table.points').textContent()).not.toContain('>99%');
  await page.screenshot({ path: path.join(shots, 'queries-calibration.png'), fullPage: true });
});

test('drafts stay with their study, an open study follows its re-scoring, a backlog never hides "Not triaged", and a 401 closes the study', async () => {
  await page.click('.tab[data-view=worklist]');
  const openRow = async (n: number) => {
    await page.locator(`#worklist tbody tr[data-uid="${uid(n)}"]`).click();
    await page.locator('#study[open] .facts code', { hasText: uid(n) }).waitFor();
  };
  // A draft typed for one patient's study is not shown in another's, and is there again when the first reopens.
  await openRow(4);
  await page.fill('#check-text', 'DRAFT FOR STUDY FOUR: acute infarct.');
  await page.fill('#adhoc-text', 'left MCA infarct');
  await page.click('#study-close');
  await openRow(2);
  expect(await page.inputValue('#check-text')).toBe('');
  expect(await page.inputValue('#adhoc-text')).toBe('');
  await page.click('#study-close');
  await openRow(4);
  expect(await page.inputValue('#check-text')).toBe('DRAFT FOR STUDY FOUR: acute infarct.');
  expect(await page.inputValue('#adhoc-text')).toBe('left MCA infarct');

  // The worker re-scores the open study: the view shows the new result and says it changed.
  expect(await page.locator('#study-title .badge').textContent()).toBe('STAT');
  await writeResult(redis, { uid: uid(4), priority: 'URGENT', receivedAt: minutesAgo(12), looksLike: 'enhancing mass lesion tumour oedema', flagged: ['mass'], accession: 'A24-10244' }, true, MORE);
  await page.locator('#study .updated').waitFor({ timeout: 10_000 });
  expect(await page.locator('#study-title .badge').textContent()).toBe('URGENT');
  expect(await page.inputValue('#check-text')).toBe('DRAFT FOR STUDY FOUR: acute infarct.');
  await page.click('#study-close');

  // 205 studies being scored (a PACS backlog): the failed one stays listed, the count says 200+.
  const backlog = Array.from({ length: 205 }, (_, i) => `nt:study:1.2.826.0.1.3680043.10.78.${i}`);
  for (const key of backlog) await redis.hset(key, { status: 'received', firstReceivedAt: minutesAgo(1), lastReceivedAt: minutesAgo(1), instances: 1 });
  try {
    await page.click('.tab[data-view=worklist]');
    await page.locator('#count', { hasText: '200+ being scored' }).waitFor({ timeout: 10_000 });
    expect(await page.locator('#untriaged tbody tr').count()).toBe(1);
    expect(await page.locator('#untriaged').isHidden()).toBe(false);
  } finally {
    await redis.del(...backlog);
  }

  // The session ends while a study is open: back to sign-in with nothing of the study left on screen.
  await openRow(4);
  await page.route('**/report-check', (route) => route.fulfill({ status: 401, contentType: 'application/problem+json', body: '{"status":401,"title":"Unauthorized","detail":"token revoked"}' }));
  await page.click('#check-form button[type=submit]');
  await page.locator('#login').waitFor({ state: 'visible' });
  expect(await page.locator('#study').getAttribute('open')).toBeNull();
  expect(await page.locator('#study-body').innerHTML()).toBe('');
  expect(await page.inputValue('#check-text')).toBe('');
  await page.unroute('**/report-check');
});
