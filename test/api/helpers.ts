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
import { calibrated, TEST_BUNDLE_VERSION } from '../helpers/calibration';
import type { Manifest } from '../../shared/model-manifest';
import type { BundleLanguage } from '../../shared/language/knowledge';
import { vocabularyOf, wordsOf } from '../../shared/language/vocabulary';
import type { ModelStatus } from '../../services/api/app';
import { resultKeys, worklistScore, type FindingScore, type StudyResult } from '../../shared/results';
import { keys, type StudyStatus } from '../../shared/studies';
import { build, type AppDeps } from '../../services/api/app';
import { API_DEFAULTS, type ApiToken } from '../../services/api/settings';
import { float32ToLE } from '../../shared/float32';

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
/** The test "bundle": its version is the one test calibrations are fitted for, so they apply. */
export const HASH_MODEL = { bundleId: 'test-hash-embedder', version: TEST_BUNDLE_VERSION };
export const NORMAL_TEXT = 'normal brain no abnormality';

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
  provisional?: StudyResult['provisional'];
  /** The result's series list (default: one used DWI series). */
  series?: StudyResult['series'];
  confidence?: number;
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

/**
 * The words the test "model" knows: every word of the test queries, fixtures and sentences the API tests send, as
 * a bundle's knownWords file would list every word of its training text.
 */
export const TEST_CORPUS = [
  ...QUERIES.map((q) => q.text),
  NORMAL_TEXT,
  'hydrocephalus enlarged ventricles', 'white matter hyperintensities small vessel disease changes mild', 'subdural haematoma crescentic collection',
  'acute infarct in the left territory with restricted diffusion', 'enhancing mass lesion tumour oedema in the frontal lobe', 'ventricles are of normal size',
  'obstructive hydrocephalus', 'stroke haemorrhage bleed', 'old lacune sinuses are clear', 'right cerebellum subacute', 'possible small infarct',
];

/** What the API reads from a bundle without a language block: the vocabulary, no sentence bank. */
export function testLanguage(over: Partial<BundleLanguage> = {}): BundleLanguage {
  return {
    vocabulary: vocabularyOf(TEST_CORPUS.flatMap(wordsOf), 'known-words'),
    bank: null,
    offTopicBelow: null,
    mentionSimilarity: null,
    normalText: NORMAL_TEXT,
    ...over,
  };
}

/** A bank of the test corpus's sentences (hash-embedded), for the closeness check. */
export function testBank(): NonNullable<BundleLanguage['bank']> {
  const vectors = TEST_CORPUS.map(hashEmbed);
  const out = new Float32Array(vectors.length * HASH_DIM);
  vectors.forEach((v, i) => out.set(v, i * HASH_DIM));
  return { count: vectors.length, dim: HASH_DIM, vectors: out };
}

/** The parts of a manifest the API reads, for the test bundle: its default queries and normal-study sentence. */
export function testManifest(over: Partial<Manifest> = {}): Manifest {
  return {
    schemaVersion: 2,
    ...HASH_MODEL,
    createdAt: '2026-01-01T00:00:00Z',
    embeddingDim: HASH_DIM,
    combination: 'mean-embedding',
    textEncoder: {
      id: 'test-hash-embedder', file: 'text.onnx', tokenizer: 'tokenizer.json', maxLength: 64, inputs: [], pooling: 'none', normalize: true,
      output: { name: 'embedding', dtype: 'float32', shape: ['batch', HASH_DIM] },
    },
    // The sequences the bundle reads (the API checks a query's against them); the encoders never run here.
    imageEncoders: Object.fromEntries((['T2', 'FLAIR', 'DWI', 'ADC'] as const).map((s) => [s, { file: `image-${s.toLowerCase()}.onnx`, input: {}, output: {} }])),
    files: { 'text.onnx': '0'.repeat(64), 'tokenizer.json': '1'.repeat(64) },
    queries: QUERIES,
    normalQuery: { id: 'normal', text: NORMAL_TEXT, priority: 'ROUTINE' },
    ...over,
  } as Manifest;
}

export function testModelStatus(over: { manifest?: Partial<Manifest>; language?: Partial<BundleLanguage> } = {}): ModelStatus {
  const manifest = testManifest(over.manifest);
  return { loaded: true, bundleId: manifest.bundleId, version: manifest.version, combination: manifest.combination, manifest, language: testLanguage(over.language) };
}

/** Writes what the worker writes for a scored study, in the shared contract's shape and keys, and publishes. */
export async function writeResult(redis: Redis, f: Fixture, publish = false, queries: TriageQuery[] = QUERIES): Promise<StudyResult> {
  const image = hashEmbed(f.looksLike);
  const used = (['T2', 'FLAIR', 'DWI', 'ADC'] as Sequence[]).filter((s) => !(f.missing ?? []).includes(s));
  const result: StudyResult = {
    StudyInstanceUID: f.uid,
    ...(f.accession ? { AccessionNumber: f.accession } : {}),
    priority: f.priority,
    // Triggered as decision.ts says: flagged, and of the study's (non-ROUTINE) priority class.
    findings: queries.map((q) => finding(q, image, (f.flagged ?? []).includes(q.id), used)).map((x) => ({ ...x, triggered: x.flagged && f.priority !== 'ROUTINE' && x.priority === f.priority })),
    ...(f.provisional ? { provisional: f.provisional } : {}),
    abnormalProbability: f.priority === 'ROUTINE' ? 0.1 : 0.9,
    sequencesUsed: used,
    sequencesMissing: f.missing ?? [],
    series: f.series ?? [{ SeriesInstanceUID: `${f.uid}.1`, SeriesNumber: 1, sequence: 'DWI', used: true }],
    confidence: f.confidence ?? 1 - (f.missing ?? []).length / 4,
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
    .hset(resultKeys.vectors(f.uid), { combined: float32ToLE(image), DWI: float32ToLE(image) })
    .zadd(resultKeys.worklist(), worklistScore(f.priority, f.receivedAt), f.uid)
    .exec();
  if (publish) await redis.publish(resultKeys.scoredChannel(), f.uid);
  return result;
}

export function testDeps(redis: Redis, over: Partial<AppDeps> = {}): AppDeps {
  const dir = mkdtempSync(path.join(tmpdir(), 'nt-api-'));
  const status = testModelStatus();
  return {
    config: { DATA_DIR: dir, DISK_MIN_FREE_MB: 1 },
    settings: { ...API_DEFAULTS, API_TOKENS: '', API_REPORT_MENTION_SIMILARITY: 0.5, API_AUDIT_LOG_FILE: 'audit/api-audit.jsonl', CALIBRATION_INTERVAL_SECONDS: 0 },
    tokens: TOKENS,
    redis,
    logger: createLogger('api-test', 'silent'),
    registry: new Registry(),
    embedText: hashEmbedText,
    modelStatus: () => status,
    clock: () => Date.now(),
    statusCacheMs: 0,
    ...over,
  };
}

export const buildTestApp = (redis: Redis, over: Partial<AppDeps> = {}) => build(testDeps(redis, over));
