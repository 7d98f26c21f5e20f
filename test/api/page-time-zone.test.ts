// The worklist page's times across a change of daylight saving time, in real headless Chromium with the browser's
// zone and clock set (Europe/London, en-GB): the column heading names the zone now, and a time in another offset (a
// study that arrived before the October change) says its own zone, so no row reads an hour off under the heading.
// A page left open across the change names the new zone at its next refresh, and search results on screen follow
// the clock within the minute too, written again from the answer held (the search is not asked again).
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Browser, Page } from 'playwright-core';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { launchChromium } from '../helpers/browser';
import { TOKENS, buildTestApp, writeResult } from './helpers';

let redis: Redis;
let app: FastifyInstance;
let browser: Browser;
let base: string;

const uid = (n: number) => `1.2.826.0.1.3680043.10.78.${n}`;

beforeAll(async () => {
  redis = await startRedisClient('producer');
  // 10:00 BST on Saturday 24 October, before the change; 09:00 GMT on Monday 26 October, after it.
  await writeResult(redis, { uid: uid(1), priority: 'URGENT', receivedAt: Date.parse('2026-10-24T09:00:00Z'), looksLike: 'enhancing mass lesion', flagged: ['mass'], accession: 'TZ-BEFORE' });
  await writeResult(redis, { uid: uid(2), priority: 'ROUTINE', receivedAt: Date.parse('2026-10-26T09:00:00Z'), looksLike: 'normal brain', accession: 'TZ-AFTER' });
  app = await buildTestApp(redis);
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  browser = await launchChromium();
});

afterAll(() => stopRedisClient(redis, browser, app));

async function signedIn(now: string): Promise<Page> {
  const page = await browser.newPage({ timezoneId: 'Europe/London', locale: 'en-GB' });
  await page.clock.install({ time: new Date(now) });
  await page.goto(base);
  await page.fill('#token', TOKENS[1].token);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#worklist tbody tr');
  return page;
}

const arrival = (page: Page, accession: string) => page.locator('#worklist tbody tr', { hasText: accession }).locator('time').first().textContent();
const found = (page: Page, accession: string) => page.locator('#search-results li', { hasText: accession }).locator('time');

test('after the October change the heading says GMT and a study from before it says BST beside its time', async () => {
  const page = await signedIn('2026-10-26T12:00:00Z');
  expect(await page.locator('#worklist thead .zone').textContent()).toBe('(GMT)');
  expect(await arrival(page, 'TZ-AFTER')).toBe('09:00');
  expect(await arrival(page, 'TZ-BEFORE')).toBe('24 Oct 10:00 BST');
  await page.close();
});

test('a page open across the change names the new zone at its next refresh', async () => {
  const page = await signedIn('2026-10-25T00:30:00Z'); // 01:30 BST, the first of the two
  expect(await page.locator('#worklist thead .zone').textContent()).toBe('(BST)');
  expect(await arrival(page, 'TZ-BEFORE')).toBe('24 Oct 10:00');
  await page.clock.fastForward('01:00:00'); // 01:30 GMT, the second; the minute's refresh runs
  await page.locator('#worklist thead .zone', { hasText: '(GMT)' }).waitFor({ timeout: 10_000 });
  expect(await arrival(page, 'TZ-BEFORE')).toBe('24 Oct 10:00 BST');
  await page.close();
});

test('search results on screen across the change say the zone of their times again within the minute, not asked again', async () => {
  const page = await signedIn('2026-10-25T00:30:00Z'); // 01:30 BST, the first of the two
  await page.click('.tab[data-view=search]');
  await page.fill('#search-q', 'enhancing mass lesion');
  await page.click('#search-form button');
  await found(page, 'TZ-BEFORE').waitFor();
  expect(await found(page, 'TZ-BEFORE').textContent()).toBe('24 Oct 10:00');
  expect(await found(page, 'TZ-AFTER').textContent()).toBe('26 Oct 09:00 GMT');
  let searches = 0;
  page.on('request', (r) => { if (r.url().includes('/api/v1/search')) searches += 1; });
  await page.locator('#search-results li', { hasText: 'TZ-BEFORE' }).locator('button').focus();
  await page.clock.fastForward('01:00:00'); // 01:30 GMT, the second; the minute's timer runs
  await found(page, 'TZ-BEFORE').filter({ hasText: 'BST' }).waitFor({ timeout: 10_000 });
  expect(await found(page, 'TZ-BEFORE').textContent()).toBe('24 Oct 10:00 BST');
  expect(await found(page, 'TZ-AFTER').textContent()).toBe('26 Oct 09:00');
  expect(await found(page, 'TZ-BEFORE').getAttribute('title')).toMatch(/10:00 BST$/);
  expect(searches).toBe(0);
  // Written again, the list keeps the keyboard on the result it was on.
  expect(await page.evaluate("document.activeElement.closest('#search-results li')?.textContent ?? ''")).toContain('TZ-BEFORE');
  await page.close();
});
