// A PACS that does not store a class neurotriage sends refuses its presentation context in the A-ASSOCIATE-AC
// (PS3.8 9.3.3.2) rather than answering a C-STORE 0122. The PACS here is DCMTK's storescp with a profile listing the
// classes it stores. Such a refusal gives the same answer on every retry: the delivery is dead-lettered at once as
// `context-rejected`; it used to read as "no response", retried (the SR sent again each time) until the attempts ran out.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { createLogger } from '../../shared/logger';
import { connectRedis } from '../../shared/redis';
import type { FindingLocation, StudyResult } from '../../shared/results';
import { loadOutboundConfig } from '../../services/api/outbound/config';
import { resultKey } from '../../services/api/outbound/idempotency';
import { createOutbound, type Outbound } from '../../services/api/outbound/outbound';
import { COMPREHENSIVE_3D_SR } from '../../services/api/outbound/sr/build-sr';
import { startPrivateStorescp, type PrivateStorescp } from '../helpers/dcmtk';
import { startRedis, type TestRedis } from '../helpers/redis';
import { tempDir } from '../listener/harness';
import { makeResult, storeMrInstance, writeResult } from './helpers/fixtures';

const MR_IMAGE = '1.2.840.10008.5.1.4.1.1.4';

/** A storescp profile (DCMTK association negotiation config) storing only `classes`, uncompressed. */
function profile(dir: string, classes: string[]): string[] {
  const file = path.join(dir, 'pacs.cfg');
  writeFileSync(file, [
    '[[TransferSyntaxes]]', '[Uncompressed]', 'TransferSyntax1 = LocalEndianExplicit', 'TransferSyntax2 = LittleEndianImplicit',
    '[[PresentationContexts]]', '[Stored]', ...classes.map((c, i) => `PresentationContext${i + 1} = ${c}\\Uncompressed`),
    '[[Profiles]]', '[Pacs]', 'PresentationContexts = Stored', '',
  ].join('\n'));
  return ['-xf', file, 'Pacs'];
}

let redisServer: TestRedis;
let redis: Redis;
let dir: string;
/** The PACS and sender of the test running (each test stops its own: they share the queue names). */
let current: { pacs: PrivateStorescp; outbound: Outbound } | undefined;

beforeAll(async () => {
  redisServer = await startRedis();
  redis = connectRedis(redisServer.url, 'worker');
  dir = tempDir('nt-sr-refused-');
});

afterEach(async () => {
  if (current) await Promise.allSettled([current.outbound.close(), current.pacs.stop()]);
  current = undefined;
});

afterAll(async () => {
  redis?.disconnect();
  await redisServer?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A storescp storing only `classes`, and an outbound SR sender (3 attempts) pointed at it. */
async function pacsStoring(name: string, classes: string[]): Promise<{ outbound: Outbound; received: () => string[] }> {
  const own = path.join(dir, name);
  const out = path.join(own, 'out');
  mkdirSync(out, { recursive: true });
  const pacs = await startPrivateStorescp('PACS', out, own, profile(own, classes));
  const outbound = createOutbound(
    loadOutboundConfig({ SR_TARGET: `PACS@127.0.0.1:${pacs.port}`, SR_TIMEOUT_MS: '10000', OUTBOUND_ATTEMPTS: '3', OUTBOUND_BACKOFF_MS: '50' }),
    { redisUrl: redisServer.url, registry: new Registry(), logger: createLogger('outbound-test', 'silent'), dataDir: own, subscribe: false },
  );
  current = { pacs, outbound };
  await outbound.start();
  return { outbound, received: () => readdirSync(out) };
}

async function finished(outbound: Outbound, jobId: string): Promise<string> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const state = await outbound.queue('sr').getJobState(jobId);
    if (state === 'completed' || state === 'failed') return state;
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${state}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A final STAT result whose flag was located on the stored instance: an SR and a key object document to send. */
async function locatedResult(dataDir: string): Promise<StudyResult> {
  const base = makeResult('STAT', { resultVersion: 1 });
  const source = await storeMrInstance(redis, dataDir, { StudyInstanceUID: base.StudyInstanceUID, AccessionNumber: base.AccessionNumber });
  const location: FindingLocation = {
    method: 'occlusion', sequence: 'DWI', SeriesInstanceUID: source.SeriesInstanceUID, SOPInstanceUID: source.SOPInstanceUID, SOPClassUID: MR_IMAGE,
    ImageOrientationPatient: [1, 0, 0, 0, 1, 0], point: [4, 4], radiusPx: 2, radiusMm: 4, patientMm: [0, 0, 0], sliceIndex: 0, sliceCount: 1, scoreDrop: 0.1,
  };
  const result = { ...base, series: [{ SeriesInstanceUID: source.SeriesInstanceUID, sequence: 'DWI' as const, used: true }], findings: [{ ...base.findings[0], location }, base.findings[1]] };
  await writeResult(redis, result);
  return result;
}

test('a PACS that stores SRs but not key object documents: the SR is stored once, the delivery dead-lettered at once as context-rejected', async () => {
  const { outbound, received } = await pacsStoring('sr-only', [COMPREHENSIVE_3D_SR]);
  const result = await locatedResult(path.join(dir, 'sr-only'));
  await outbound.enqueue(result);
  const key = resultKey(result);
  expect(await finished(outbound, key.jobId)).toBe('failed');
  const dead = await outbound.deadLetterQueue('sr').getJob(key.jobId);
  expect(dead?.data).toMatchObject({ reason: 'context-rejected', permanent: true, attemptsMade: 1 });
  expect(dead?.data.error).toMatch(/key object document: the PACS refused the presentation context for SOP class 1\.2\.840\.10008\.5\.1\.4\.1\.1\.88\.59 \(result 3/);
  expect(dead?.data.error).toContain('the SR was stored');
  // The SR reached the PACS (storescp names its files by modality and SOP instance) and was not sent again.
  expect(received().filter((f) => f.startsWith('SR'))).toHaveLength(1);
}, 60_000);

test('a PACS that does not store Comprehensive 3D SR: dead-lettered after one attempt, nothing stored', async () => {
  const { outbound, received } = await pacsStoring('no-sr', [MR_IMAGE]);
  const result = makeResult('URGENT');
  await storeMrInstance(redis, path.join(dir, 'no-sr'), { StudyInstanceUID: result.StudyInstanceUID });
  await writeResult(redis, result);
  await outbound.enqueue(result);
  const key = resultKey(result);
  expect(await finished(outbound, key.jobId)).toBe('failed');
  const dead = await outbound.deadLetterQueue('sr').getJob(key.jobId);
  expect(dead?.data).toMatchObject({ reason: 'context-rejected', permanent: true, attemptsMade: 1 });
  expect(dead?.data.error).toMatch(/refused the presentation context for SOP class 1\.2\.840\.10008\.5\.1\.4\.1\.1\.88\.34 \(result 3/);
  expect(received()).toEqual([]);
}, 60_000);
