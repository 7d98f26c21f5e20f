// The page's search of past studies in real headless Chromium, against the real app on listen(0) with a real Redis
// holding more results than one page of search answers (20): "More results" continues the search shown, a search
// of only spaces is answered beside the box, and a slow earlier search does not replace a later one.
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Browser, Page } from 'playwright-core';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { launchChromium, waitInPage } from '../helpers/browser';
import { READER, TOKENS, buildTestApp, writeResult } from './helpers';

let redis: Redis;
let app: FastifyInstance;
let browser: Browser;
let page: Page;
let base: string;

const uid = (n: number) => `1.2.826.0.1.3680043.10.81.${n}`;

beforeAll(async () => {
  redis = await startRedisClient('producer');
  // 30 infarcts and 30 masses: each search has a second page.
  for (let n = 0; n < 60; n++) {
    const infarct = n % 2 === 0;
    await writeResult(redis, {
      uid: uid(n), priority: infarct ? 'STAT' : 'URGENT', receivedAt: Date.now() - n * 60_000,
      looksLike: infarct ? 'acute infarct restricted diffusion' : 'enhancing mass lesion tumour', flagged: [infarct ? 'acute_infarct' : 'mass'], accession: `S${n}`,
    });
  }
  app = await buildTestApp(redis);
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  browser = await launchChromium();
  page = await browser.newPage();
  await page.goto(base);
  await page.fill('#token', TOKENS[0].token);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#worklist tbody tr');
  await page.click('.tab[data-view=search]');
}, 60_000);

afterAll(() => stopRedisClient(redis, browser, app));

const shownAccessions = () => page.locator('#search-results li button > span:not(.badge):not(.score)').allTextContents();
const apiAccessions = async (q: string, offset: number) => {
  const res = await app.inject({ url: `/api/v1/search?${new URLSearchParams({ q, limit: '20', offset: String(offset) })}`, headers: READER });
  return (res.json() as { items: { AccessionNumber: string }[] }).items.map((i) => i.AccessionNumber);
};

test('"More results" continues the search shown, even when the box was edited since', async () => {
  await page.fill('#search-q', 'acute infarct');
  await page.click('#search-form button');
  await waitInPage(page, "document.querySelectorAll('#search-results li').length === 20");
  expect(await shownAccessions()).toEqual(await apiAccessions('acute infarct', 0));
  // The reader starts typing another search, then asks for more of the one on screen.
  await page.fill('#search-q', 'enhancing mass lesion');
  await page.click('#search-more');
  await waitInPage(page, "document.querySelectorAll('#search-results li').length > 20");
  const shown = await shownAccessions();
  expect(shown).toEqual([...(await apiAccessions('acute infarct', 0)), ...(await apiAccessions('acute infarct', 20))]);
  expect(new Set(shown).size).toBe(shown.length);
});

test('a search of only spaces is answered beside the box, with no request and no schema error', async () => {
  await page.fill('#search-q', 'acute infarct');
  await page.click('#search-form button');
  await waitInPage(page, "document.querySelectorAll('#search-results li').length === 20");
  const asked: string[] = [];
  const onRequest = (r: { url: () => string }) => { if (r.url().includes('/api/v1/search')) asked.push(r.url()); };
  page.on('request', onRequest);
  try {
    await page.fill('#search-q', '     ');
    await page.click('#search-form button');
    await page.locator('#search-warning', { hasText: 'at least 3 characters' }).waitFor();
    // The earlier search's results and its "More results" go: they do not answer what is in the box.
    expect(await page.locator('#search-results li').count()).toBe(0);
    expect(await page.isHidden('#search-more')).toBe(true);
    expect(await page.isHidden('#notice')).toBe(true);
    expect(asked).toEqual([]);
  } finally {
    page.off('request', onRequest);
  }
});

test('an earlier search answered after a later one does not replace it', async () => {
  // The first search's answer held back 1.5 s on its way to the page (the server answers at once; a busy proxy or
  // network would do the same); the reader searches again meanwhile.
  await page.route((url) => url.pathname === '/api/v1/search' && url.searchParams.get('q') === 'acute infarct', async (route) => {
    const response = await route.fetch();
    await new Promise((r) => setTimeout(r, 1500));
    await route.fulfill({ response });
  });
  try {
    await page.fill('#search-q', 'acute infarct');
    await page.click('#search-form button');
    await page.fill('#search-q', 'enhancing mass lesion');
    await page.click('#search-form button');
    const second = await apiAccessions('enhancing mass lesion', 0);
    await waitInPage(page, `document.querySelector('#search-results li button > span:not(.badge):not(.score)')?.textContent === ${JSON.stringify(second[0])}`);
    // Long enough for the held-back answer to arrive and be ignored.
    await new Promise((r) => setTimeout(r, 2500));
    expect(await shownAccessions()).toEqual(second);
  } finally {
    await page.unrouteAll({ behavior: 'wait' });
  }
});

test('signing out leaves nothing of the search or the worklist for the next user of the browser', async () => {
  await page.fill('#search-q', 'acute infarct');
  await page.click('#search-form button');
  await waitInPage(page, "document.querySelectorAll('#search-results li').length === 20");
  await page.click('#logout');
  await page.waitForSelector('#login-form', { state: 'visible' });
  // Gone from the page, not only hidden behind the sign-in form.
  expect(await page.locator('#search-results li').count()).toBe(0);
  expect(await page.locator('#worklist tbody tr').count()).toBe(0);
  expect(await page.inputValue('#search-q')).toBe('');
  // Another user signs in on the same tab and opens Search: an empty box, no results, no "More results".
  await page.fill('#token', TOKENS[1].token);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#worklist tbody tr');
  await page.click('.tab[data-view=search]');
  expect(await page.locator('#search-results li').count()).toBe(0);
  expect(await page.inputValue('#search-q')).toBe('');
  expect(await page.isHidden('#search-more')).toBe(true);
});

test('a worklist refresh still on its way at sign-out does not put the rows back', async () => {
  // The worklist's answers held back 1.5 s on their way to the page; a filter change asks for a refresh, and the
  // reader signs out before it lands.
  await page.click('.tab[data-view=worklist]');
  await page.waitForSelector('#worklist tbody tr');
  await page.route((url) => url.pathname === '/api/v1/studies', async (route) => {
    const response = await route.fetch();
    await new Promise((r) => setTimeout(r, 1500));
    await route.fulfill({ response });
  });
  try {
    await page.evaluate("document.querySelector('#filters').dispatchEvent(new Event('change'))");
    await page.click('#logout');
    await page.waitForSelector('#login-form', { state: 'visible' });
    // Long enough for the held-back answers to arrive.
    await new Promise((r) => setTimeout(r, 2500));
    expect(await page.locator('#worklist tbody tr').count()).toBe(0);
    expect(await page.textContent('#count')).toBe('');
  } finally {
    await page.unrouteAll({ behavior: 'wait' });
  }
});
