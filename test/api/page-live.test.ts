// The worklist page's live-update state in real headless Chromium against the real app on listen(0) with a real
// Redis: a stream refused for the per-user cap (429 with Retry-After) is retried no sooner than Retry-After and the
// page says why, while the list still loads; 503, 403 and 401 answers from the stream; and the studies left off
// the list because their stored result is unreadable (counted for everyone, their UIDs for an admin), and an
// admin's "Score again" on those and on a study that was not triaged (a real job on the real queue). The page's
// clock is Playwright's fake one where the test waits out a Retry-After. An API stopped and started again on its
// port: the interruption is said, and the list is current after the reconnect.
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { Queue } from 'bullmq';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { resultKeys, worklistScore } from '../../shared/results';
import { keys, STUDY_QUEUE } from '../../shared/studies';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { launchChromium } from '../helpers/browser';
import { TOKENS, testDeps, writeResult } from './helpers';
import { build } from '../../services/api/app';

let redis: Redis;
let app: FastifyInstance;
let browser: Browser;
let base: string;
const contexts: BrowserContext[] = [];

const uid = (n: number) => `1.2.826.0.1.3680043.10.79.${n}`;
const UNREADABLE = uid(90);

beforeAll(async () => {
  redis = await startRedisClient('producer');
  await writeResult(redis, { uid: uid(1), priority: 'STAT', receivedAt: Date.now() - 600_000, looksLike: 'acute infarct restricted diffusion', flagged: ['acute_infarct'], accession: 'A24-20001' });
  await writeResult(redis, { uid: uid(2), priority: 'ROUTINE', receivedAt: Date.now() - 300_000, looksLike: 'normal brain', accession: 'A24-20002' });
  // A result cut off mid-write: left off the list, counted.
  await redis.multi()
    .hset(keys.study(UNREADABLE), { status: 'scored', firstReceivedAt: Date.now(), lastReceivedAt: Date.now(), instances: 40 })
    .set(resultKeys.result(UNREADABLE), '{"StudyInstanceUID":')
    .zadd(resultKeys.worklist(), worklistScore('STAT', Date.now()), UNREADABLE)
    .exec();
  const deps = testDeps(redis);
  // One stream per user, so a second tab is refused.
  app = await build({ ...deps, settings: { ...deps.settings, API_LIVE_MAX_STREAMS_PER_USER: 1 } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  browser = await launchChromium();
});

afterAll(() => stopRedisClient(redis, browser, app));

afterEach(async () => {
  for (const c of contexts.splice(0)) await c.close();
});

/**
 * A new tab (its own sessionStorage) signed in with a token; its clock faked and its stream answered by `events`
 * when given; on another app than the shared one at `at`.
 */
async function tab(token: string, opts: { fakeClock?: boolean; events?: Parameters<Page['route']>[1]; at?: string } = {}): Promise<{ page: Page; streams: () => number }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  contexts.push(context);
  const page = await context.newPage();
  if (opts.fakeClock) await page.clock.install();
  if (opts.events) await page.route('**/api/v1/events', opts.events);
  let streams = 0;
  page.on('request', (r) => { if (r.url().endsWith('/api/v1/events')) streams += 1; });
  await page.goto(opts.at ?? base);
  await page.fill('#token', token);
  await page.click('#login-form button[type=submit]');
  // Attached, not visible: a 401 from the stream goes back to sign-in at once.
  await page.waitForSelector('#worklist tbody tr', { state: 'attached' });
  return { page, streams: () => streams };
}

const openStreams = async () => (await app.metrics.sseClients.get()).values[0]?.value ?? 0;
const problem = (status: number, detail: string, headers: Record<string, string> = {}, members: Record<string, string> = {}) =>
  ({ status, contentType: 'application/problem+json', headers, body: JSON.stringify({ status, title: 'refused', detail, ...members }) });

test('a second tab past the per-user cap shows the list, says why live updates are paused, waits for Retry-After and resumes', async () => {
  const first = await tab(TOKENS[0].token);
  await first.page.locator('#live', { hasText: /^Live$/ }).waitFor();
  expect(await first.page.locator('#live-note').isHidden()).toBe(true);

  const second = await tab(TOKENS[0].token, { fakeClock: true });
  await second.page.locator('#live', { hasText: 'Live updates paused' }).waitFor();
  const note = second.page.locator('#live-note');
  expect(await note.isVisible()).toBe(true);
  expect(await note.textContent()).toContain('too many worklist tabs or windows are open for dr-reader');
  expect(await note.textContent()).toContain('resume shortly after one is closed');
  // The list is there all the same.
  expect(await second.page.locator('#worklist tbody tr').count()).toBe(2);
  expect(second.streams()).toBe(1);
  // The back-off alone would have asked again after 1, 2, 4 and 8 s; Retry-After (30 s) holds it off.
  await second.page.clock.runFor(20_000);
  expect(second.streams()).toBe(1);

  // The first tab is closed: the next try gets the place.
  await first.page.close();
  for (let i = 0; i < 200 && (await openStreams()) > 0; i++) await new Promise((r) => setTimeout(r, 25));
  await second.page.clock.runFor(11_000);
  await second.page.locator('#live', { hasText: /^Live$/ }).waitFor();
  expect(second.streams()).toBe(2);
  expect(await note.isHidden()).toBe(true);
});

test('a 429 from the stream is told apart by its limit member, not by the words of its detail', async () => {
  // Each answer's detail points at another limit than its member does: the page must follow the member.
  const answers = [
    problem(429, 'wording nobody matched on before', { 'Retry-After': '300' }, { limit: 'live-streams-per-user' }),
    problem(429, 'looks like API_LIVE_MAX_STREAMS_PER_USER but is not', { 'Retry-After': '300' }, { limit: 'rate' }),
    problem(429, 'more than 600 requests in 60 s (API_LIVE_MAX_STREAMS_PER_USER)', { 'Retry-After': '300' }, { limit: 'live-streams-per-process' }),
    problem(429, 'API_LIVE_MAX_STREAMS_PER_USER', { 'Retry-After': '300' }),
  ];
  let n = 0;
  const { page, streams } = await tab(TOKENS[1].token, {
    fakeClock: true,
    events: (route) => route.fulfill(answers[Math.min(n++, answers.length - 1)]),
  });
  const note = page.locator('#live-note');
  // Retry-After is long enough that the page's own clock, which runs on, never reaches it between two steps.
  const next = async (count: number, text: string) => {
    await page.clock.runFor(301_000);
    await page.locator('#live-note', { hasText: text }).waitFor();
    expect(streams()).toBe(count);
  };
  await page.locator('#live-note', { hasText: 'too many worklist tabs or windows are open for pacs-admin' }).waitFor();
  expect(await page.locator('#live').textContent()).toBe('Live updates paused');
  expect(streams()).toBe(1);
  await next(2, 'too many requests came from this workstation');
  await next(3, 'the service has as many live connections open as it allows');
  // No member (a proxy's 429, an older service): not taken for the per-user cap whatever the detail says.
  await next(4, 'Live updates are paused: the service asked to wait.');
  expect(await note.textContent()).not.toContain('worklist tabs');
});

test('a 503 from the stream is retried no sooner than its Retry-After and said; live updates resume when it passes', async () => {
  let down = true;
  const { page, streams } = await tab(TOKENS[1].token, {
    fakeClock: true,
    events: (route) => (down ? route.fulfill(problem(503, 'Redis did not answer within 3000 ms; try again shortly', { 'Retry-After': '20' })) : route.continue()),
  });
  await page.locator('#live-note', { hasText: 'Live updates are unavailable: the service is busy or restarting' }).waitFor();
  expect(await page.locator('#live').textContent()).toBe('Reconnecting…');
  expect(streams()).toBe(1);
  await page.clock.runFor(15_000);
  expect(streams()).toBe(1);
  down = false;
  await page.clock.runFor(6_000);
  await page.locator('#live', { hasText: /^Live$/ }).waitFor();
  expect(streams()).toBe(2);
  expect(await page.locator('#live-note').isHidden()).toBe(true);
});

test('a 403 from the stream is said once and not asked again; a 401 signs out once', async () => {
  const forbidden = await tab(TOKENS[1].token, { fakeClock: true, events: (route) => route.fulfill(problem(403, 'needs the reader role')) });
  await forbidden.page.locator('#live', { hasText: 'No live updates' }).waitFor();
  expect(await forbidden.page.locator('#live-note').textContent()).toContain('not open to this token (needs the reader role)');
  await forbidden.page.clock.runFor(120_000);
  expect(forbidden.streams()).toBe(1);
  expect(await forbidden.page.locator('#worklist tbody tr').count()).toBe(2);

  const expired = await tab(TOKENS[1].token, { fakeClock: true, events: (route) => route.fulfill({ ...problem(401, 'token expired'), headers: { 'WWW-Authenticate': 'Bearer' } }) });
  await expired.page.locator('#login').waitFor({ state: 'visible' });
  expect(await expired.page.locator('#login-error').textContent()).toContain('the token expired or is no longer accepted');
  await expired.page.clock.runFor(120_000);
  expect(expired.streams()).toBe(1);
});

test('the count in the header, a live region, is rewritten only when it changes, not at each minute\'s refresh', async () => {
  // Rewritten at every refresh, a screen reader announced the same count once a minute.
  const { page } = await tab(TOKENS[0].token, { fakeClock: true });
  await page.locator('#count', { hasText: 'studies' }).waitFor();
  await page.evaluate(`window.countWrites = 0;
    new MutationObserver((m) => { window.countWrites += m.length; })
      .observe(document.querySelector('#count'), { childList: true, characterData: true, subtree: true });`);
  const served = page.waitForResponse((r) => r.url().includes('/api/v1/worklist'));
  await page.clock.runFor(61_000);
  await served;
  await page.waitForTimeout(200);
  expect(await page.evaluate('window.countWrites')).toBe(0);
});

test('studies whose result cannot be read are counted in the header; their UIDs are listed, folded, for an admin only', async () => {
  const admin = await tab(TOKENS[1].token);
  const count = admin.page.locator('#count');
  await count.locator('text=/not shown/').waitFor();
  expect(await count.textContent()).toContain('· 1 not shown (result unreadable): tell the administrator');
  const box = admin.page.locator('#unreadable');
  expect(await box.isVisible()).toBe(true);
  expect(await box.getAttribute('open')).toBeNull();
  expect(await box.locator('summary').textContent()).toBe('Studies not shown because their stored result cannot be read (1)');
  await box.locator('summary').focus();
  await admin.page.keyboard.press('Enter');
  expect(await box.locator('li code').allTextContents()).toEqual([UNREADABLE]);

  const reader = await tab(TOKENS[0].token);
  await reader.page.locator('#count', { hasText: '1 not shown (result unreadable)' }).waitFor();
  expect(await reader.page.locator('#unreadable').isHidden()).toBe(true);
  expect(await reader.page.content()).not.toContain(UNREADABLE);
});

test('an admin has a study that was not triaged, whose result cannot be read, or any scored one scored again from the page; a reader has no such button', async () => {
  const FAILED = uid(91);
  await redis.multi()
    .hset(keys.study(FAILED), { status: 'failed', firstReceivedAt: Date.now() - 60_000, lastReceivedAt: Date.now() - 60_000, failureReason: 'study-missing: no stored instance', instances: 1, AccessionNumber: 'A24-20091' })
    .zadd(keys.untriagedStudies(), Date.now() - 60_000, FAILED)
    .hset(keys.studyInstances(FAILED), `${FAILED}.1.1`, `store/${FAILED}/${FAILED}.1/${FAILED}.1.1.dcm`)
    .hset(keys.studyInstances(UNREADABLE), `${UNREADABLE}.1.1`, `store/${UNREADABLE}/${UNREADABLE}.1/${UNREADABLE}.1.1.dcm`)
    .hset(keys.studyInstances(uid(2)), `${uid(2)}.1.1`, `store/${uid(2)}/${uid(2)}.1/${uid(2)}.1.1.dcm`)
    .exec();
  const queue = new Queue(STUDY_QUEUE, { connection: redis });
  try {
    const reader = await tab(TOKENS[0].token);
    await reader.page.locator('#untriaged tbody tr').waitFor();
    expect(await reader.page.locator('button', { hasText: 'Score again' }).count()).toBe(0);
    expect(await reader.page.locator('#untriaged-actions').isHidden()).toBe(true);

    const admin = await tab(TOKENS[1].token);
    await admin.page.locator('#untriaged tbody tr').waitFor();
    expect(await admin.page.locator('#untriaged-actions').isHidden()).toBe(false);
    await admin.page.getByRole('button', { name: 'Score study A24-20091 again' }).click();
    await admin.page.locator('#rescored', { hasText: 'Study A24-20091 is queued to be scored again.' }).waitFor();
    // It leaves "Not triaged" for "being scored"; keyboard focus goes to the message, not to the top of the page.
    await admin.page.locator('#untriaged').waitFor({ state: 'hidden' });
    expect(await admin.page.locator('#count').textContent()).toContain('· 1 being scored');
    expect(await admin.page.evaluate('document.activeElement.id')).toBe('rescored');
    expect(await redis.hget(keys.study(FAILED), 'status')).toBe('queued');

    await admin.page.locator('#unreadable summary').click();
    const unreadable = admin.page.getByRole('button', { name: `Score study ${UNREADABLE} again` });
    await unreadable.click();
    await admin.page.locator('#rescored', { hasText: `Study …${UNREADABLE.slice(-12)} is queued to be scored again.` }).waitFor();
    // Asked again while its job waits for a worker: the page says why nothing more was done.
    await unreadable.click();
    await admin.page.locator('#notice', { hasText: `study ${UNREADABLE} already has a job` }).waitFor();
    expect((await queue.getWaiting()).map((j) => j.data.StudyInstanceUID).sort()).toEqual([UNREADABLE, FAILED].sort());

    // From the study view (a study an earlier bundle scored, say): the outcome is said beside the button, in the dialog.
    await admin.page.locator('#worklist tbody tr', { hasText: 'A24-20002' }).click();
    await admin.page.getByRole('button', { name: 'Score study A24-20002 again' }).click();
    const outcome = admin.page.locator('#study [data-role=rescore-outcome]');
    await outcome.locator('text=Study A24-20002 is queued to be scored again.').waitFor();
    expect(await redis.hget(keys.study(uid(2)), 'status')).toBe('queued');
    expect(await admin.page.locator('#study [data-role=study-status]').textContent()).toBe('queued');
    await admin.page.click('#study-close');
    // One whose instances are not stored: the reason is in the dialog, not under it.
    await admin.page.locator('#worklist tbody tr', { hasText: 'A24-20001' }).click();
    await admin.page.getByRole('button', { name: 'Score study A24-20001 again' }).click();
    await outcome.locator('text=/has no stored instances to score/').waitFor();
    expect(await outcome.getAttribute('class')).toContain('error');
    await admin.page.click('#study-close');
    // A reader's study view has no such button.
    await reader.page.locator('#worklist tbody tr', { hasText: 'A24-20001' }).click();
    await reader.page.locator('#study-body dl').waitFor();
    expect(await reader.page.locator('#study button', { hasText: 'Score again' }).count()).toBe(0);
  } finally {
    await queue.obliterate({ force: true });
    await queue.close();
    await redis.multi()
      .del(keys.study(FAILED), keys.studyInstances(FAILED), keys.studyInstances(UNREADABLE), keys.studyInstances(uid(2)))
      .zrem(keys.untriagedStudies(), FAILED)
      .srem(keys.pendingStudies(), FAILED, UNREADABLE, uid(2))
      .hset(keys.study(UNREADABLE), 'status', 'scored')
      .hset(keys.study(uid(2)), 'status', 'scored')
      .exec();
  }
});

test('a stream silent past its heartbeats (a tab that slept, a dropped connection) is opened again, and the list reloaded', async () => {
  const { page, streams } = await tab(TOKENS[1].token, { fakeClock: true });
  await page.locator('#live', { hasText: /^Live$/ }).waitFor();
  expect(streams()).toBe(1);
  // 50 s of page time with nothing from the service (its 15 s heartbeats run on real time): given up...
  await page.clock.runFor(50_000);
  for (let i = 0; i < 200 && (await openStreams()) > 0; i++) await new Promise((r) => setTimeout(r, 25));
  // ...and opened again after the back-off, the list reloaded.
  const lists = page.waitForRequest((r) => r.url().includes('/api/v1/worklist'));
  await page.clock.runFor(2_000);
  await page.locator('#live', { hasText: /^Live$/ }).waitFor();
  expect(streams()).toBe(2);
  await page.clock.runFor(500);
  await lists;
});

test('the service not answering is said until it answers again; a tab coming back after a sleep reloads the list at once', async () => {
  const { page } = await tab(TOKENS[1].token, { fakeClock: true });
  await page.locator('#live', { hasText: /^Live$/ }).waitFor();
  await page.route('**/api/v1/worklist**', (route) => route.abort('connectionrefused'));
  await page.selectOption('#filters select[name=priority]', 'STAT');
  const notice = page.locator('#notice');
  await notice.locator('text=/The service did not answer/').waitFor();
  expect(await notice.textContent()).toContain('what is shown may be out of date');
  // Not a message that fades while the list is still out of date.
  await page.clock.runFor(15_000);
  expect(await notice.isVisible()).toBe(true);
  await page.unroute('**/api/v1/worklist**');
  await page.clock.runFor(50_000); // the minute's refresh
  await notice.waitFor({ state: 'hidden' });
  expect(await page.locator('#worklist tbody tr').count()).toBe(1);

  // Hidden for ten minutes with its timers held back (as a sleeping laptop's), then shown: reloaded at once.
  await page.clock.setSystemTime(Date.now() + 10 * 60_000);
  const lists = page.waitForRequest((r) => r.url().includes('/api/v1/worklist'));
  await page.evaluate("Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' }); document.dispatchEvent(new Event('visibilitychange'))");
  await lists;
});

test('the API stopped and started again: the page says live updates are interrupted, then reconnects with the list current and no row twice', async () => {
  let other = await build(testDeps(redis));
  await other.listen({ host: '127.0.0.1', port: 0 });
  const port = (other.server.address() as AddressInfo).port;
  try {
    const { page } = await tab(TOKENS[0].token, { at: `http://127.0.0.1:${port}` });
    await page.locator('#live', { hasText: /^Live$/ }).waitFor();
    await other.close();
    const note = page.locator('#live-note');
    await note.locator('text=/the service did not answer, so what is shown may be out of date/').waitFor({ timeout: 15_000 });
    expect(await page.locator('#live').textContent()).toBe('Reconnecting…');
    // A STAT result written while the API is down: its event reaches no one.
    await writeResult(redis, { uid: uid(50), priority: 'STAT', receivedAt: Date.now() - 3_600_000, looksLike: 'acute infarct restricted diffusion', flagged: ['acute_infarct'], accession: 'A24-20050' }, true);
    other = await build(testDeps(redis));
    await other.listen({ host: '127.0.0.1', port });
    await page.locator('#live', { hasText: /^Live$/ }).waitFor({ timeout: 40_000 });
    await note.waitFor({ state: 'hidden' });
    await page.locator(`#worklist tbody tr:first-child[data-uid="${uid(50)}"]`).waitFor({ timeout: 10_000 });
    const rows = await page.locator('#worklist tbody tr').evaluateAll((trs) => trs.map((r) => r.getAttribute('data-uid')));
    expect(new Set(rows).size).toBe(rows.length);
  } finally {
    await other.close();
  }
});
