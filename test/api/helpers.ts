// Test fixtures for the API: a small deterministic text embedder (feature-hashed words; used where the real
// bundle's text encoder is absent, and named so in the tests), study results written to a real Redis in the
// shared/results.ts shape exactly as the worker writes them, and an app built on top.
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { createLogger } from '../../shared/logger';
import type { Priority, Sequence, TriageQuery } from '../../shared/model-manifest';
import { calibrated } from '../helpers/calibration';
import { resultKeys, worklistScore, type FindingScore, type StudyResult } from '../../shared/results';
import { keys, type StudyStatus } from '../../shared/studies';
import { build, type AppDeps } from '../../services/api/app';
import { API_DEFAULTS, type ApiToken } from '../../services/api/settings';
import { encodeVector } from '../../services/api/vectors';

export const TOKENS: ApiToken[] = [
  { token: 'reader-token-0123456789', role: 'reader', name: 'dr-reader' },
  { token: 'admin-token-0123456789ab', role: 'admin', name: 'pacs-admin' },
  { token: 'metrics-token-0123456789', role: 'metrics', name: 'prometheus' },
];
export const READER = { authorization: `Bearer ${TOKENS[0].token}` };
export const ADMIN = { authorization: `Bearer ${TOKENS[1].token}` };
export const SCRAPER = { authorization: `Bearer ${TOKENS[2].token}` };

const STOP = new Set(['a', 'an', 'the', 'in', 'of', 'is', 'are', 'there', 'with', 'and', 'on', 'at', 'to', 'seen', 'this', 'that']);
export const HASH_DIM = 256;

/** Bag of words hashed into HASH_DIM buckets, L2-normalised: sentences sharing words are close. Not a model. */
export function hashEmbed(text: string): Float32Array {
  const v = new Float32Array(HASH_DIM);
  for (const w of text.toLowerCase().match(/[a-z0-9]+/g) ?? []) {
    if (STOP.has(w)) continue;
    const h = createHash('sha1').update(w).digest();
    v[h.readUInt32LE(0) % HASH_DIM] += 1;
  }
  const n = Math.hypot(...v) || 1;
  return v.map((x) => x / n);
}
export const hashEmbedText = async (texts: string[]) => texts.map(hashEmbed);
export const HASH_MODEL = { bundleId: 'test-hash-embedder', version: '1' };

export interface Fixture {
  uid: string;
  priority: Priority;
  receivedAt: number;
  /** Text whose hashed embedding stands in for the study's image vector. */
  looksLike: string;
  flagged?: string[];
  status?: StudyStatus;
  missing?: Sequence[];
  accession?: string;
}

/** Scored as the worker would: cosine with the query text, the query's logistic calibration for probability. */
export function finding(q: TriageQuery, image: Float32Array, flagged: boolean, sequences: Sequence[] = ['DWI']): FindingScore {
  const sim = [...hashEmbed(q.text)].reduce((s, x, i) => s + x * image[i], 0);
  const probability = q.calibration ? 1 / (1 + Math.exp(-(q.calibration.a * sim + q.calibration.b))) : null;
  return {
    queryId: q.id, text: q.text, priority: q.priority, similarity: sim, probability, threshold: q.calibration?.threshold ?? null, flagged,
    triggered: flagged, calibration: q.calibration ? 'calibrated' : 'uncalibrated', bySequence: Object.fromEntries(sequences.map((s) => [s, sim])),
  };
}

export const QUERIES: TriageQuery[] = [
  calibrated({ id: 'acute_infarct', text: 'acute infarct restricted diffusion', priority: 'STAT' }, { a: 10, b: -3, scoreThreshold: 0.3, targetSensitivity: 0.95 }),
  calibrated({ id: 'haemorrhage', text: 'intracranial haemorrhage blood products', priority: 'STAT' }, { a: 10, b: -3, scoreThreshold: 0.3, targetSensitivity: 0.95 }),
  calibrated({ id: 'mass', text: 'enhancing mass lesion tumour', priority: 'URGENT' }, { a: 10, b: -3, scoreThreshold: 0.3, targetSensitivity: 0.95 }),
];

/** Writes what the worker writes for a scored study, in the shared contract's shape and keys, and publishes. */
export async function writeResult(redis: Redis, f: Fixture, publish = false, queries: TriageQuery[] = QUERIES): Promise<StudyResult> {
  const image = hashEmbed(f.looksLike);
  const used = (['T2', 'FLAIR', 'DWI', 'ADC'] as Sequence[]).filter((s) => !(f.missing ?? []).includes(s));
  const result: StudyResult = {
    StudyInstanceUID: f.uid,
    ...(f.accession ? { AccessionNumber: f.accession } : {}),
    priority: f.priority,
    findings: queries.map((q) => finding(q, image, (f.flagged ?? []).includes(q.id), used)),
    abnormalProbability: f.priority === 'ROUTINE' ? 0.1 : 0.9,
    sequencesUsed: used,
    sequencesMissing: f.missing ?? [],
    series: [{ SeriesInstanceUID: `${f.uid}.1`, SeriesNumber: 1, sequence: 'DWI', used: true }],
    confidence: 1 - (f.missing ?? []).length / 4,
    model: HASH_MODEL,
    priorityProbability: null,
    judgedWith: { querySetVersion: 'test', classThresholds: {} },
    provider: 'cpu',
    timingsMs: { decode: 10, preprocess: 20, inference: 30, scoring: 1, total: 61 },
    receivedAt: f.receivedAt,
    scoredAt: f.receivedAt + 1000,
  };
  await redis
    .multi()
    .hset(keys.study(f.uid), { status: f.status ?? 'scored', firstReceivedAt: f.receivedAt, lastReceivedAt: f.receivedAt, instances: 40, bytes: 1234567 })
    .set(resultKeys.result(f.uid), JSON.stringify(result))
    .hset(resultKeys.vectors(f.uid), { combined: encodeVector(image), DWI: encodeVector(image) })
    .zadd(resultKeys.worklist(), worklistScore(f.priority, f.receivedAt), f.uid)
    .exec();
  if (publish) await redis.publish(resultKeys.scoredChannel(), f.uid);
  return result;
}

export function testDeps(redis: Redis, over: Partial<AppDeps> = {}): AppDeps {
  const dir = mkdtempSync(path.join(tmpdir(), 'nt-api-'));
  return {
    config: { DATA_DIR: dir, DISK_MIN_FREE_MB: 1 },
    settings: { ...API_DEFAULTS, API_TOKENS: '', API_REPORT_MENTION_SIMILARITY: 0.5, API_AUDIT_LOG_FILE: 'audit/api-audit.jsonl' },
    tokens: TOKENS,
    redis,
    logger: createLogger('api-test', 'silent'),
    registry: new Registry(),
    embedText: hashEmbedText,
    modelStatus: () => ({ loaded: true, ...HASH_MODEL }),
    clock: () => Date.now(),
    statusCacheMs: 0,
    ...over,
  };
}

export const buildTestApp = (redis: Redis, over: Partial<AppDeps> = {}) => build(testDeps(redis, over));
