// The audit log with two API replicas on one DATA_DIR (a shared volume in Kubernetes): each appends to its own
// file, so no two processes append to one file (O_APPEND is not atomic across NFS clients); the export of either
// replica returns every entry of both, rotated and compressed files included, in time order; and the audit-entry
// counter counts what was written.
import { mkdtempSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { build } from '../../services/api/app';
import { auditFileFor, auditFiles } from '../../services/api/plugins/audit';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { ADMIN, READER, SCRAPER, testDeps, writeResult } from './helpers';

const UID = '1.2.826.0.1.3680043.10.7.1';
let redis: Redis;
let dataDir: string;
let a: FastifyInstance;
let b: FastifyInstance;

beforeAll(async () => {
  redis = await startRedisClient('producer');
  await writeResult(redis, { uid: UID, priority: 'ROUTINE', receivedAt: Date.now() - 60_000, looksLike: 'normal brain', accession: 'R1' });
  dataDir = mkdtempSync(path.join(tmpdir(), 'nt-audit-replicas-'));
  const deps = (instanceName: string) => {
    const d = testDeps(redis, { instanceName });
    return { ...d, config: { ...d.config, DATA_DIR: dataDir } };
  };
  a = await build(deps('api-7d9f-a'));
  b = await build(deps('api-7d9f-b'));
  await Promise.all([a.ready(), b.ready()]);
});

afterAll(() => stopRedisClient(redis, a, b));

const configured = () => path.join(dataDir, 'audit', 'api-audit.jsonl');
const lines = (file: string) => readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { at: string; requestId: string; action: string });

test('each replica appends to its own file; the export of either has both replicas\' entries, rotated ones too, in time order', async () => {
  // Interleaved, concurrent reads on both replicas.
  await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).inject({ method: 'GET', url: `/api/v1/studies/${UID}`, headers: READER })));
  const fileA = auditFileFor(configured(), 'api-7d9f-a');
  const fileB = auditFileFor(configured(), 'api-7d9f-b');
  expect(path.basename(fileA)).toBe('api-audit.api-7d9f-a.jsonl');
  expect(lines(fileA)).toHaveLength(10);
  expect(lines(fileB)).toHaveLength(10);

  // logrotate moved A's file and compressed an older one of B's; an entry from a version before per-instance files.
  renameSync(fileA, `${fileA}.1`);
  await a.reopenAuditLog();
  const old = { at: '2026-01-01T00:00:00.000Z', user: 'dr-old', role: 'reader', action: 'study.read', requestId: 'req-old', ip: '10.0.0.1' };
  writeFileSync(`${fileB}.2.gz`, gzipSync(`${JSON.stringify({ ...old, requestId: 'req-gz' })}\n`));
  writeFileSync(configured(), `${JSON.stringify(old)}\n`);
  await a.inject({ method: 'GET', url: `/api/v1/studies/${UID}`, headers: READER });
  expect((await auditFiles(configured())).map((f) => path.basename(f))).toEqual([
    'api-audit.api-7d9f-a.jsonl', 'api-audit.api-7d9f-a.jsonl.1', 'api-audit.api-7d9f-b.jsonl', 'api-audit.api-7d9f-b.jsonl.2.gz', 'api-audit.jsonl',
  ]);

  for (const app of [a, b]) {
    const res = await app.inject({ method: 'GET', url: '/api/v1/audit', headers: ADMIN });
    expect(res.statusCode).toBe(200);
    const exported = res.body.trim().split('\n').map((l) => JSON.parse(l) as { at: string; requestId: string; action: string });
    const reads = exported.filter((e) => e.action === 'study.read');
    // 20 concurrent reads, 1 after the rotation, the old file's and the compressed file's entry.
    expect(reads).toHaveLength(23);
    expect(reads.map((e) => e.requestId)).toEqual(expect.arrayContaining(['req-old', 'req-gz']));
    const times = exported.map((e) => Date.parse(e.at));
    expect(times).toEqual([...times].sort((x, y) => x - y));
  }
  // Nothing but the two instances' files and what this test put there.
  expect(readdirSync(path.join(dataDir, 'audit')).sort()).toEqual([
    'api-audit.api-7d9f-a.jsonl', 'api-audit.api-7d9f-a.jsonl.1', 'api-audit.api-7d9f-b.jsonl', 'api-audit.api-7d9f-b.jsonl.2.gz', 'api-audit.jsonl',
  ]);
});

test('neurotriage_api_audit_entries_total counts the entries a replica wrote', async () => {
  const before = lines(auditFileFor(configured(), 'api-7d9f-b')).length;
  const metric = async () => {
    const res = await b.inject({ method: 'GET', url: '/metrics', headers: SCRAPER });
    return Number(/^neurotriage_api_audit_entries_total(?:\{[^}]*\})? (\d+)$/m.exec(res.body)?.[1]);
  };
  const counted = await metric();
  await b.inject({ method: 'GET', url: `/api/v1/studies/${UID}`, headers: READER });
  await b.inject({ method: 'GET', url: `/api/v1/studies/${UID}`, headers: READER });
  expect(await metric()).toBe(counted + 2);
  expect(lines(auditFileFor(configured(), 'api-7d9f-b')).length).toBe(before + 2);
  // Every entry this replica wrote since it started is counted (the export above wrote one too).
  expect(counted).toBe(before);
});
