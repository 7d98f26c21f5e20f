// The end-to-end path in one flow, with every part real: storescu (DCMTK) sends a synthetic study to the listener,
// the worker scores it (ONNX Runtime; the trained reference bundle when present, else the recipe's fixture bundle
// with random weights), the worker's "scored" notification reaches the outbound service, an OMI^O23 reaches an MLLP
// peer and a Comprehensive SR lands in Orthanc in the same study; then the API is started on the same Redis and the
// worklist page, in real headless Chromium, must list the studies in priority order. The normal study is sent
// first, so the infarct leading the page shows priority ordering, not arrival. With the trained bundle an acute
// infarct must come out STAT and a normal study ROUTINE; with random weights only the plumbing is checked (the
// priority the RIS and the page get is the one the worker stored). The tests below run in order and share state.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Hl7Message } from '@medplum/core';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Browser } from 'playwright-core';
import { Registry } from 'prom-client';
import { createLogger } from '../../shared/logger';
import { connectRedis } from '../../shared/redis';
import { resultKeys, worklistScore, type StudyResult } from '../../shared/results';
import { build } from '../../services/api/app';
import { API_DEFAULTS } from '../../services/api/settings';
import { testListenerSettings } from '../listener/harness';
import { startListener, type RunningListener } from '../../services/listener/listener';
import { startWorker, type RunningWorker } from '../../services/worker/main';
import { loadOutboundConfig } from '../../services/api/outbound/config';
import { PRIORITY_0485 } from '../../services/api/outbound/hl7/message';
import { createOutbound, type Outbound } from '../../services/api/outbound/outbound';
import { COMPREHENSIVE_3D_SR } from '../../services/api/outbound/sr/build-sr';
import { TOKENS } from '../api/helpers';
import { storescu } from '../helpers/dcmtk';
import { startRedis, type TestRedis } from '../helpers/redis';
import { launchChromium } from '../helpers/browser';
import { makeTinyBundle, referenceBundle } from '../worker/bundle';
import { requireBuild, waitFor, workerEnv } from '../worker/helpers';
import { findStudyIndex, findingTypes, synthStudy } from '../worker/studies';
import { startMllpPeer, type MllpPeer } from './helpers/mllp-peer';
import { startOrthanc, type TestOrthanc } from './helpers/orthanc';

const SEED = 6061;
const ref = referenceBundle();

let redisServer: TestRedis;
let redis: Redis;
let dataDir: string;
let filesDir: string;
let modelsDir: string;
let orthanc: TestOrthanc;
let peer: MllpPeer;
let listener: RunningListener;
let worker: RunningWorker;
let outbound: Outbound;
let apiRedis: Redis | undefined;
let api: FastifyInstance | undefined;
let browser: Browser | undefined;
/** What the worker stored for each study the flow sent, in sending order, for the page leg. */
const scored: Array<{ kind: 'normal' | 'infarct'; result: StudyResult }> = [];

beforeAll(async () => {
  requireBuild();
  [redisServer, orthanc, peer] = await Promise.all([startRedis(), startOrthanc({ allowedAes: ['NEUROTRIAGE'] }), startMllpPeer()]);
  redis = connectRedis(redisServer.url, 'worker');
  dataDir = mkdtempSync(path.join(tmpdir(), 'nt-outbound-e2e-'));
  filesDir = path.join(dataDir, 'outgoing');
  modelsDir = ref.dir ?? makeTinyBundle();
  const quiet = createLogger('e2e', process.env.NT_TEST_LOG ?? 'silent');
  listener = await startListener({
    // Each study comes in one association and is scored when it is released: with the harness's 0.3 s quiet time a
    // pause on a loaded machine could score part of a study first, and the first HL7 message would then describe
    // an earlier result version than the one read back.
    settings: testListenerSettings(redisServer.url, path.join(dataDir, 'var'), { STUDY_COMPLETE_ON_RELEASE: true, STUDY_QUIET_SECONDS: 60 }),
    log: quiet,
  });
  worker = await startWorker({ env: workerEnv({ redisUrl: redisServer.url, dataDir: path.join(dataDir, 'var'), modelsDir }), log: quiet });
  outbound = createOutbound(
    loadOutboundConfig({
      HL7_MLLP_TARGET: `127.0.0.1:${peer.port}`,
      SR_TARGET: `${orthanc.aet}@127.0.0.1:${orthanc.dicomPort}`,
      OUTBOUND_BACKOFF_MS: '100',
    }),
    { redisUrl: redisServer.url, registry: new Registry(), logger: quiet, dataDir: path.join(dataDir, 'var') },
  );
  await outbound.start();
}, 120_000);

afterAll(async () => {
  // Each step on its own: one failing close must not leave Redis or Orthanc running.
  for (const step of [() => browser?.close(), () => api?.close(), () => outbound?.close(), () => worker?.close(), () => listener?.close(), () => peer?.close()]) {
    await Promise.resolve().then(step).catch(() => undefined);
  }
  redis?.disconnect();
  apiRedis?.disconnect();
  await Promise.allSettled([redisServer?.stop(), orthanc?.stop()]);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  if (!ref.dir && modelsDir) rmSync(modelsDir, { recursive: true, force: true });
});

/** Sends a synthetic study as the PACS would and waits for its HL7 message and its SR. */
async function sendAndFollow(index: number): Promise<{ result: StudyResult; message: Hl7Message; srTags: Record<string, unknown>; accession: string; findings: string[] }> {
  const study = synthStudy(SEED, index, { fast: true });
  const folder = path.join(filesDir, String(index));
  const files = study.files.map((f, i) => {
    const file = path.join(folder, `${i}.dcm`);
    mkdirSync(folder, { recursive: true });
    writeFileSync(file, f.data);
    return file;
  });
  const sent = await storescu({ port: listener.port, callingAe: 'PACS_TEST', calledAe: 'NEUROTRIAGE' }, files);
  expect(sent.statuses.every((s) => s === 0)).toBe(true);

  const uid = study.StudyInstanceUID;
  const message = await waitFor('the HL7 message', async () =>
    peer.received.find((m) => m.getSegment('IPC')?.getField(3).toString() === uid), 60_000);
  const result = JSON.parse((await redis.get(resultKeys.result(uid)))!) as StudyResult;
  const srTags = await waitFor('the SR in Orthanc', async () => {
    const ids = await orthanc.rest<string[]>('/instances');
    for (const id of ids) {
      const tags = await orthanc.rest<Record<string, unknown>>(`/instances/${id}/tags?simplify`);
      if (tags.SOPClassUID === COMPREHENSIVE_3D_SR && tags.StudyInstanceUID === uid) return tags;
    }
    return null;
  }, 30_000, 100);
  return { result, message, srTags, accession: study.AccessionNumber, findings: findingTypes(study) };
}

const priorityOf = (m: Hl7Message): string => m.getSegment('TQ1')!.getComponent(9, 1);

test('a normal study: ROUTINE (trained bundle) over HL7', async () => {
  const index = findStudyIndex(SEED, []);
  const { result, message, findings } = await sendAndFollow(index);
  expect(findings).toEqual([]);
  expect(priorityOf(message)).toBe(PRIORITY_0485[result.priority].code);
  if (ref.dir) expect(result.priority).toBe('ROUTINE');
  scored.push({ kind: 'normal', result });
}, 120_000);

test('an acute infarct study: STAT (trained bundle) over HL7, SR in the source study', async () => {
  const index = findStudyIndex(SEED, ['acute_infarct']);
  const { result, message, srTags, accession, findings } = await sendAndFollow(index);
  expect(findings).toEqual(['acute_infarct']);
  // What the RIS gets is what the worker stored, in the three priority fields.
  const code = PRIORITY_0485[result.priority].code;
  expect(priorityOf(message)).toBe(code);
  expect(message.getSegment('ORC')!.getComponent(7, 6)).toBe(code);
  expect(message.getSegment('OBR')!.getComponent(27, 6)).toBe(code);
  // The accession number the modality sent (from the result, or read from the stored instances when it lacks one).
  expect(message.getSegment('ORC')!.getField(3).toString()).toBe(accession);
  expect(message.getSegment('IPC')!.getField(1).toString()).toBe(accession);
  expect(message.getAllSegments('OBX').filter((s) => s.getComponent(3, 1) === 'QUERY')).toHaveLength(result.findings.length);
  if (ref.dir) expect(result.priority).toBe('STAT');
  scored.push({ kind: 'infarct', result });

  // The SR sits in the source study, references the series the worker used and carries the same priority.
  expect(srTags.StudyInstanceUID).toBe(result.StudyInstanceUID);
  expect(srTags.AccessionNumber).toBe(accession);
  const evidence = (srTags.CurrentRequestedProcedureEvidenceSequence as Array<{ ReferencedSeriesSequence: Array<{ SeriesInstanceUID: string }> }>)[0];
  expect(evidence.ReferencedSeriesSequence.map((s) => s.SeriesInstanceUID).sort())
    .toEqual(result.series.filter((s) => s.used).map((s) => s.SeriesInstanceUID).sort());
  type Item = Record<string, unknown> & { ContentSequence?: Item[] };
  const named = (items: Item[] | undefined, code: string) => items?.find((i) => (i.ConceptNameCodeSequence as Array<{ CodeValue: string }>)[0].CodeValue === code);
  const priorityItem = named(named(srTags.ContentSequence as Item[], 'C0034375')?.ContentSequence, 'TRIAGE_PRIORITY')!;
  expect((priorityItem.ConceptCodeSequence as Array<{ CodeValue: string }>)[0].CodeValue).toBe(result.priority);
  expect(typeof srTags.PatientID).toBe('string');
  expect(srTags.PatientID).not.toBe('');

  // Where: the worker located the flagged infarct; the SR's image region and the HL7 key image name the same slice.
  const infarct = result.findings.find((f) => f.queryId === 'acute_infarct' && f.flagged);
  if (ref.dir) expect(infarct?.location).toBeDefined();
  if (infarct?.location) {
    const loc = infarct.location;
    const groups = named(srTags.ContentSequence as Item[], '126010')!.ContentSequence!;
    const group = groups.find((g) => g.ContentSequence!.some((i) => named([i], '112039') && i.TextValue === 'acute_infarct') && named(g.ContentSequence, '111030'))!;
    const region = named(group.ContentSequence, '111030')!;
    expect(region.GraphicType).toBe('CIRCLE');
    const image = (region.ContentSequence as Item[])[0];
    expect((image.ReferencedSOPSequence as Array<{ ReferencedSOPInstanceUID: string }>)[0].ReferencedSOPInstanceUID).toBe(loc.SOPInstanceUID);
    const key = message.getAllSegments('OBX').find((o) => o.getComponent(3, 1) === 'KEY_IMAGE')!;
    expect(key.getField(5).toString()).toBe(loc.SOPInstanceUID);
  }
}, 120_000);

test('the worklist page, on the same Redis, shows the infarct first (STAT) and the normal study ROUTINE', async () => {
  // Needs the two studies above, scored in this run (jest runs a file's tests in order).
  expect(scored.map((s) => s.kind)).toEqual(['normal', 'infarct']);
  const infarct = scored[1].result;
  const normal = scored[0].result;
  // The page never embeds on load, so the API runs without a text encoder (routes that need one would answer 503).
  apiRedis = connectRedis(redisServer.url, 'producer');
  api = await build({
    config: { DATA_DIR: path.join(dataDir, 'api'), DISK_MIN_FREE_MB: 1 },
    settings: { ...API_DEFAULTS },
    tokens: TOKENS,
    redis: apiRedis,
    logger: createLogger('e2e-api', process.env.NT_TEST_LOG ?? 'silent'),
    registry: new Registry(),
    embedText: null,
    modelStatus: () => ({ loaded: false, detail: 'not loaded by this test' }),
    clock: () => Date.now(),
    statusCacheMs: 0,
  });
  await api.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
  browser = await launchChromium();
  const page = await browser.newPage();
  await page.goto(base);
  await page.fill('#token', TOKENS.find((t) => t.role === 'reader')!.token);
  await page.click('#login-form button[type=submit]');
  const rows = page.locator('#worklist tbody tr[data-uid][data-priority]');
  await rows.nth(1).waitFor({ timeout: 15_000 });
  const shown = await rows.evaluateAll((trs) => trs.map((tr) => ({ uid: tr.getAttribute('data-uid'), priority: tr.getAttribute('data-priority') })));

  // The page shows what the worker stored, in the worklist order (priority class, then arrival).
  const expected = scored.map((s) => s.result)
    .sort((a, b) => worklistScore(a.priority, a.receivedAt) - worklistScore(b.priority, b.receivedAt))
    .map((r) => ({ uid: r.StudyInstanceUID, priority: r.priority }));
  expect(shown).toEqual(expected);
  if (ref.dir) {
    // The infarct arrived second and still leads: it is first because it is STAT.
    expect(infarct.receivedAt).toBeGreaterThan(normal.receivedAt);
    expect(shown[0]).toEqual({ uid: infarct.StudyInstanceUID, priority: 'STAT' });
    expect(shown.find((r) => r.uid === normal.StudyInstanceUID)?.priority).toBe('ROUTINE');
    expect(await rows.first().locator('.badge').textContent()).toBe('STAT');
  }
}, 60_000);
