// The RIS's report in the worklist page's study view, in real headless Chromium (Debian's /usr/bin/chromium via
// playwright-core) against the API with the real report feed on a real Redis (test/reports/helpers.ts): a report
// filed through POST /api/v1/reports is shown read-only, its text as text (markup in it stays characters), with its
// status and time; a study without one says so. It was only readable through GET /api/v1/studies/{uid}/report.
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser';
import { REPORTER, receiveStudy, startFeed, waitFor, type Feed } from '../reports/helpers';
import { TOKENS, writeResult } from './helpers';

const REPORTED = '1.2.826.0.1.3680043.10.88.1';
const UNREPORTED = '1.2.826.0.1.3680043.10.88.2';
// Markup and line breaks as a RIS may send them: shown as written, never run.
const TEXT = 'FINDINGS:\nEnhancing <img src=x onerror="window.pwned=1"> mass, right frontal.\n\nIMPRESSION:\nMass & oedema.';

let feed: Feed;
let browser: Browser;
let page: Page;
let base: string;

beforeAll(async () => {
  feed = await startFeed();
  for (const [uid, acc] of [[REPORTED, 'PR-1'], [UNREPORTED, 'PR-2']]) {
    await receiveStudy(feed.client, uid, acc);
    await writeResult(feed.client, { uid, priority: 'URGENT', receivedAt: Date.now() - 60_000, looksLike: 'enhancing mass lesion tumour oedema', flagged: ['mass'], accession: acc }, true);
  }
  await waitFor(async () => (await feed.client.sismember('nt:reports:accession:PR-1', REPORTED)) === 1, 'the study indexed by accession');
  const res = await feed.app.inject({ method: 'POST', url: '/api/v1/reports', headers: REPORTER, payload: { AccessionNumber: 'PR-1', text: TEXT, status: 'C' } });
  expect(res.statusCode).toBe(201);
  await feed.app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(feed.app.server.address() as AddressInfo).port}`;
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(10_000);
  await page.goto(base);
  await page.fill('#token', TOKENS[0].token); // a reader
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#worklist tbody tr');
});

afterAll(async () => {
  await browser?.close();
  await feed?.stop();
});

async function open(uid: string): Promise<void> {
  if (await page.locator('#study[open]').count()) await page.click('#study-close'); // left open by a failed test
  await page.locator(`#worklist tbody tr[data-uid="${uid}"]`).click();
  await page.waitForSelector('#study[open] table.findings');
}

test('a study with a report shows its text as written, read-only, with its status and time', async () => {
  await open(REPORTED);
  const section = page.locator('#study [data-role=report]');
  await section.waitFor();
  expect(await section.locator('[data-role=report-text]').textContent()).toBe(TEXT);
  // Markup in the report stays text: no element made of it, nothing run.
  expect(await section.locator('img').count()).toBe(0);
  expect(await page.evaluate('window.pwned')).toBeUndefined();
  // Line breaks kept as written.
  expect(await page.evaluate("getComputedStyle(document.querySelector('#study [data-role=report-text]')).whiteSpace")).toMatch(/^pre/);
  // Nothing to edit in it.
  expect(await section.locator('textarea, input, [contenteditable]').count()).toBe(0);
  const meta = await section.locator('[data-role=report-meta]').textContent();
  expect(meta).toMatch(/Corrected/);
  expect(meta).toMatch(/received .*\d\d:\d\d/);
  expect(await section.locator('time').getAttribute('datetime')).toMatch(/^20\d\d-/);
  await page.click('#study-close');
});

test('a study without a report says there is none yet', async () => {
  await open(UNREPORTED);
  const section = page.locator('#study [data-role=report]');
  await section.waitFor();
  expect(await section.textContent()).toMatch(/No report yet/);
  expect(await section.locator('[data-role=report-text]').count()).toBe(0);
  // Not the other study's report.
  expect(await section.textContent()).not.toContain('IMPRESSION');
  await page.click('#study-close');
});
