// Key images: a synthetic study with a mass (tools/synth) is stored as the listener stores it, and its result
// carries a location made with the worker's own geometry code (the lesion centre the generator knows, mapped to the
// T2 series' nearest slice). The PNG and slices routes are checked through app.inject (pixels, windowing, errors,
// roles, audit), then the study view in real headless Chromium must show the key slice with the region drawn over
// it (round in mm on a series whose rows are spaced wider than its columns) and step through the neighbouring slices.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Browser, Page } from 'playwright-core';
import { PNG } from 'pngjs';
import { imageToPatient, loadStudyVolumes, locateInSource, type Vec3 } from '../../shared/imaging';
import { DEFAULT_PREPROCESSING } from '../../shared/imaging/spec';
import { axialPositions, makeSeries } from '../../shared/imaging/synthetic';
import { resultKeys, type FindingLocation, type StudyResult } from '../../shared/results';
import { instanceStorageKey, keys } from '../../shared/studies';
import { auditFileFor } from '../../services/api/plugins/audit';
import { createLogger } from '../../shared/logger';
import { runRetention } from '../../tools/retention';
import { findStudyIndex, synthStudy } from '../worker/studies';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { launchChromium, waitInPage } from '../helpers/browser';
import { ADMIN, READER, SCRAPER, TOKENS, buildTestApp, testDeps, writeResult } from './helpers';

const SEED = 4242;
let redis: Redis;
let app: FastifyInstance;
let dataDir: string;
let browser: Browser | undefined;
let page: Page;
let base: string;
let uid: string;
let location: FindingLocation;
let t2Slices: string[];

beforeAll(async () => {
  redis = await startRedisClient('producer');
  const deps = testDeps(redis);
  dataDir = deps.config.DATA_DIR;
  const study = synthStudy(SEED, findStudyIndex(SEED, ['mass']), { fast: true });
  uid = study.StudyInstanceUID;
  for (const f of study.files) {
    const key = instanceStorageKey(uid, f.SeriesInstanceUID, f.SOPInstanceUID);
    mkdirSync(path.dirname(path.join(dataDir, key)), { recursive: true });
    writeFileSync(path.join(dataDir, key), f.data);
    await redis.hset(keys.studyInstances(uid), f.SOPInstanceUID, key);
  }
  // Rows of the T2 series spaced 1.5 times its columns, as a rectangular field of view can make them (DCMTK's
  // dcmodify on the stored files): the region, round in mm, must be drawn as an ellipse in pixels.
  const load = async () => (await loadStudyVolumes(study.files.map((f) => ({ name: f.SOPInstanceUID, data: readFileSync(path.join(dataDir, instanceStorageKey(uid, f.SeriesInstanceUID, f.SOPInstanceUID))) })), DEFAULT_PREPROCESSING, { sequences: ['T2'] })).volumeInfo.T2!.source;
  const square = await load();
  const t2Files = study.files.filter((f) => f.SeriesInstanceUID === square.SeriesInstanceUID).map((f) => path.join(dataDir, instanceStorageKey(uid, f.SeriesInstanceUID, f.SOPInstanceUID)));
  execFileSync('dcmodify', ['-nb', '-m', `(0028,0030)=${square.pixelSpacing[0] * 1.5}\\${square.pixelSpacing[1]}`, ...t2Files]);
  // The location the worker would write, from the same geometry code, at the lesion centre.
  const source = await load();
  expect(source.pixelSpacing[0]).toBeCloseTo(1.5 * source.pixelSpacing[1], 5);
  t2Slices = source.slices.map((s) => s.SOPInstanceUID);
  const centre = study.labels.findings[0].center_mm as Vec3;
  const at = locateInSource(source, centre);
  location = {
    method: 'occlusion', sequence: 'T2', SeriesInstanceUID: source.SeriesInstanceUID, SOPInstanceUID: at.slice.SOPInstanceUID,
    ImageOrientationPatient: [...source.rowDirection, ...source.columnDirection] as FindingLocation['ImageOrientationPatient'],
    point: at.point, radiusPx: 24 / source.pixelSpacing[1], radiusMm: 24, patientMm: imageToPatient(source, at.sliceIndex, at.point),
    sliceIndex: at.sliceIndex, sliceCount: source.slices.length, scoreDrop: 0.1,
  };
  const result = await writeResult(redis, { uid, priority: 'URGENT', receivedAt: Date.now() - 60_000, looksLike: 'enhancing mass lesion tumour', flagged: ['mass'], accession: 'A24-KEY' });
  result.findings = result.findings.map((f) => (f.queryId === 'mass' ? { ...f, location } : f));
  await redis.set(resultKeys.result(uid), JSON.stringify(result satisfies StudyResult));
  app = await buildTestApp(redis, { config: deps.config });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await stopRedisClient(redis, app);
});

const auditText = () => readFileSync(auditFileFor(path.join(dataDir, 'audit', 'api-audit.jsonl')), 'utf8');
const imageUrl = (sop: string, qs = '') => `/api/v1/studies/${uid}/images/${sop}.png${qs}`;

describe('GET …/images/:SOPInstanceUID.png', () => {
  it('renders the stored frame as a greyscale PNG of the slice size, windowed automatically', async () => {
    const res = await app.inject({ url: imageUrl(location.SOPInstanceUID), headers: READER });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    expect(res.headers['cache-control']).toContain('private');
    const png = PNG.sync.read(res.rawPayload);
    const header = (await app.inject({ url: `/api/v1/studies/${uid}/series/${location.SeriesInstanceUID}/slices`, headers: READER })).json();
    expect([png.width, png.height]).toEqual([header.columns, header.rows]);
    // Greyscale (r = g = b) with real contrast: the head is there, the corners are dark.
    const grey = Array.from({ length: png.width * png.height }, (_, i) => png.data[i * 4]);
    expect(grey.every((g, i) => png.data[i * 4 + 1] === g && png.data[i * 4 + 2] === g)).toBe(true);
    expect(Math.max(...grey)).toBeGreaterThan(200);
    expect(grey[0]).toBeLessThan(40);
    // An explicit window changes the rendering; the one used is reported.
    const narrow = await app.inject({ url: imageUrl(location.SOPInstanceUID, '?window=100,50'), headers: READER });
    expect(narrow.statusCode).toBe(200);
    expect(narrow.headers['x-window']).toBe('100,50');
    expect(Buffer.compare(narrow.rawPayload, res.rawPayload)).not.toBe(0);
  });

  it('says what is wrong: unknown instance, bad frame, bad window, no token, the metrics role', async () => {
    const unknown = await app.inject({ url: imageUrl('1.2.3.4.5'), headers: READER });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().detail).toContain('no stored instance 1.2.3.4.5');
    const frame = await app.inject({ url: imageUrl(location.SOPInstanceUID, '?frame=3'), headers: READER });
    expect(frame.statusCode).toBe(400);
    expect(frame.json().detail).toContain('frame 3 does not exist');
    const window = await app.inject({ url: imageUrl(location.SOPInstanceUID, '?window=bright'), headers: READER });
    expect(window.statusCode).toBe(400);
    expect(window.json().errors[0].field).toContain('window');
    // Absurd windows are refused, not overflowed to Infinity or silently widened: 400 saying what is wrong.
    for (const w of [`${'9'.repeat(400)},1`, '1,1e400', '1,0.0000001']) {
      const res = await app.inject({ url: imageUrl(location.SOPInstanceUID, `?window=${w}`), headers: READER });
      expect(res.statusCode).toBe(400);
      expect(res.json().detail).toContain('querystring/window');
    }
    for (const w of ['0,0', '1,0.5']) {
      const res = await app.inject({ url: imageUrl(location.SOPInstanceUID, `?window=${w}`), headers: READER });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ detail: expect.stringContaining('querystring/window width must be at least 1'), errors: [{ field: 'querystring/window' }] });
    }
    expect((await app.inject({ url: imageUrl(location.SOPInstanceUID, '?window=-123456789.5,1'), headers: READER })).headers['x-window']).toBe('-123456789.5,1');
    expect((await app.inject({ url: imageUrl(location.SOPInstanceUID) })).statusCode).toBe(401);
    expect((await app.inject({ url: imageUrl(location.SOPInstanceUID), headers: SCRAPER })).statusCode).toBe(403);
  });

  it('draws MONOCHROME1 with high values dark, its window taken and reported in rescaled units', async () => {
    // 4 x 8 pixels, stored value = column (0..7), rescaled 2 x column - 100: -100 (white) to -86 (black).
    const series = '1.2.826.0.1.3680043.10.1234.77';
    const [data] = makeSeries({
      StudyInstanceUID: uid, SeriesInstanceUID: series, rows: 4, columns: 8, pixelSpacing: [1, 1], positions: axialPositions([0, 0, 0], 1, 5, 4, 8, [1, 1]),
      intensity: (p) => 2 * Math.round(p[0] + 3.5) - 100, rescale: { slope: 2, intercept: -100 }, attributes: { PhotometricInterpretation: 'MONOCHROME1' },
    });
    const key = instanceStorageKey(uid, series, `${series}.1`);
    mkdirSync(path.dirname(path.join(dataDir, key)), { recursive: true });
    writeFileSync(path.join(dataDir, key), data);
    await redis.hset(keys.studyInstances(uid), `${series}.1`, key);
    for (const [qs, window] of [['', '-93,14'], ['?window=-93,14', '-93,14'], ['?window=-89.5,7', '-89.5,7']]) {
      const res = await app.inject({ url: imageUrl(`${series}.1`, qs), headers: READER });
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-window']).toBe(window);
      const png = PNG.sync.read(res.rawPayload);
      const firstRow = Array.from({ length: 8 }, (_, i) => png.data[i * 4]);
      expect(firstRow).toEqual(window === '-93,14' ? [255, 219, 182, 146, 109, 73, 36, 0] : [255, 255, 255, 255, 219, 146, 73, 0]);
    }
    await redis.hdel(keys.studyInstances(uid), `${series}.1`);
  });

  it('answers 410 when retention has removed the file, and audits each image read', async () => {
    const gone = '1.2.826.0.1.3680043.10.1234.99';
    await redis.hset(keys.studyInstances(uid), gone, instanceStorageKey(uid, location.SeriesInstanceUID, gone));
    const res = await app.inject({ url: imageUrl(gone), headers: ADMIN });
    expect(res.statusCode).toBe(410);
    expect(res.json()).toMatchObject({ title: 'Gone', status: 410, detail: expect.stringContaining('no longer stored') });
    await redis.hdel(keys.studyInstances(uid), gone);
    const lines = auditText().trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toContainEqual(expect.objectContaining({ action: 'study.image', StudyInstanceUID: uid, user: 'dr-reader' }));
  });
});

describe('a study whose images retention deleted', () => {
  it('answers 410 naming retention for its images and slices, not 404 "no stored instance"', async () => {
    // A second study holding a copy of the key slice's series, finished 40 days ago; the real retention run purges it.
    const old = '1.2.826.0.1.3680043.10.1234.40';
    for (const sop of t2Slices) {
      const key = instanceStorageKey(old, location.SeriesInstanceUID, sop);
      mkdirSync(path.dirname(path.join(dataDir, key)), { recursive: true });
      writeFileSync(path.join(dataDir, key), readFileSync(path.join(dataDir, instanceStorageKey(uid, location.SeriesInstanceUID, sop))));
      await redis.hset(keys.studyInstances(old), sop, key);
    }
    await redis.hset(keys.study(old), { status: 'failed', statusAt: Date.now() - 40 * 86_400_000 });
    const image = `/api/v1/studies/${old}/images/${location.SOPInstanceUID}.png`;
    const slices = `/api/v1/studies/${old}/series/${location.SeriesInstanceUID}/slices`;
    expect((await app.inject({ url: image, headers: READER })).statusCode).toBe(200);
    // Listed before the run: the list kept for the next request must not outlive the images.
    expect((await app.inject({ url: slices, headers: READER })).statusCode).toBe(200);

    const summary = await runRetention({ redis, dataDir, retentionDays: 30, log: createLogger('retention', 'silent') });
    expect(summary.purged).toBe(1);
    for (const url of [image, slices]) {
      const res = await app.inject({ url, headers: READER });
      expect(res.statusCode).toBe(410);
      expect(res.json()).toMatchObject({ title: 'Gone', detail: expect.stringMatching(new RegExp(`^the images of study ${old} are no longer stored: retention deleted them on \\d{4}-`)) });
    }
    // The study that was not purged still answers 404 for an instance it never had.
    expect((await app.inject({ url: imageUrl('1.2.3.4'), headers: READER })).statusCode).toBe(404);
  });
});

describe('GET …/series/:SeriesInstanceUID/slices', () => {
  it('lists the series in the worker\'s stack order, positions ascending along the normal', async () => {
    const res = await app.inject({ url: `/api/v1/studies/${uid}/series/${location.SeriesInstanceUID}/slices?containing=${location.SOPInstanceUID}`, headers: READER });
    expect(res.statusCode).toBe(200);
    const body = res.json() as { slices: { SOPInstanceUID: string; positionMm: number }[] };
    expect(body.slices.map((s) => s.SOPInstanceUID)).toEqual(t2Slices);
    expect(body.slices[location.sliceIndex].SOPInstanceUID).toBe(location.SOPInstanceUID);
    const positions = body.slices.map((s) => s.positionMm);
    expect(positions[0]).toBe(0);
    expect(positions.every((p, i) => i === 0 || p > positions[i - 1])).toBe(true);
    const none = await app.inject({ url: `/api/v1/studies/${uid}/series/1.2.3/slices`, headers: READER });
    expect(none.statusCode).toBe(404);
    // `containing` naming an instance the series does not hold is a 404, not the default stack.
    const stranger = await app.inject({ url: `/api/v1/studies/${uid}/series/${location.SeriesInstanceUID}/slices?containing=1.2.3`, headers: READER });
    expect(stranger.statusCode).toBe(404);
    expect(stranger.json().detail).toContain('has no stored instance 1.2.3 (querystring/containing)');
  });
});

describe('the study view in Chromium', () => {
  beforeAll(async () => {
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    await page.goto(base);
    await page.fill('#token', TOKENS[0].token);
    await page.click('#login-form button[type=submit]');
    await page.locator(`#worklist tbody tr[data-uid="${uid}"]`).click();
  }, 60_000);

  it('shows the key slice with the region marked and steps through the neighbouring slices', async () => {
    const figure = page.locator('#study[open] figure.key-image[data-query="mass"]');
    // data-slice is set once the slice's PNG has been decoded into the <img>.
    await page.locator(`figure.key-image[data-slice="${location.sliceIndex}"]`).waitFor({ timeout: 20_000 });
    expect(await figure.locator('.pos').textContent()).toContain(`slice ${location.sliceIndex + 1} of ${location.sliceCount} (key slice)`);
    const circle = figure.locator('svg ellipse');
    expect(await circle.getAttribute('class')).toBe('key');
    expect(Number(await circle.getAttribute('cx'))).toBeCloseTo(location.point[0], 3);
    // Round in mm: radiusMm over the column spacing across, over the (1.5 times larger) row spacing down.
    expect(Number(await circle.getAttribute('rx'))).toBeCloseTo(location.radiusPx, 3);
    expect(Number(await circle.getAttribute('ry'))).toBeCloseTo(location.radiusPx / 1.5, 3);
    // The rendered pixels are the key slice itself: the image the API returns for that instance.
    const natural = await figure.locator('img').evaluate((img) => {
      const i = img as unknown as { naturalWidth: number; naturalHeight: number };
      return [i.naturalWidth, i.naturalHeight];
    });
    const png = PNG.sync.read((await app.inject({ url: imageUrl(location.SOPInstanceUID), headers: READER })).rawPayload);
    expect(natural).toEqual([png.width, png.height]);
    await page.screenshot({ path: path.join(process.env.NT_SHOTS_DIR ?? mkdtempSync(path.join(tmpdir(), 'nt-key-')), 'key-image.png') });

    // Next slice: another instance, the region dashed (the lesion sphere cut by that slice) or hidden.
    const before = await figure.locator('img').getAttribute('src');
    await figure.locator('button', { hasText: 'Next' }).click();
    await page.locator(`figure.key-image[data-slice="${location.sliceIndex + 1}"]`).waitFor();
    expect(await figure.locator('img').getAttribute('src')).not.toBe(before);
    expect(await circle.getAttribute('class')).toBe('near');
    expect(await figure.locator('.pos').textContent()).toMatch(/\+\d+(\.\d)? mm/);
    // Keyboard: two steps back, then "Key slice" returns.
    await figure.focus();
    await page.keyboard.press('ArrowUp');
    await page.keyboard.press('ArrowUp');
    await page.locator(`figure.key-image[data-slice="${location.sliceIndex - 1}"]`).waitFor();
    // Home and End: the first and last slice; K: the key slice again.
    await page.keyboard.press('End');
    await page.locator(`figure.key-image[data-slice="${location.sliceCount - 1}"]`).waitFor();
    await page.keyboard.press('Home');
    await page.locator('figure.key-image[data-slice="0"]').waitFor();
    expect(await figure.locator('.pos').textContent()).toMatch(/^slice 1 of /);
    await page.keyboard.press('k');
    await page.locator(`figure.key-image[data-slice="${location.sliceIndex}"]`).waitFor();
    await page.keyboard.press('End');
    await page.locator(`figure.key-image[data-slice="${location.sliceCount - 1}"]`).waitFor();
    await figure.locator('button', { hasText: 'Key slice' }).click();
    await page.locator(`figure.key-image[data-slice="${location.sliceIndex}"]`).waitFor();
    expect(await circle.getAttribute('class')).toBe('key');
    // The mouse wheel over the image: a notch down is the next slice, a notch up the one before; the page under it
    // does not scroll.
    await figure.locator('.viewer').hover();
    const scrolled = await page.evaluate('document.querySelector("#study").scrollTop');
    await page.mouse.wheel(0, 100);
    await page.locator(`figure.key-image[data-slice="${location.sliceIndex + 1}"]`).waitFor();
    await page.mouse.wheel(0, -100);
    await page.locator(`figure.key-image[data-slice="${location.sliceIndex}"]`).waitFor();
    expect(await page.evaluate('document.querySelector("#study").scrollTop')).toBe(scrolled);
    expect(auditText()).toContain('"action":"study.slices"');
    // Closing the study (Escape) frees the shown slice's blob: its URL no longer loads.
    const shown = await figure.locator('img').getAttribute('src');
    expect(shown).toMatch(/^blob:/);
    const loads = (u: string | null) => page.evaluate(`new Promise((r) => { const i = new Image(); i.onload = () => r(true); i.onerror = () => r(false); i.src = ${JSON.stringify(`${u}#${Math.random()}`)}; })`);
    expect(await loads(shown)).toBe(true);
    await page.keyboard.press('Escape');
    // The blobs are freed by the dialog's 'close' event, a task after 'open' clears; it also restores the title.
    await waitInPage(page, "!document.querySelector('#study').open && !/study · neurotriage$/i.test(document.title)");
    expect(await loads(shown)).toBe(false);
  }, 60_000);

  it('keeps a key image it cached for this token only: without it, or with another, the API is asked (and audits)', async () => {
    // The URL the study view fetched above with the reader's token, now in the browser's cache (private, max-age).
    const url = `${imageUrl(location.SOPInstanceUID)}?`;
    const reads = () => auditText().split('\n').filter((l) => l.includes('"action":"study.image"')).length;
    const fetchAs = (token: string | null) =>
      page.evaluate(`fetch(${JSON.stringify(url)}${token ? `, { headers: { authorization: 'Bearer ${token}' } }` : ''}).then((r) => r.status)`);
    // Stepping back to a slice seen with the same token is still served from the cache: no second read.
    const before = reads();
    expect(await fetchAs(TOKENS[0].token)).toBe(200);
    expect(reads()).toBe(before);
    // Without Vary: Authorization the cached PNG was handed to a request with no token, or a wrong one (after sign
    // out, on a shared reading-room workstation), unchecked and unaudited.
    expect(await fetchAs(null)).toBe(401);
    expect(await fetchAs('not-a-token-0123456789')).toBe(401);
    expect(await fetchAs(TOKENS[1].token)).toBe(200);
    expect(auditText()).toContain('"user":"pacs-admin","role":"admin","action":"study.image"');
  }, 30_000);
});
