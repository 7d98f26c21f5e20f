// The model bundle contract (onnx-models/manifest.json): what the training recipe writes and the worker and API
// validate at load. A hospital's own models (e.g. a real NeuroBERT exported with standard tools) drop in by
// shipping files that satisfy this schema. Validation of the JSON shape lives here; checksum checks and ONNX
// session creation live with the code that loads the files.
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

/** MRI sequences as radiologists name them; one image encoder per sequence at most. */
export const SEQUENCES = ['T1', 'T2', 'FLAIR', 'DWI', 'ADC'] as const;
export type Sequence = (typeof SEQUENCES)[number];

export const PRIORITIES = ['STAT', 'URGENT', 'ROUTINE'] as const;
export type Priority = (typeof PRIORITIES)[number];

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

export const CalibrationSchema = Type.Object({
  /** probability = 1 / (1 + exp(-(a * score + b))), fitted on a held-out calibration set. */
  a: Type.Number(),
  b: Type.Number(),
  /** Score at or above which the finding is flagged; chosen for targetSensitivity on the calibration set. */
  threshold: Type.Number(),
  targetSensitivity: Type.Number({ minimum: 0, maximum: 1 }),
});

export const TriageQuerySchema = Type.Object({
  id: Type.String({ pattern: '^[a-z0-9_-]{1,64}$' }),
  text: Type.String({ minLength: 3, maxLength: 500 }),
  /** Optional contrast sentence: score = cos(image, text) - cos(image, negativeText). */
  negativeText: Type.Optional(Type.String({ minLength: 3, maxLength: 500 })),
  priority: Type.Union(PRIORITIES.map((p) => Type.Literal(p))),
  /**
   * Optional: the sequences in which this finding shows (e.g. DWI for an acute infarct). The query is scored on
   * the combination of those the study has, or of all its sequences when it has none of them. Absent: all.
   */
  sequences: Type.Optional(Type.Array(Type.Union(SEQUENCES.map((s) => Type.Literal(s))), { minItems: 1, uniqueItems: true })),
  calibration: Type.Optional(CalibrationSchema),
});
export type TriageQuery = Static<typeof TriageQuerySchema>;

export const ManifestSchema = Type.Object({
  schemaVersion: Type.Literal(1),
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
      Type.Object({ id: Type.String({ minLength: 1 }), file: Type.String({ minLength: 1 }), input: TensorSpecSchema, output: TensorSpecSchema }),
    ),
    { minProperties: 1 },
  ),
  preprocessing: PreprocessingSchema,
  /** How per-sequence results become one study result; documented in onnx-models/README.md. */
  combination: Type.Union([Type.Literal('mean-embedding'), Type.Literal('mean-score')]),
  queries: Type.Array(TriageQuerySchema, { minItems: 1 }),
  normalQuery: Type.Optional(TriageQuerySchema),
  trainedOn: Type.Object({ description: Type.String(), studies: Type.Integer({ minimum: 0 }), seed: Type.Optional(Type.Integer()) }),
  /** sha256 of every file in the bundle, by path relative to the manifest. */
  files: Type.Record(Type.String(), Sha256),
});
export type Manifest = Static<typeof ManifestSchema>;

export class ManifestError extends Error {
  override name = 'ManifestError';
}

/** Parses and shape-checks a manifest; throws ManifestError naming every problem. */
export function parseManifest(json: unknown): Manifest {
  const problems = [...Value.Errors(ManifestSchema, json)].map((e) => `${e.path || '(root)'}: ${e.message}`);
  if (problems.length > 0) throw new ManifestError(`invalid model manifest:\n  - ${problems.slice(0, 20).join('\n  - ')}`);
  const m = json as Manifest;
  for (const file of [m.textEncoder.file, m.textEncoder.tokenizer, ...Object.values(m.imageEncoders).map((e) => (e as { file: string }).file)]) {
    if (!(file in m.files)) throw new ManifestError(`invalid model manifest: ${file} has no sha256 in "files"`);
  }
  return m;
}
