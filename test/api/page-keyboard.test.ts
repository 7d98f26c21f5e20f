// The worklist page as a radiologist uses it through a shift, in real headless Chromium against the real app on
// listen(0) with a real Redis: keyboard only (open a study, close it, and be back on its row even when a live result
// rebuilt the list meanwhile), and the page zoomed to 200 % on a 1280 x 720 screen (640 x 360 CSS pixels: nothing
// cut off at the side, the header not covering what has focus; the study view's and the queries' wide tables scroll in
// their own box).
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { resultKeys } from '../../shared/results';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { launchChromium } from '../helpers/browser';
import { calibrated } from '../helpers/calibration';
import { QUERIES, TOKENS, buildTestApp, testModelStatus, writeResult } from './helpers';

// A site query with a long name: the Finding filter lists it.
const LONG = calibrated({ id: 'posterior_reversible_encephalopathy_syndrome_with_haemorrhage', text: 'acute infarct restricted diffusion', priority: 'URGENT' }, { a: 10, b: -3, scoreThreshold: 0.3, targetSensitivity: 0.95 });

let redis: Redis;
let app: FastifyInstance;
let browser: Browser;
let base: string;
const contexts: BrowserContext[] = [];

const uid = (n: number) => `1.2.826.0.1.3680043.10.80.${n}`;

beforeAll(async () => {
  redis = await startRedisClient('producer');
  for (let n = 1; n <= 6; n++) {
    await writeResult(redis, { uid: uid(n), priority: n <= 2 ? 'STAT' : 'ROUTINE', receivedAt: Date.now() - n * 60_000, looksLike: n <= 2 ? 'acute infarct restricted diffusion' : 'normal brain', flagged: n <= 2 ? ['acute_infarct'] : [], accession: `A24-3000${n}` });
  }
  // A study flagged with it: a wide row (its screen-reader text sits at the far end of the table).
  await writeResult(redis, { uid: uid(8), priority: 'URGENT', receivedAt: Date.now() - 9 * 60_000, looksLike: 'acute infarct restricted diffusion', flagged: [LONG.id, 'acute_infarct'], accession: 'A24-30008', missing: ['ADC'] }, false, [...QUERIES, LONG]);
  const status = testModelStatus({ manifest: { queries: [...QUERIES, LONG] } });
  app = await buildTestApp(redis, { modelStatus: () => status });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  browser = await launchChromium();
});

afterAll(async () => {
  for (const c of contexts) await c.close();
  await stopRedisClient(redis, browser, app);
});

async function signedIn(viewport: { width: number; height: number }, deviceScaleFactor = 1, token = TOKENS[0].token): Promise<Page> {
  const context = await browser.newContext({ viewport, deviceScaleFactor });
  contexts.push(context);
  const page = await context.newPage();
  await page.goto(base);
  await page.fill('#token', token);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#worklist tbody tr');
  await page.locator('#live', { hasText: /^Live$/ }).waitFor();
  return page;
}

const focusedRow = (page: Page) => page.evaluate("document.activeElement && document.activeElement.closest('tr') ? document.activeElement.closest('tr').getAttribute('data-uid') : (document.activeElement && document.activeElement.tagName)");

test('keyboard only: Tab reaches the studies, Enter opens one, Escape closes it back onto its row even after a live refresh rebuilt the list', async () => {
  const page = await signedIn({ width: 1280, height: 720 });
  // From the worklist heading (where sign-in leaves the keyboard): the filters, then the first study.
  const rows = await page.locator('#worklist tbody tr').evaluateAll((trs) => trs.map((r) => r.getAttribute('data-uid')));
  for (let i = 0; i < 3; i++) await page.keyboard.press('Tab');
  expect(await focusedRow(page)).toBe(rows[0]);
  await page.keyboard.press('Tab');
  const second = rows[1]!;
  expect(await focusedRow(page)).toBe(second);
  await page.keyboard.press('Enter');
  await page.locator('#study[open] .facts code', { hasText: second }).waitFor();
  // A result arrives while the study is open: the list behind the dialog is rebuilt, the opening button replaced.
  await writeResult(redis, { uid: uid(7), priority: 'STAT', receivedAt: Date.now(), looksLike: 'acute infarct restricted diffusion', flagged: ['acute_infarct'], accession: 'A24-30007' }, true);
  await page.locator(`#worklist tbody tr[data-uid="${uid(7)}"]`).waitFor({ state: 'attached', timeout: 10_000 });
  await page.keyboard.press('Escape');
  await page.locator('#study').waitFor({ state: 'hidden' });
  for (let i = 0; i < 40 && (await focusedRow(page)) !== second; i++) await page.waitForTimeout(25);
  expect(await focusedRow(page)).toBe(second);
  await page.keyboard.press('Tab');
  expect(await focusedRow(page)).not.toBe('BODY');
});

test('at 200 % zoom on a 1280 x 720 screen nothing is cut off at the side and the header does not cover the focused heading', async () => {
  const page = await signedIn({ width: 640, height: 360 }, 2);
  // The page itself does not scroll sideways (a wide table scrolls in its own box).
  expect(await page.evaluate('document.documentElement.scrollWidth <= document.documentElement.clientWidth')).toBe(true);
  for (const id of ['logout', 'live', 'who']) {
    const box = (await page.locator(`#${id}`).boundingBox())!;
    expect(box.x + box.width).toBeLessThanOrEqual(640);
  }
  // Sign-in left the keyboard on the heading: it is on screen, not under the header.
  expect(await page.evaluate('document.activeElement.id')).toBe('worklist-title');
  expect(await page.evaluate(`(() => { const h = document.getElementById('worklist-title'); const r = h.getBoundingClientRect();
    const at = document.elementFromPoint(r.left + 5, r.top + r.height / 2); return r.top >= 0 && r.bottom <= innerHeight && !!at && h.contains(at); })()`)).toBe(true);
  // Tabbing down to a study keeps it visible and uncovered too.
  await page.locator(`#worklist tbody tr[data-uid="${uid(3)}"] button`).focus();
  expect(await page.evaluate(`(() => { const b = document.activeElement; const r = b.getBoundingClientRect();
    const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2); return !!at && b.contains(at); })()`)).toBe(true);
});

test('at 200 % zoom the study view and the triage queries scroll their wide tables in their own box, not sideways whole', async () => {
  const page = await signedIn({ width: 640, height: 360 }, 2, TOKENS[1].token);
  const sideways = (selector: string) => page.evaluate(`(() => { const e = document.querySelector(${JSON.stringify(selector)}); return e.scrollWidth - e.clientWidth; })()`);
  await page.locator(`#worklist tbody tr[data-uid="${uid(8)}"] button`).click();
  await page.waitForSelector('#study[open] table.findings');
  // The findings table (P, threshold, similarity and a column per sequence) is wider than the dialog.
  expect(await page.evaluate("document.querySelector('#study table.findings').scrollWidth > document.querySelector('#study').clientWidth")).toBe(true);
  expect(await sideways('#study')).toBeLessThanOrEqual(0);
  await page.keyboard.press('Escape');
  await page.locator('#study').waitFor({ state: 'hidden' });
  // An administrator's queries, with their actions column.
  await page.click('.tab[data-view=queries]');
  await page.waitForSelector('#queries tbody tr .actions button');
  expect(await page.evaluate('document.documentElement.scrollWidth <= document.documentElement.clientWidth')).toBe(true);
});

test('an empty list says whether the filters hide every study or nothing is scored yet', async () => {
  const page = await signedIn({ width: 1280, height: 720 });
  await page.selectOption('#filters select[name="priority"]', 'ROUTINE');
  await page.selectOption('#flagged-filter', LONG.id);
  await page.locator('#empty', { hasText: 'No studies match these filters.' }).waitFor();
  expect(await page.locator('#worklist tbody tr').count()).toBe(0);

  // The same page once the worklist holds nothing: no filter is the reason.
  await redis.rename(resultKeys.worklist(), `${resultKeys.worklist()}:aside`);
  try {
    await page.selectOption('#flagged-filter', '');
    await page.selectOption('#filters select[name="priority"]', '');
    await page.locator('#empty', { hasText: 'No studies scored yet.' }).waitFor();
  } finally {
    await redis.rename(`${resultKeys.worklist()}:aside`, resultKeys.worklist());
  }
});
