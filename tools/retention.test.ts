// Retention against a real Redis and a temp DATA_DIR, with results written by the worker's own writer so the
// keys and fields are the contract's, not a copy of them.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Redis } from 'ioredis';
import { createLogger } from '../shared/logger';
import { connectRedis } from '../shared/redis';
import { resultKeys, type StudyResult } from '../shared/results';
import { instanceStorageKey, keys, studyStorageKey } from '../shared/studies';
import { markStudyFailed, writeResult } from '../services/worker/store';
import { startRedis, type TestRedis } from '../test/helpers/redis';
import { RetentionSettingsSchema, RETENTION_DEFAULTS, runRetention } from './retention';
import { PURGED_FIELD } from '../shared/studies';
import { loadSection } from '../shared/config';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 10, 12);
/** The run happens 31 days after T0 with 30 days of retention: the cutoff is T0 + 1 day. */
const RUN_AT = T0 + 31 * DAY;

let redisServer: TestRedis;
let redis: Redis;
let dataDir: string;
let logLines: string[];

function logger() {
  logLines = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  return createLogger('retention', 'info', sink);
}

function result(uid: string, scoredAt: number): StudyResult {
  return {
    StudyInstanceUID: uid,
    priority: 'ROUTINE',
    findings: [],
    abnormalProbability: 0.1,
    sequencesUsed: ['T2'],
    sequencesMissing: [],
    series: [],
    confidence: 1,
    model: { bundleId: 'test', version: '0' },
    priorityProbability: null,
    judgedWith: { querySetVersion: 'test', classThresholds: {} },
    provider: 'cpu',
    timingsMs: { decode: 1, preprocess: 1, inference: 1, scoring: 1, total: 4 },
    receivedAt: scoredAt - 60_000,
    scoredAt,
  };
}

/** Stores two instances the way the listener does: files under the study folder, SOP -> key in the instances hash. */
async function storeStudy(uid: string, lastReceivedAt: number): Promise<void> {
  for (const sop of ['1', '2']) {
    const key = instanceStorageKey(uid, `${uid}.1`, `${uid}.1.${sop}`);
    mkdirSync(path.dirname(path.join(dataDir, key)), { recursive: true });
    writeFileSync(path.join(dataDir, key), Buffer.alloc(1000, 7));
    await redis.hset(keys.studyInstances(uid), `${uid}.1.${sop}`, key);
  }
  await redis.hset(keys.study(uid), { StudyInstanceUID: uid, storageKey: studyStorageKey(uid), lastReceivedAt, status: 'received' });
}

async function scored(uid: string, scoredAt: number, lastReceivedAt = T0 - 1000): Promise<void> {
  await storeStudy(uid, lastReceivedAt);
  await redis.hset(keys.study(uid), 'status', 'scoring'); // as the worker's job does before it writes the result
  await writeResult(redis, result(uid, scoredAt), { T2: new Float32Array([0.5, 0.25]) });
}

const folder = (uid: string) => path.join(dataDir, studyStorageKey(uid));

beforeAll(async () => {
  redisServer = await startRedis();
  redis = connectRedis(redisServer.url, 'worker');
});

afterAll(async () => {
  await redis.quit();
  await redisServer.stop();
});

beforeEach(async () => {
  await redis.flushall();
  dataDir = mkdtempSync(path.join(tmpdir(), 'nt-retention-'));
});

afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

test('deletes instances of studies finished before the cutoff and keeps results, vectors and the worklist', async () => {
  await scored('1.2.1', T0); // old: purged
  await scored('1.2.2', T0 + 2 * DAY); // scored after the cutoff: kept
  await scored('1.2.3', T0); // old but owed a job (pending): kept
  await redis.sadd(keys.pendingStudies(), '1.2.3');
  await scored('1.2.4', T0, T0 + 2 * DAY); // old result, but new instances since: kept
  await storeStudy('1.2.5', T0 - 1000); // failed permanently: purged by its status time
  await markStudyFailed(redis, '1.2.5', 'failed', 'test');
  await redis.hset(keys.study('1.2.5'), 'statusAt', T0);
  await storeStudy('1.2.6', T0 - 1000); // never finished (received): not even examined
  await redis.hset(keys.study('1.2.6'), 'statusAt', T0);

  const summary = await runRetention({ redis, dataDir, retentionDays: 30, log: logger(), now: () => RUN_AT });

  expect(summary).toMatchObject({ examined: 5, purged: 2, kept: 2, bytesFreed: 4000, dryRun: false });
  for (const uid of ['1.2.1', '1.2.5']) {
    expect(existsSync(folder(uid))).toBe(false);
    expect(await redis.exists(keys.studyInstances(uid))).toBe(0);
    expect(Number(await redis.hget(keys.study(uid), PURGED_FIELD))).toBe(RUN_AT);
  }
  for (const uid of ['1.2.2', '1.2.3', '1.2.4', '1.2.6']) {
    expect(existsSync(folder(uid))).toBe(true);
    expect(await redis.hlen(keys.studyInstances(uid))).toBe(2);
  }
  // What radiologists use stays: the result, its vectors, the worklist entry and the scored status.
  expect(JSON.parse((await redis.get(resultKeys.result('1.2.1')))!).StudyInstanceUID).toBe('1.2.1');
  expect(await redis.hlen(resultKeys.vectors('1.2.1'))).toBe(1);
  expect(await redis.zscore(resultKeys.worklist(), '1.2.1')).not.toBeNull();
  expect(await redis.hget(keys.study('1.2.1'), 'status')).toBe('scored');
  expect(logLines.filter((l) => l.includes('stored instances purged'))).toHaveLength(2);
});

test('a dry run reports without deleting, and a second real run finds nothing left to do', async () => {
  await scored('1.3.1', T0);

  const dry = await runRetention({ redis, dataDir, retentionDays: 30, log: logger(), now: () => RUN_AT, dryRun: true });
  expect(dry).toMatchObject({ purged: 1, bytesFreed: 2000, dryRun: true });
  // Its log says what it would do, never that it purged (admins grep for "purged").
  expect(logLines.filter((l) => l.includes('stored instances would be purged (dry run)'))).toHaveLength(1);
  expect(logLines.filter((l) => l.includes('stored instances purged'))).toHaveLength(0);
  expect(existsSync(folder('1.3.1'))).toBe(true);
  expect(await redis.hlen(keys.studyInstances('1.3.1'))).toBe(2);

  const first = await runRetention({ redis, dataDir, retentionDays: 30, log: logger(), now: () => RUN_AT });
  expect(first.purged).toBe(1);
  const second = await runRetention({ redis, dataDir, retentionDays: 30, log: logger(), now: () => RUN_AT + DAY });
  expect(second.purged).toBe(0);
});

test('a scored study whose stored result cannot be read is judged by its status time, and the run goes on', async () => {
  await scored('1.5.1', T0);
  await redis.set(resultKeys.result('1.5.1'), '{"StudyInstanceUID":"1.5.1","AccessionNumber":"ACC-SECRET"'); // cut off
  await redis.hset(keys.study('1.5.1'), 'statusAt', T0);
  await scored('1.5.2', T0 + 2 * DAY);
  await redis.set(resultKeys.result('1.5.2'), '{"scoredAt":"soon"}'); // JSON of another shape
  await redis.hset(keys.study('1.5.2'), 'statusAt', T0 + 2 * DAY);
  await scored('1.5.3', T0); // readable, after them in no particular order: still purged

  const summary = await runRetention({ redis, dataDir, retentionDays: 30, log: logger(), now: () => RUN_AT });
  expect(summary).toMatchObject({ examined: 3, purged: 2 });
  expect(existsSync(folder('1.5.1'))).toBe(false);
  expect(existsSync(folder('1.5.2'))).toBe(true);
  expect(existsSync(folder('1.5.3'))).toBe(false);
  expect(logLines.join('\n')).not.toContain('ACC-SECRET');
});

test('a run interrupted after forgetting the instances finishes the deletion next time', async () => {
  await scored('1.4.1', T0);
  await redis.del(keys.studyInstances('1.4.1')); // as if the first run stopped right after this step

  const summary = await runRetention({ redis, dataDir, retentionDays: 30, log: logger(), now: () => RUN_AT });
  expect(summary.purged).toBe(1);
  expect(existsSync(folder('1.4.1'))).toBe(false);
});

test('RETENTION_DAYS is validated like every other setting', () => {
  expect(loadSection(RetentionSettingsSchema, RETENTION_DEFAULTS, {}).RETENTION_DAYS).toBe(30);
  expect(loadSection(RetentionSettingsSchema, RETENTION_DEFAULTS, { RETENTION_DAYS: '7' }).RETENTION_DAYS).toBe(7);
  expect(() => loadSection(RetentionSettingsSchema, RETENTION_DEFAULTS, { RETENTION_DAYS: '0' })).toThrow(/RETENTION_DAYS/);
});

describe('the built command', () => {
  const MAIN = path.resolve(__dirname, '..', 'dist', 'tools', 'retention.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH ?? '', REDIS_URL: 'redis://127.0.0.1:9' }, encoding: 'utf8', timeout: 20_000 });

  test.each([['--dryrun'], ['--dry-run', 'now']])('%s: exit 2 with what was wrong and the usage, no stack, nothing run', (...args) => {
    const r = run(...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^retention: (Unknown option '--dryrun'|Unexpected argument 'now')/);
    expect(r.stderr).toContain('Usage: node dist/tools/retention.js [--dry-run]');
    expect(r.stderr).not.toMatch(/TypeError|\n\s+at /);
  });

  test('--help: the usage, exit 0', () => {
    const r = run('--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--dry-run');
  });
});
