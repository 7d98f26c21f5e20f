// The model bundle contract (onnx-models/manifest.json): what the training recipe writes and the worker and API
// validate at load. A hospital's own models (e.g. a real NeuroBERT exported with standard tools) drop in by
// shipping files that satisfy this schema. Validation of the JSON shape lives here; checksum checks and ONNX
// session creation live with the code that loads the files.
import { createHash } from 'node:crypto';
import { Kind, Type, TypeRegistry, type Static } from '@sinclair/typebox';
import { GetErrorFunction, SetErrorFunction } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';

/** MRI sequences as radiologists name them; one image encoder per sequence at most. SWI covers susceptibility-
 *  weighted imaging and 2D T2* gradient echo (the blood-sensitive series of a stroke protocol). */
export const SEQUENCES = ['T1', 'T2', 'FLAIR', 'DWI', 'ADC', 'SWI'] as const;
export type Sequence = (typeof SEQUENCES)[number];

export const PRIORITIES = ['STAT', 'URGENT', 'ROUTINE'] as const;
export type Priority = (typeof PRIORITIES)[number];

/**
 * One of a fixed set of strings, as a JSON Schema enum: a bad value is refused with "must be equal to one of the
 * allowed values (STAT, URGENT, ROUTINE)" (a union of literals gives one "must be equal to constant" per value).
 * TypeBox's own pattern for it: a custom kind, registered so that Value.Check knows it too.
 */
if (!TypeRegistry.Has('StringEnum')) {
  TypeRegistry.Set<{ enum: string[] }>('StringEnum', (schema, value) => typeof value === 'string' && schema.enum.includes(value));
  // Value.Errors (a bundle manifest that fails validation) names the allowed values, as ajv does for the API.
  const fallback = GetErrorFunction();
  SetErrorFunction((e) => (e.schema[Kind] === 'StringEnum' ? `Expected one of ${(e.schema as unknown as { enum: string[] }).enum.join(', ')}` : fallback(e)));
}
export const stringEnum = <T extends string>(values: readonly T[]) => Type.Unsafe<T>({ [Kind]: 'StringEnum', type: 'string', enum: [...values] });

const Dim = Type.Union([Type.Integer({ minimum: 1 }), Type.String({ minLength: 1 })], {
  description: 'a fixed size, or a symbolic name for a dynamic axis (e.g. "batch")',
});

export const TensorSpecSchema = Type.Object({
  name: Type.String({ minLength: 1 }),
  dtype: Type.Union([Type.Literal('float32'), Type.Literal('int64'), Type.Literal('int32')]),
  shape: Type.Array(Dim),
});
export type TensorSpec = Static<typeof TensorSpecSchema>;

const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$' });

export const PreprocessingSchema = Type.Object({
  /** Array axes (slowest to fastest) run along patient +Z (inferior->superior), +Y (anterior->posterior), +X (right->left): DICOM LPS. */
  orientation: Type.Literal('LPS'),
  /** Voxel spacing of the canonical grid in mm, [z, y, x]. */
  spacingMm: Type.Tuple([Type.Number({ exclusiveMinimum: 0 }), Type.Number({ exclusiveMinimum: 0 }), Type.Number({ exclusiveMinimum: 0 })]),
  /** Canonical grid size [D, H, W] after crop/pad about the centre named by `centre`. */
  shape: Type.Tuple([Type.Integer({ minimum: 1 }), Type.Integer({ minimum: 1 }), Type.Integer({ minimum: 1 })]),
  centre: Type.Union([Type.Literal('volume-centre'), Type.Literal('foreground-centroid')]),
  interpolation: Type.Union([Type.Literal('trilinear'), Type.Literal('nearest')]),
  intensity: Type.Object({
    method: Type.Union([Type.Literal('zscore-foreground'), Type.Literal('percentile')]),
    /** Values are clipped to this range after normalisation. */
    clip: Type.Tuple([Type.Number(), Type.Number()]),
  }),
});
export type Preprocessing = Static<typeof PreprocessingSchema>;

export const OperatingPointSchema = Type.Object({
  /** Calibrated probability at or above which the finding (or, in a class table, the study) is flagged. */
  threshold: Type.Number({ minimum: 0, maximum: 1 }),
  sensitivity: Type.Number({ minimum: 0, maximum: 1 }),
  /** Fraction of studies without the finding (or without any finding of the class) that are flagged anyway. */
  falsePositiveRate: Type.Number({ minimum: 0, maximum: 1 }),
});
export type OperatingPoint = Static<typeof OperatingPointSchema>;

export const CALIBRATION_METHODS = ['labelled-cohort', 'report-pseudo-labels'] as const;

export const CalibrationSchema = Type.Object({
  /** probability = 1 / (1 + exp(-(a * score + b))) (Platt), score = the query's raw image score. */
  a: Type.Number(),
  b: Type.Number(),
  /**
   * Calibrated PROBABILITY at or above which the finding is flagged: the flag and the probability shown beside it
   * always agree ("flagged: P >= threshold"). Chosen for targetSensitivity on the calibration studies.
   */
  threshold: Type.Number({ minimum: 0, maximum: 1 }),
  targetSensitivity: Type.Number({ minimum: 0, maximum: 1 }),
  /**
   * labelled-cohort: the bundle's own calibration cohort (ground truth, evaluation side); report-pseudo-labels: a
   * site's past studies, each labelled by how its final report's text matches the query (no hand labels).
   */
  method: Type.Union(CALIBRATION_METHODS.map((m) => Type.Literal(m))),
  /** Studies the fit used, and how many of them were (pseudo-)positive. */
  studies: Type.Integer({ minimum: 0 }),
  positives: Type.Integer({ minimum: 0 }),
  calibratedAt: Type.String({ minLength: 1 }),
  /** queryFingerprint() of the text, negativeText and sequences it was fitted for: a calibration whose fingerprint
   *  differs from its query's is stale and is never applied. */
  fittedFor: Type.String({ pattern: '^[0-9a-f]{16}$' }),
  /** The image model (bundle version) whose scores it was fitted on; another bundle's calibration is stale. */
  bundleVersion: Type.String({ minLength: 1 }),
  /** Sensitivity and specificity at `threshold` on the calibration studies (pseudo-labels for report-pseudo-labels). */
  estimated: Type.Object({ sensitivity: Type.Number({ minimum: 0, maximum: 1 }), specificity: Type.Number({ minimum: 0, maximum: 1 }) }),
  /** Sensitivity against false-positive rate over a grid of thresholds, on the same studies. */
  operatingPoints: Type.Array(OperatingPointSchema),
});
export type Calibration = Static<typeof CalibrationSchema>;

export const TriageQuerySchema = Type.Object({
  id: Type.String({ pattern: '^[a-z0-9_-]{1,64}$' }),
  text: Type.String({ minLength: 3, maxLength: 500 }),
  /** Optional contrast sentence: score = cos(image, text) - cos(image, negativeText). */
  negativeText: Type.Optional(Type.String({ minLength: 3, maxLength: 500 })),
  priority: stringEnum(PRIORITIES),
  /**
   * Optional: the sequences in which this finding shows (e.g. DWI for an acute infarct). The query is scored on
   * the combination of those the study has, or of all its sequences when it has none of them. Absent: all.
   */
  sequences: Type.Optional(Type.Array(stringEnum(SEQUENCES), { minItems: 1, uniqueItems: true })),
  calibration: Type.Optional(CalibrationSchema),
  /**
   * The sensitivity the site wants this query calibrated for (a site query without a calibration yet keeps it here
   * until one is computed; a calibration records the one it was fitted for). Absent: the calibration's, else 0.95.
   */
  targetSensitivity: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
  /** bundle: one of the bundle's defaults (versioned with it); site: made or edited by the site. Absent: bundle. */
  origin: Type.Optional(Type.Union([Type.Literal('bundle'), Type.Literal('site')])),
});
export type TriageQuery = Static<typeof TriageQuerySchema>;

/**
 * A study-level decision for one priority class: the study gets the class when any of the class's findings is
 * flagged. The bundle's queries of the class share one probability threshold, chosen on the calibration cohort so
 * that studies with any finding of the class are caught at targetSensitivity; `table` is what other thresholds give
 * (a site picks its point with TRIAGE_STAT_SENSITIVITY / TRIAGE_URGENT_SENSITIVITY).
 */
export const ClassDecisionSchema = Type.Object({
  targetSensitivity: Type.Number({ minimum: 0, maximum: 1 }),
  threshold: Type.Number({ minimum: 0, maximum: 1 }),
  /** Studies of the calibration cohort with / without a finding of this class. */
  positives: Type.Integer({ minimum: 0 }),
  negatives: Type.Integer({ minimum: 0 }),
  table: Type.Array(OperatingPointSchema, { minItems: 1 }),
});
export type ClassDecision = Static<typeof ClassDecisionSchema>;

export const DecisionSchema = Type.Object({
  STAT: ClassDecisionSchema,
  URGENT: Type.Optional(ClassDecisionSchema),
});
export type Decision = Static<typeof DecisionSchema>;

/** What the text encoder knows of language, for telling a user how well it understands a sentence. */
export const LanguageSchema = Type.Object({
  /** UTF-8 file, one lower-case word per line: every word of the training corpus. */
  knownWords: Type.String({ minLength: 1 }),
  /** float32 little-endian [sentences, embeddingDim]: unit vectors of the distinct sentences of the training corpus. */
  sentenceBank: Type.String({ minLength: 1 }),
  sentences: Type.Integer({ minimum: 1 }),
  /** A text whose best cosine to the sentence bank is below this is off-topic (measured on held-out text). */
  offTopicBelow: Type.Number({ minimum: -1, maximum: 1 }),
  /** A report sentence whose cosine to a query's text is at least this mentions the query's finding. */
  mentionSimilarity: Type.Number({ minimum: -1, maximum: 1 }),
});
export type Language = Static<typeof LanguageSchema>;

/**
 * The normal appearance of each sequence on the canonical grid (onnx-models/training/atlas.py): per sequence one
 * float32 little-endian file [2, D, H, W], the voxelwise median of unlabelled training volumes, then a robust
 * spread (1.4826 x MAD plus a floor). The worker localises flagged findings with it; no score depends on it.
 */
export const AtlasSchema = Type.Object({
  files: Type.Partial(Type.Record(Type.Union(SEQUENCES.map((s) => Type.Literal(s))), Type.String({ minLength: 1 })), { minProperties: 1 }),
  studies: Type.Integer({ minimum: 1 }),
  description: Type.String(),
});
export type Atlas = Static<typeof AtlasSchema>;

export const ManifestSchema = Type.Object({
  /** 2 (this contract). A schemaVersion 1 manifest (raw-score thresholds) is upgraded on load: see upgradeManifest. */
  schemaVersion: Type.Literal(2),
  bundleId: Type.String({ minLength: 1 }),
  version: Type.String({ minLength: 1 }),
  createdAt: Type.String({ minLength: 1 }),
  embeddingDim: Type.Integer({ minimum: 1 }),
  textEncoder: Type.Object({
    id: Type.String({ minLength: 1 }),
    file: Type.String({ minLength: 1 }),
    tokenizer: Type.String({ minLength: 1 }),
    maxLength: Type.Integer({ minimum: 8 }),
    inputs: Type.Array(TensorSpecSchema, { minItems: 1 }),
    output: TensorSpecSchema,
    /** "mean": output is last_hidden_state [batch, seq, dim], mean-pooled over attention_mask by the service. */
    pooling: Type.Union([Type.Literal('mean'), Type.Literal('none')]),
    normalize: Type.Boolean(),
  }),
  /** One encoder per trained sequence; a bundle may cover a subset (at least one). */
  imageEncoders: Type.Partial(
    Type.Record(
      Type.Union(SEQUENCES.map((s) => Type.Literal(s))),
      Type.Object({
        id: Type.String({ minLength: 1 }),
        file: Type.String({ minLength: 1 }),
        input: TensorSpecSchema,
        output: TensorSpecSchema,
        /**
         * A sequence only some protocols include (SWI in a stroke protocol): read when the study has it, but a study
         * without it is complete: no result waits for it and its absence lowers no confidence.
         */
        supplementary: Type.Optional(Type.Boolean()),
      }),
    ),
    { minProperties: 1 },
  ),
  preprocessing: PreprocessingSchema,
  /** How per-sequence results become one study result; documented in onnx-models/README.md. */
  combination: Type.Union([Type.Literal('mean-embedding'), Type.Literal('mean-score')]),
  queries: Type.Array(TriageQuerySchema, { minItems: 1 }),
  normalQuery: Type.Optional(TriageQuerySchema),
  /** Study-level decisions per priority class; absent: a class is flagged by its queries' own thresholds. */
  decision: Type.Optional(DecisionSchema),
  language: Type.Optional(LanguageSchema),
  atlas: Type.Optional(AtlasSchema),
  trainedOn: Type.Object({ description: Type.String(), studies: Type.Integer({ minimum: 0 }), seed: Type.Optional(Type.Integer()) }),
  /** sha256 of every file in the bundle, by path relative to the manifest. */
  files: Type.Record(Type.String(), Sha256),
});
export type Manifest = Static<typeof ManifestSchema>;

/** The bundle's sequences a complete study has: every encoder's but the supplementary ones. */
export function expectedSequences(manifest: Pick<Manifest, 'imageEncoders'>): Sequence[] {
  const encoders = manifest.imageEncoders as Partial<Record<Sequence, { supplementary?: boolean }>>;
  return SEQUENCES.filter((s) => encoders[s] && !encoders[s]!.supplementary);
}

export class ManifestError extends Error {
  override name = 'ManifestError';
}

/** Short fingerprint of what a query's calibration depends on: its text, contrast sentence and sequences. */
export function queryFingerprint(q: Pick<TriageQuery, 'text' | 'negativeText' | 'sequences'>): string {
  const key = JSON.stringify([q.text.trim(), q.negativeText?.trim() ?? '', [...(q.sequences ?? [])].sort()]);
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

/**
 * A schemaVersion 1 manifest as version 2: v1 thresholds were raw scores, v2 thresholds are the calibrated
 * probability at that score, so every flag stays where it was. Other v2 fields are filled from what v1 knew.
 */
export function upgradeManifest(json: unknown): unknown {
  const m = json as { schemaVersion?: unknown; version?: string; createdAt?: string; queries?: unknown[]; normalQuery?: unknown };
  if (!m || typeof m !== 'object' || m.schemaVersion !== 1) return json;
  const upgrade = (q: unknown): unknown => {
    const query = q as TriageQuery & { calibration?: { a: number; b: number; threshold: number; targetSensitivity: number } };
    if (!query || typeof query !== 'object' || !query.calibration || typeof query.text !== 'string') return q;
    const c = query.calibration;
    return {
      ...query,
      calibration: {
        a: c.a, b: c.b, targetSensitivity: c.targetSensitivity,
        threshold: 1 / (1 + Math.exp(-(c.a * c.threshold + c.b))),
        method: 'labelled-cohort', studies: 0, positives: 0, calibratedAt: m.createdAt ?? '', fittedFor: queryFingerprint(query),
        bundleVersion: m.version ?? '', estimated: { sensitivity: c.targetSensitivity, specificity: 0 }, operatingPoints: [],
      },
    };
  };
  return { ...m, schemaVersion: 2, queries: (m.queries ?? []).map(upgrade), ...(m.normalQuery ? { normalQuery: upgrade(m.normalQuery) } : {}) };
}

/** Parses and shape-checks a manifest (upgrading version 1); throws ManifestError naming every problem. */
export function parseManifest(input: unknown): Manifest {
  const json = upgradeManifest(input);
  const problems = [...Value.Errors(ManifestSchema, json)].map((e) => `${e.path || '(root)'}: ${e.message}`);
  if (problems.length > 0) throw new ManifestError(`invalid model manifest:\n  - ${problems.slice(0, 20).join('\n  - ')}`);
  const m = json as Manifest;
  const named = [m.textEncoder.file, m.textEncoder.tokenizer, ...Object.values(m.imageEncoders).map((e) => (e as { file: string }).file)];
  if (m.language) named.push(m.language.knownWords, m.language.sentenceBank);
  if (m.atlas) named.push(...(Object.values(m.atlas.files) as string[]));
  for (const file of named) {
    if (!(file in m.files)) throw new ManifestError(`invalid model manifest: ${file} has no sha256 in "files"`);
  }
  return m;
}
