// Many worklist tabs in one browser, in real headless Chromium against the real app on plain HTTP (HTTP/1.1, where a
// browser keeps at most 6 connections to one host) with a real Redis. Each tab's own live stream held one of those
// connections for good, so a 7th tab never loaded. The tabs signed in with one token now share one stream: every
// tab loads, every tab gets each change, and when the tab holding the stream closes another takes it over. A tab
// signed in with another token keeps a stream of its own. The same holds on plain http:// to a host name (a ward's
// internal network), where the page is not a secure context and has neither Web Locks nor crypto.subtle.
// On a secure page too the tabs elect the holder among themselves, so a holder frozen without a word is replaced,
// and gives its own stream up when it comes back.
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { launchChromium } from '../helpers/browser';
import { TOKENS, testDeps, writeResult } from './helpers';
import { build } from '../../services/api/app';

let redis: Redis;
let app: FastifyInstance;
let browser: Browser;
let context: BrowserContext;
let base: string;
let port: number;

const uid = (n: number) => `1.2.826.0.1.3680043.10.81.${n}`;
const TABS = 8;

beforeAll(async () => {
  redis = await startRedisClient('producer');
  await writeResult(redis, { uid: uid(1), priority: 'ROUTINE', receivedAt: Date.now() - 600_000, looksLike: 'normal brain', accession: 'A24-30001' });
  app = await build(testDeps(redis));
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
  // nt-ward.test reaches the same loopback app by a name, as a hospital's http://neurotriage.hospital.local would.
  browser = await launchChromium({ hostRules: 'MAP nt-ward.test 127.0.0.1' });
  context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
}, 60_000);

afterAll(() => stopRedisClient(redis, context, browser, app));

const openStreams = async () => (await app.metrics.sseClients.get()).values[0]?.value ?? 0;

/** A tab of the one browser context, signed in; counts the live streams it asked for. */
async function tab(token: string, where = { context, base }): Promise<{ page: Page; streams: () => number }> {
  const page = await where.context.newPage();
  let streams = 0;
  page.on('request', (r) => { if (r.url().endsWith('/api/v1/events')) streams += 1; });
  // A page that waits behind six open streams never loads: fail on it in seconds, not at the test's timeout.
  await page.goto(where.base, { timeout: 10_000 });
  await page.fill('#token', token);
  await page.click('#login-form button[type=submit]');
  await page.locator('#worklist tbody tr').first().waitFor({ timeout: 10_000 });
  await page.locator('#live', { hasText: /^Live$/ }).waitFor({ timeout: 10_000 });
  return { page, streams: () => streams };
}

const row = (page: Page, n: number) => page.locator(`#worklist tbody tr[data-uid="${uid(n)}"]`);

test(`${TABS} tabs with one token all load and share one stream; each change reaches every tab, also after the tab holding the stream closes`, async () => {
  const tabs = [];
  for (let i = 0; i < TABS; i++) tabs.push(await tab(TOKENS[0].token));
  expect(await openStreams()).toBe(1);
  expect(tabs.map((t) => t.streams())).toEqual([1, ...Array(TABS - 1).fill(0)]);

  await writeResult(redis, { uid: uid(2), priority: 'STAT', receivedAt: Date.now(), looksLike: 'acute infarct restricted diffusion', flagged: ['acute_infarct'], accession: 'A24-30002' }, true);
  for (const t of tabs) await row(t.page, 2).waitFor({ timeout: 5_000 });

  // Another token in the same browser: never fed from the first token's stream, it opens its own.
  const other = await tab(TOKENS[1].token);
  expect(other.streams()).toBe(1);
  expect(await openStreams()).toBe(2);

  // The tab holding the stream closes: another takes it over, the rest stay live and get the next change.
  await tabs[0].page.close();
  const rest = tabs.slice(1);
  for (let i = 0; i < 200 && rest.every((t) => t.streams() === 0); i++) await new Promise((r) => setTimeout(r, 25));
  expect(rest.reduce((n, t) => n + t.streams(), 0)).toBe(1);
  for (let i = 0; i < 200 && (await openStreams()) < 2; i++) await new Promise((r) => setTimeout(r, 25));
  for (const t of rest) await t.page.locator('#live', { hasText: /^Live$/ }).waitFor({ timeout: 5_000 });
  await writeResult(redis, { uid: uid(3), priority: 'URGENT', receivedAt: Date.now(), looksLike: 'enhancing mass lesion', flagged: ['mass'], accession: 'A24-30003' }, true);
  for (const t of [...rest, other]) await row(t.page, 3).waitFor({ timeout: 5_000 });
  expect(await openStreams()).toBe(2);
}, 120_000);

test(`on plain http:// to a host name (not a secure context) ${TABS} tabs still all load and share one stream, also after the tab holding it closes or crashes`, async () => {
  const ward = { context: await browser.newContext({ viewport: { width: 1280, height: 720 } }), base: `http://nt-ward.test:${port}` };
  try {
    const before = await openStreams();
    const tabs = [];
    for (let i = 0; i < TABS; i++) tabs.push(await tab(TOKENS[0].token, ward));
    expect(await tabs[0].page.evaluate('window.isSecureContext')).toBe(false);
    expect(await openStreams()).toBe(before + 1);
    expect(tabs.reduce((n, t) => n + t.streams(), 0)).toBe(1);
    // The election settles: no tab claims the stream again while its holder is there.
    await new Promise((r) => setTimeout(r, 4_000));
    expect(tabs.reduce((n, t) => n + t.streams(), 0)).toBe(1);
    expect(await openStreams()).toBe(before + 1);

    await writeResult(redis, { uid: uid(5), priority: 'STAT', receivedAt: Date.now(), looksLike: 'acute infarct restricted diffusion', flagged: ['acute_infarct'], accession: 'A24-30005' }, true);
    for (const t of tabs) await row(t.page, 5).waitFor({ timeout: 5_000 });

    // The tab holding the stream closes: another takes it over, the rest stay live and get the next change.
    const holder = tabs.find((t) => t.streams() === 1)!;
    await holder.page.close();
    const rest = tabs.filter((t) => t !== holder);
    for (let i = 0; i < 400 && rest.every((t) => t.streams() === 0); i++) await new Promise((r) => setTimeout(r, 25));
    expect(rest.reduce((n, t) => n + t.streams(), 0)).toBe(1);
    for (let i = 0; i < 200 && (await openStreams()) !== before + 1; i++) await new Promise((r) => setTimeout(r, 25));
    for (const t of rest) await t.page.locator('#live', { hasText: /^Live$/ }).waitFor({ timeout: 5_000 });
    await writeResult(redis, { uid: uid(6), priority: 'URGENT', receivedAt: Date.now(), looksLike: 'enhancing mass lesion', flagged: ['mass'], accession: 'A24-30006' }, true);
    for (const t of rest) await row(t.page, 6).waitFor({ timeout: 5_000 });
    expect(await openStreams()).toBe(before + 1);

    // The new holder's page crashes (no word to the others): after a few seconds' silence another takes over.
    const crashed = rest.find((t) => t.streams() === 1)!;
    const cdp = await ward.context.newCDPSession(crashed.page);
    const gone = new Promise((r) => crashed.page.once('crash', r));
    void cdp.send('Page.crash').catch(() => undefined);
    await gone;
    const left = rest.filter((t) => t !== crashed);
    for (let i = 0; i < 400 && left.every((t) => t.streams() === 0); i++) await new Promise((r) => setTimeout(r, 25));
    expect(left.reduce((n, t) => n + t.streams(), 0)).toBe(1);
    for (const t of left) await t.page.locator('#live', { hasText: /^Live$/ }).waitFor({ timeout: 5_000 });
    await writeResult(redis, { uid: uid(7), priority: 'STAT', receivedAt: Date.now(), looksLike: 'acute infarct restricted diffusion', flagged: ['acute_infarct'], accession: 'A24-30007' }, true);
    for (const t of left) await row(t.page, 7).waitFor({ timeout: 5_000 });
    for (let i = 0; i < 200 && (await openStreams()) !== before + 1; i++) await new Promise((r) => setTimeout(r, 25));
    expect(await openStreams()).toBe(before + 1);

    // Another token on the same page: never fed from this token's channel, it opens a stream of its own.
    const other = await tab(TOKENS[1].token, ward);
    expect(other.streams()).toBe(1);
    expect(await openStreams()).toBe(before + 2);
  } finally {
    await ward.context.close();
  }
}, 120_000);

test('the shared stream interrupted (the API stopped and started again): every tab says so, then reconnects with the list current', async () => {
  let other = await build(testDeps(redis));
  await other.listen({ host: '127.0.0.1', port: 0 });
  const port = (other.server.address() as AddressInfo).port;
  const own = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  try {
    const tabs: Page[] = [];
    for (let i = 0; i < 3; i++) {
      const page = await own.newPage();
      await page.goto(`http://127.0.0.1:${port}`);
      await page.fill('#token', TOKENS[0].token);
      await page.click('#login-form button[type=submit]');
      await page.locator('#live', { hasText: /^Live$/ }).waitFor({ timeout: 10_000 });
      tabs.push(page);
    }
    await other.close();
    for (const page of tabs) {
      await page.locator('#live-note', { hasText: 'the service did not answer, so what is shown may be out of date' }).waitFor({ timeout: 15_000 });
      expect(await page.locator('#live').textContent()).toBe('Reconnecting…');
    }
    // Written while the API is down: no stream carries it, each tab reloads its list on the reconnect.
    await writeResult(redis, { uid: uid(4), priority: 'STAT', receivedAt: Date.now(), looksLike: 'acute infarct restricted diffusion', flagged: ['acute_infarct'], accession: 'A24-30004' }, true);
    other = await build(testDeps(redis));
    await other.listen({ host: '127.0.0.1', port });
    for (const page of tabs) {
      await page.locator('#live', { hasText: /^Live$/ }).waitFor({ timeout: 40_000 });
      expect(await page.locator('#live-note').isHidden()).toBe(true);
      await row(page, 4).waitFor({ timeout: 5_000 });
    }
    // One stream for the three tabs, the others told by the tab holding it.
    expect((await other.metrics.sseClients.get()).values[0]?.value).toBe(1);
  } finally {
    await own.close();
    await other.close();
  }
}, 120_000);

test('on a secure page the tab holding the stream frozen (no word to the others): another takes it over, and the frozen one, back, gives its own up and gets the next change', async () => {
  const own = { context: await browser.newContext({ viewport: { width: 1280, height: 720 } }), base };
  try {
    const before = await openStreams();
    const tabs = [];
    for (let i = 0; i < 3; i++) tabs.push(await tab(TOKENS[0].token, own));
    expect(await tabs[0].page.evaluate('window.isSecureContext')).toBe(true);
    expect(tabs.map((t) => t.streams())).toEqual([1, 0, 0]);
    expect(await openStreams()).toBe(before + 1);

    // Frozen (its scripts stopped, as when a browser freezes a background tab or the tab hangs; here paused in the
    // debugger): its stream stays open and it says nothing.
    const cdp = await own.context.newCDPSession(tabs[0].page);
    await cdp.send('Debugger.enable');
    await cdp.send('Debugger.pause');
    const rest = tabs.slice(1);
    for (let i = 0; i < 400 && rest.every((t) => t.streams() === 0); i++) await new Promise((r) => setTimeout(r, 25));
    expect(rest.reduce((n, t) => n + t.streams(), 0)).toBe(1);
    for (const t of rest) await t.page.locator('#live', { hasText: /^Live$/ }).waitFor({ timeout: 5_000 });
    await writeResult(redis, { uid: uid(8), priority: 'STAT', receivedAt: Date.now(), looksLike: 'acute infarct restricted diffusion', flagged: ['acute_infarct'], accession: 'A24-30008' }, true);
    for (const t of rest) await row(t.page, 8).waitFor({ timeout: 5_000 });
    expect(await openStreams()).toBe(before + 2);

    // Back: it hears the later holder, closes its own stream and is fed from the other's, the change made meanwhile too.
    await cdp.send('Debugger.resume');
    for (let i = 0; i < 400 && (await openStreams()) !== before + 1; i++) await new Promise((r) => setTimeout(r, 25));
    expect(await openStreams()).toBe(before + 1);
    expect(tabs[0].streams()).toBe(1);
    await writeResult(redis, { uid: uid(9), priority: 'URGENT', receivedAt: Date.now(), looksLike: 'enhancing mass lesion', flagged: ['mass'], accession: 'A24-30009' }, true);
    for (const t of tabs) await row(t.page, 9).waitFor({ timeout: 5_000 });
    await row(tabs[0].page, 8).waitFor({ timeout: 5_000 });
    expect(await openStreams()).toBe(before + 1);
  } finally {
    await own.context.close();
  }
}, 120_000);
