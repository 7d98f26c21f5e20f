// Patient identifiers never reach logs, job data or anything else neurotriage keeps in Redis. A synthetic study
// whose patient fields hold distinctive canaries goes the real way: storescu -> listener (DICOM) -> Redis/BullMQ ->
// worker (decode, real ONNX Runtime) -> result -> API routes and the outbound adapters (HL7 to an MLLP peer that
// first answers AE, a DICOM SR, which must copy the patient module, to a storescp standing in for the PACS), with
// every log line captured at trace level, plus the paths where identifiers tend to leak: a rejected association,
// an aborted transfer, a study that fails scoring, a refused HL7 message.
// Then every log line, every Redis value (job data, study hashes, results, dead letters) and the API's audit log
// are searched for the canaries.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Redis } from 'ioredis';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { createLogger } from '../../shared/logger';
import { connectRedis } from '../../shared/redis';
import { resultKeys } from '../../shared/results';
import { keys } from '../../shared/studies';
import { testListenerSettings } from '../listener/harness';
import { startListener, type RunningListener } from '../../services/listener/listener';
import { startWorker, type RunningWorker } from '../../services/worker/main';
import { startRedis, type TestRedis } from '../helpers/redis';
import { newUid, runTool, startPrivateStorescp, storescu, writeMrInstance, type PrivateStorescp } from '../helpers/dcmtk';
import { makeTinyBundle, referenceBundle } from '../worker/bundle';
import { workerEnv } from '../worker/helpers';
import { synthStudy } from '../worker/studies';
import { buildTestApp, READER } from '../api/helpers';
import { createOutbound, type Outbound } from '../../services/api/outbound/outbound';
import { loadOutboundConfig } from '../../services/api/outbound/config';
import { startMllpPeer, type MllpPeer } from '../outbound/helpers/mllp-peer';
import { waitFor as wait } from '../helpers/wait';

/** What a hospital's data would put in these fields; none of it may appear anywhere we write. */
const CANARIES: Record<string, [tag: string, value: string]> = {
  PatientName: ['(0010,0010)', 'CANARYSURNAME^CANARYGIVEN'],
  PatientID: ['(0010,0020)', 'CANARYPID4471'],
  PatientBirthDate: ['(0010,0030)', '19230419'],
  OtherPatientIDs: ['(0010,1000)', 'CANARYOTHERID'],
  PatientAddress: ['(0010,1040)', 'CANARYSTREET 12'],
  ReferringPhysicianName: ['(0008,0090)', 'CANARYDOCTOR^WHO'],
};
/** Searched for in upper case: each identifier, each PN component, and the birth date as dates get reformatted. */
const NEEDLES = ['CANARYSURNAME', 'CANARYGIVEN', 'CANARYPID4471', '19230419', '1923-04-19', 'CANARYOTHERID', 'CANARYSTREET', 'CANARYDOCTOR'];
const CALLING_AE = 'PHI_PACS';

let redisServer: TestRedis;
let client: Redis;
let dataDir: string;
let modelsDir: string;
let ownBundle = false;
let listener: RunningListener;
let worker: RunningWorker;
let app: FastifyInstance;
let outbound: Outbound;
let peer: MllpPeer;
let pacs: PrivateStorescp | undefined;
let pacsSockets: string | undefined;
let srDir: string;
const lines: string[] = [];

function capturingLogger(name: string) {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  return createLogger(name, 'trace', sink);
}

function leaks(text: string): string[] {
  const upper = text.toUpperCase();
  return NEEDLES.filter((n) => upper.includes(n));
}

/** Every value in Redis, whatever its type, as text (binary vectors decode to noise that cannot match). */
async function redisDump(redis: Redis): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'COUNT', 500);
    cursor = next;
    for (const key of keys) {
      const type = await redis.type(key);
      let value: unknown;
      if (type === 'string') value = (await redis.getBuffer(key))?.toString('latin1');
      else if (type === 'hash') value = Object.entries(await redis.hgetallBuffer(key)).map(([k, v]) => `${k}=${v.toString('latin1')}`);
      else if (type === 'list') value = await redis.lrange(key, 0, -1);
      else if (type === 'set') value = await redis.smembers(key);
      else if (type === 'zset') value = await redis.zrange(key, '0', '-1');
      else if (type === 'stream') value = await redis.xrange(key, '-', '+');
      // A key that expired or was deleted between SCAN and the read (a lock, a rate-limit window) holds nothing.
      if (value === undefined || value === null) continue;
      out.set(key, JSON.stringify(value));
    }
  } while (cursor !== '0');
  return out;
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => (statSync(path.join(dir, n)).isDirectory() ? filesUnder(path.join(dir, n)) : [path.join(dir, n)]));
}

/** Whole-stack steps (scoring, SR delivery) get 90 s. */
const waitFor = <T>(what: string, probe: () => Promise<T | null | undefined>, timeoutMs = 90_000) => wait(what, probe, timeoutMs, 100);

beforeAll(async () => {
  redisServer = await startRedis();
  client = connectRedis(redisServer.url, 'worker');
  dataDir = mkdtempSync(path.join(tmpdir(), 'nt-phi-'));
  const ref = referenceBundle();
  modelsDir = ref.dir ?? makeTinyBundle();
  ownBundle = !ref.dir;
  listener = await startListener({
    settings: testListenerSettings(redisServer.url, dataDir, { DICOM_ALLOWED_CALLING_AES: CALLING_AE, LOG_LEVEL: 'trace' }),
    log: capturingLogger('listener'),
  });
  worker = await startWorker({
    env: workerEnv({ redisUrl: redisServer.url, dataDir, modelsDir, extra: { WORKER_LOAD_PROCESSES: '0', LOG_LEVEL: 'trace' } }),
    log: capturingLogger('worker'),
  });
  app = await buildTestApp(client, { logger: capturingLogger('api'), config: { DATA_DIR: dataDir, DISK_MIN_FREE_MB: 1 } });

  peer = await startMllpPeer();
  peer.reply = (_message, index) => (index === 0 ? 'AE' : 'AA');
  srDir = path.join(dataDir, 'pacs');
  mkdirSync(srDir);
  pacsSockets = mkdtempSync(path.join(tmpdir(), 'nt-phi-pacs-'));
  pacs = await startPrivateStorescp('PACS', srDir, pacsSockets);
  const pacsPort = pacs.port;
  outbound = createOutbound(
    loadOutboundConfig({
      HL7_MLLP_TARGET: `127.0.0.1:${peer.port}`,
      HL7_ACK_TIMEOUT_MS: '2000',
      SR_TARGET: `PACS@127.0.0.1:${pacsPort}`,
      OUTBOUND_ATTEMPTS: '3',
      OUTBOUND_BACKOFF_MS: '50',
    }),
    { redisUrl: redisServer.url, registry: new Registry(), logger: capturingLogger('api-outbound'), dataDir },
  );
  await outbound.start();
}, 120_000);

afterAll(async () => {
  await outbound?.close();
  await peer?.close();
  await pacs?.stop();
  if (pacsSockets) rmSync(pacsSockets, { recursive: true, force: true });
  await app?.close();
  await worker?.close();
  await listener?.close();
  client?.disconnect();
  await redisServer?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  if (ownBundle) rmSync(modelsDir, { recursive: true, force: true });
});

test('a study with patient identifiers is received, scored and served without them reaching logs or Redis', async () => {
  const study = synthStudy(11, 2, { fast: true });
  const inbox = mkdtempSync(path.join(tmpdir(), 'nt-phi-in-'));
  const files = study.files.map((f, i) => {
    const file = path.join(inbox, `${i}.dcm`);
    writeFileSync(file, f.data);
    return file;
  });
  // Overwrite (-m) or insert (-i) the identifying attributes in every instance.
  const edits = Object.values(CANARIES).flatMap(([tag, value]) => ['-i', `${tag}=${value}`]);
  const edited = await runTool('dcmodify', ['-nb', ...edits, ...files]);
  expect({ code: edited.code, err: edited.stderr }).toEqual({ code: 0, err: '' });
  const dump = await runTool('dcmdump', [files[0]]);
  expect(leaks(dump.stdout)).toEqual(expect.arrayContaining(['CANARYSURNAME', 'CANARYPID4471', 'CANARYDOCTOR']));

  // The normal path.
  const sent = await storescu({ port: listener.port, callingAe: CALLING_AE, calledAe: 'NEUROTRIAGE' }, files);
  expect(sent.statuses.length).toBe(files.length);
  expect(sent.statuses.every((s) => s === 0)).toBe(true);

  // Leak-prone paths: an unknown calling AE, and an instance cut short in the middle of its pixel data.
  const rejected = await storescu({ port: listener.port, callingAe: 'INTRUDER', calledAe: 'NEUROTRIAGE' }, [files[0]]);
  expect(rejected.associationRejected).toBe(true);
  const truncated = path.join(inbox, 'truncated.dcm');
  copyFileSync(files[1], truncated);
  writeFileSync(truncated, readFileSync(truncated).subarray(0, Math.floor(statSync(truncated).size * 0.6)));
  await storescu({ port: listener.port, callingAe: CALLING_AE, calledAe: 'NEUROTRIAGE' }, [truncated]);

  // A study the worker cannot score (one small MR image, no brain sequence): the failure path writes a reason to
  // the study and a dead letter, both places where a careless message would carry identifiers.
  const odd = newUid();
  const oddFile = path.join(inbox, 'odd.dcm');
  writeMrInstance(oddFile, { StudyInstanceUID: odd, SeriesInstanceUID: `${odd}.1`, SeriesDescription: 'SCOUT' });
  expect((await runTool('dcmodify', ['-nb', ...edits, oddFile])).code).toBe(0);
  const oddSent = await storescu({ port: listener.port, callingAe: CALLING_AE, calledAe: 'NEUROTRIAGE' }, [oddFile]);
  expect(oddSent.statuses).toEqual([0]);

  const result = await waitFor('the study to be scored', () => client.get(resultKeys.result(study.StudyInstanceUID)));
  const oddStatus = await waitFor('the unscorable study to finish', async () => {
    const status = await client.hget(keys.study(odd), 'status');
    return status === 'failed' || status === 'unsupported' ? status : undefined;
  });
  expect(['failed', 'unsupported']).toContain(oddStatus);
  expect(JSON.parse(result).StudyInstanceUID).toBe(study.StudyInstanceUID);

  // HL7: refused once (AE), then accepted; SR: stored at the "PACS", carrying the patient module as it must.
  await peer.waitFor(2, 30_000);
  // (read until complete: storescp may still be writing the file when it appears)
  const sr = await waitFor('the SR, with the patient module, at the PACS', async () =>
    filesUnder(srDir).find((f) => leaks(readFileSync(f).toString('latin1')).includes('CANARYPID4471')));
  expect(path.basename(sr)).toMatch(/^SR/); // storescp names files by modality: SRc = Comprehensive SR

  for (const url of ['/api/v1/worklist', `/api/v1/studies/${study.StudyInstanceUID}`]) {
    const res = await app.inject({ method: 'GET', url, headers: READER });
    expect({ url, status: res.statusCode }).toEqual({ url, status: 200 });
    expect({ url, leaks: leaks(res.body) }).toEqual({ url, leaks: [] });
  }

  // The logs are real and cover the study: the listener, the worker and the API each wrote about it.
  const services = new Set(lines.map((l) => (JSON.parse(l) as { service: string }).service));
  expect([...services].sort()).toEqual(['api', 'api-outbound', 'listener', 'worker']);
  expect(lines.some((l) => l.includes('outbound delivery failed'))).toBe(true);
  expect(lines.some((l) => l.includes(study.StudyInstanceUID))).toBe(true);

  expect(lines.filter((l) => leaks(l).length > 0)).toEqual([]);
  const redisLeaks = [...(await redisDump(client))].filter(([, v]) => leaks(v).length > 0).map(([k]) => k);
  expect(redisLeaks).toEqual([]);
  const auditFiles = filesUnder(path.join(dataDir, 'audit'));
  for (const f of auditFiles) expect({ f, leaks: leaks(readFileSync(f, 'utf8')) }).toEqual({ f, leaks: [] });

  // The instances themselves keep the identifiers (they are the hospital's images, stored as received).
  const stored = filesUnder(path.join(dataDir, 'store')).filter((f) => f.endsWith('.dcm'));
  expect(stored.length).toBeGreaterThanOrEqual(files.length);
  expect(leaks(readFileSync(stored[0]).toString('latin1'))).toContain('CANARYPID4471');
  rmSync(inbox, { recursive: true, force: true });
}, 180_000);
