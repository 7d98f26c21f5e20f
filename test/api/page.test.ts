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
import { chromium, type Browser, type Page } from 'playwright-core';
import type { TriageQuery } from '../../shared/model-manifest';
import { changeQuery } from '../../shared/queries';
import { connectRedis } from '../../shared/redis';
import { startRedis, type TestRedis } from '../helpers/redis';
import { calibrated } from '../helpers/calibration';
import { QUERIES, TOKENS, buildTestApp, writeResult } from './helpers';

const MORE: TriageQuery[] = [
  ...QUERIES,
  calibrated({ id: 'hydrocephalus', text: 'hydrocephalus enlarged ventricles', priority: 'STAT' }, { a: 10, b: -3, scoreThreshold: 0.3, targetSensitivity: 0.95 }),
  calibrated({ id: 'white_matter_disease', text: 'white matter hyperintensities small vessel disease', priority: 'ROUTINE' }, { a: 10, b: -3, scoreThreshold: 0.3, targetSensitivity: 0.9 }),
];

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
  for (const q of MORE) await changeQuery(redis, { put: q });
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
  app = await buildTestApp(redis);
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
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
  expect((await rowUids())[0]).toBe(uid(4));
  const first = page.locator('#worklist tbody tr').first();
  expect(await first.locator('.badge').textContent()).toBe('STAT');
  expect(await first.textContent()).toContain('Acute infarct');
  expect(await page.locator('#who').textContent()).toContain('pacs-admin');
  expect(await page.locator('#untriaged tbody tr').count()).toBe(1);
  expect(await page.locator('#untriaged tbody tr').textContent()).toContain('no readable DWI or FLAIR series');
  await page.locator('#live', { hasText: /^Live$/ }).waitFor();

  // The worker writes a haemorrhage scored STAT that arrived before the infarct: it must go to the top.
  await writeResult(redis, { uid: uid(6), priority: 'STAT', receivedAt: minutesAgo(20), looksLike: 'intracranial haemorrhage blood products', flagged: ['haemorrhage'], accession: 'A24-10242' }, true, MORE);
  await page.locator(`#worklist tbody tr:first-child[data-uid="${uid(6)}"]`).waitFor({ timeout: 10_000 });
  expect(await rowUids()).toEqual([uid(6), uid(4), uid(2), uid(1), uid(3), uid(5)]);
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
  expect(await page.locator('#study-title').textContent()).toContain('A24-10242');
  expect(await page.locator('#study table.findings tbody tr.flagged th').first().textContent()).toContain('Haemorrhage');
  await page.screenshot({ path: path.join(shots, 'study.png') });
  await page.fill('#adhoc-text', 'haemorrhage with blood products');
  await page.click('#adhoc-form button');
  await page.locator('#adhoc-result', { hasText: 'Similarity' }).waitFor();
  await page.fill('#check-text', 'No intracranial haemorrhage. Ventricles normal.');
  await page.click('#check-form button');
  await page.waitForSelector('#check-result h4');
  expect(await page.locator('#check-result').textContent()).toContain('stated absent in the report');
  await page.screenshot({ path: path.join(shots, 'report-check.png') });
  await page.click('#study-close');

  await changeQuery(redis, { put: { id: 'infarct_dwi', text: 'acute infarct with restricted diffusion', priority: 'STAT', sequences: ['DWI'] } });
  await page.click('.tab[data-view=queries]');
  await page.waitForSelector('#query-form:not([hidden])');
  await page.fill('#query-form [name=id]', 'subdural');
  await page.fill('#query-form [name=text]', 'subdural haematoma crescentic collection');
  await page.selectOption('#query-form [name=priority]', 'STAT');
  await page.click('#query-save');
  await page.locator('#queries code', { hasText: /^subdural$/ }).waitFor();
  const stored = JSON.parse((await redis.hget('nt:queries', 'subdural')) as string);
  expect(stored).toEqual({ id: 'subdural', text: 'subdural haematoma crescentic collection', priority: 'STAT' });
  await page.screenshot({ path: path.join(shots, 'queries.png') });
  // A query read on named sequences says so, and editing its priority keeps them.
  const row = page.locator('#queries tbody tr', { has: page.locator('code', { hasText: /^infarct_dwi$/ }) });
  expect(await row.textContent()).toContain('on: DWI');
  await row.locator('button', { hasText: 'Edit' }).click();
  await page.selectOption('#query-form [name=priority]', 'URGENT');
  await page.click('#query-save');
  await page.locator('#queries tbody tr', { hasText: 'infarct_dwi' }).locator('.badge', { hasText: 'URGENT' }).waitFor();
  expect(JSON.parse((await redis.hget('nt:queries', 'infarct_dwi')) as string)).toMatchObject({ priority: 'URGENT', sequences: ['DWI'] });
});

test('search lists past studies by similarity and opens one', async () => {
  await page.click('.tab[data-view=search]');
  await page.fill('#search-q', 'enhancing mass lesion');
  await page.click('#search-form button');
  await page.locator('#search-results li').first().waitFor();
  expect(await page.locator('#search-results li').first().textContent()).toContain('A24-10236');
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
