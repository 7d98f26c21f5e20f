// TypeBox schemas of the API's requests and responses: the single source for validation, serialisation and
// the OpenAPI document at /docs. Shapes mirror shared/results.ts and shared/model-manifest.ts.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { PRIORITIES, SEQUENCES, TriageQuerySchema } from '../../shared/model-manifest';
import { ROLES } from './settings';

const lit = <T extends string>(values: readonly T[]) => Type.Union(values.map((v) => Type.Literal(v)));

export const PrioritySchema = lit(PRIORITIES);
export const SequenceSchema = lit(SEQUENCES);
export const StatusSchema = lit(['received', 'queued', 'scoring', 'scored', 'failed', 'unsupported'] as const);

/** RFC 9457 problem details; `detail` always says what is wrong in words a client developer can act on. */
export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    instance: Type.Optional(Type.String()),
    /** Validation failures, one per bad field. */
    errors: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }))),
  },
  { description: 'application/problem+json (RFC 9457)' },
);
export type Problem = Static<typeof ProblemSchema>;

/** Error responses every authenticated route may give. */
export const problems = {
  400: ProblemSchema,
  401: ProblemSchema,
  403: ProblemSchema,
  404: ProblemSchema,
  429: ProblemSchema,
  500: ProblemSchema,
  503: ProblemSchema,
};

export const UidSchema = Type.String({ pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64, description: 'a DICOM UID' });
export const UidParams = Type.Object({ StudyInstanceUID: UidSchema });

const BySequence = Type.Object(Object.fromEntries(SEQUENCES.map((s) => [s, Type.Optional(Type.Number())])) as Record<string, TSchema>);

const Vec3 = Type.Tuple([Type.Number(), Type.Number(), Type.Number()]);

/** shared/results.ts FindingLocation: where a flagged finding's score comes from (key slice, point, region). */
export const FindingLocationSchema = Type.Object({
  method: Type.Literal('occlusion'),
  sequence: SequenceSchema,
  SeriesInstanceUID: Type.String(),
  SOPInstanceUID: Type.String(),
  SOPClassUID: Type.Optional(Type.String()),
  frame: Type.Optional(Type.Integer({ minimum: 1, description: '1-based frame number of a multi-frame instance' })),
  FrameOfReferenceUID: Type.Optional(Type.String()),
  ImageOrientationPatient: Type.Array(Type.Number(), { minItems: 6, maxItems: 6 }),
  point: Type.Tuple([Type.Number(), Type.Number()], { description: '[column, row] in DICOM image coordinates: 0,0 is the top left corner of the first pixel' }),
  radiusPx: Type.Number(),
  radiusMm: Type.Number(),
  patientMm: Vec3,
  sliceIndex: Type.Integer(),
  sliceCount: Type.Integer(),
  scoreDrop: Type.Number(),
});

export const FindingSchema = Type.Object({
  queryId: Type.String(),
  text: Type.String(),
  priority: PrioritySchema,
  similarity: Type.Number(),
  probability: Type.Union([Type.Number(), Type.Null()]),
  flagged: Type.Boolean(),
  bySequence: BySequence,
  location: Type.Optional(FindingLocationSchema),
});

export const StudyResultSchema = Type.Object({
  StudyInstanceUID: Type.String(),
  AccessionNumber: Type.Optional(Type.String()),
  priority: PrioritySchema,
  findings: Type.Array(FindingSchema),
  abnormalProbability: Type.Union([Type.Number(), Type.Null()]),
  sequencesUsed: Type.Array(SequenceSchema),
  sequencesMissing: Type.Array(SequenceSchema),
  series: Type.Array(
    Type.Object({
      SeriesInstanceUID: Type.String(),
      SeriesNumber: Type.Optional(Type.Number()),
      sequence: Type.String(),
      used: Type.Boolean(),
      reason: Type.Optional(Type.String()),
    }),
  ),
  confidence: Type.Number(),
  model: Type.Object({ bundleId: Type.String(), version: Type.String() }),
  provider: Type.String(),
  timingsMs: Type.Object({
    decode: Type.Number(), preprocess: Type.Number(), inference: Type.Number(), scoring: Type.Number(), localise: Type.Optional(Type.Number()), total: Type.Number(),
  }),
  receivedAt: Type.Number(),
  scoredAt: Type.Number(),
});

export const WorklistItemSchema = Type.Composite([StudyResultSchema, Type.Object({ status: Type.Union([StatusSchema, Type.Null()]) })]);

const csv = (pattern: string, description: string) => Type.String({ pattern: `^(${pattern})(,(${pattern}))*$`, description });

export const WorklistQuery = Type.Object({
  priority: Type.Optional(csv(PRIORITIES.join('|'), 'comma-separated priorities, e.g. STAT,URGENT')),
  status: Type.Optional(csv('received|queued|scoring|scored|failed|unsupported', 'comma-separated statuses')),
  flagged: Type.Optional(Type.String({ pattern: '^[a-z0-9_-]{1,64}$', description: 'only studies where this query id is flagged' })),
  since: Type.Optional(Type.Integer({ minimum: 0, description: 'only studies received at or after this time (ms since epoch)' })),
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
  cursor: Type.Optional(Type.String({ maxLength: 300, description: 'nextCursor from the previous page' })),
});

export const WorklistResponse = Type.Object({
  items: Type.Array(WorklistItemSchema),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});

export const StudiesQuery = Type.Object({
  status: csv('received|queued|scoring|scored|failed|unsupported', 'comma-separated statuses, e.g. failed,unsupported'),
  limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }),
});
export const StudiesResponse = Type.Object({
  items: Type.Array(
    Type.Object({
      StudyInstanceUID: Type.String(),
      status: StatusSchema,
      AccessionNumber: Type.Optional(Type.String()),
      firstReceivedAt: Type.Number(),
      lastReceivedAt: Type.Number(),
      statusAt: Type.Union([Type.Number(), Type.Null()]),
      instances: Type.Number(),
      reason: Type.Union([Type.String(), Type.Null()]),
    }),
  ),
});

export const StudyResponse = Type.Object({
  StudyInstanceUID: Type.String(),
  status: Type.Union([StatusSchema, Type.Null()]),
  /** Numeric fields of the study hash: firstReceivedAt, lastReceivedAt, instances, bytes, stage times. */
  progress: Type.Record(Type.String(), Type.Number()),
  reason: Type.Union([Type.String(), Type.Null()]),
  result: Type.Union([StudyResultSchema, Type.Null()]),
});

export const ImageParams = Type.Object({ StudyInstanceUID: UidSchema, SOPInstanceUID: UidSchema });
export const ImageQuery = Type.Object({
  frame: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000, description: '1-based frame number (multi-frame instances); default 1' })),
  window: Type.Optional(Type.String({
    pattern: '^(auto|-?[0-9]+(\\.[0-9]+)?,[0-9]+(\\.[0-9]+)?)$',
    description: '"auto" (1st to 99.5th percentile of the frame, the default) or "center,width" in stored units after rescale',
  })),
});
export const SlicesParams = Type.Object({ StudyInstanceUID: UidSchema, SeriesInstanceUID: UidSchema });
export const SlicesQuery = Type.Object({
  containing: Type.Optional(Type.String({ pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64, description: 'the stack holding this SOP Instance UID (a diffusion series has one per b-value)' })),
});
export const SlicesResponse = Type.Object({
  SeriesInstanceUID: Type.String(),
  rows: Type.Integer(),
  columns: Type.Integer(),
  pixelSpacing: Type.Tuple([Type.Number(), Type.Number()]),
  slices: Type.Array(Type.Object({ SOPInstanceUID: Type.String(), frame: Type.Optional(Type.Integer()), positionMm: Type.Number() })),
});

export const ScoreBody = Type.Object(
  {
    text: Type.String({ minLength: 3, maxLength: 500 }),
    negativeText: Type.Optional(Type.String({ minLength: 3, maxLength: 500 })),
  },
  { additionalProperties: false },
);
export const ScoreResponse = Type.Object({
  StudyInstanceUID: Type.String(),
  text: Type.String(),
  /** cos(combined image vector, text) minus cos(combined, negativeText) when given. */
  similarity: Type.Number(),
  bySequence: BySequence,
  model: Type.Object({ bundleId: Type.String(), version: Type.String() }),
});

export const SearchQuery = Type.Object({
  q: Type.String({ minLength: 3, maxLength: 500 }),
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  offset: Type.Integer({ minimum: 0, maximum: 100000, default: 0 }),
});
export const SearchResponse = Type.Object({
  total: Type.Integer(),
  offset: Type.Integer(),
  limit: Type.Integer(),
  items: Type.Array(
    Type.Object({
      StudyInstanceUID: Type.String(),
      AccessionNumber: Type.Optional(Type.String()),
      similarity: Type.Number(),
      priority: PrioritySchema,
      receivedAt: Type.Number(),
    }),
  ),
});

export const ReportCheckBody = Type.Object({ report: Type.String({ minLength: 1, maxLength: 20000 }) }, { additionalProperties: false });
const Gap = Type.Object({
  queryId: Type.String(), text: Type.String(), priority: PrioritySchema, similarity: Type.Number(),
  probability: Type.Union([Type.Number(), Type.Null()]),
  closestSentence: Type.Union([Type.Integer(), Type.Null()]),
  closestSimilarity: Type.Union([Type.Number(), Type.Null()]),
});
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
export const ReportCheckResponse = Type.Object({
  StudyInstanceUID: Type.String(),
  sentences: Type.Array(
    Type.Object({
      index: Type.Integer(), text: Type.String(), assertion: lit(['present', 'absent', 'uncertain'] as const),
      matchedQueryId: Nullable(Type.String()), matchSimilarity: Nullable(Type.Number()),
      imageScore: Nullable(Type.Number()), threshold: Nullable(Type.Number()), supported: Nullable(Type.Boolean()),
    }),
  ),
  notMentioned: Type.Array(Gap),
  contradicted: Type.Array(Gap),
  unsupported: Type.Array(Type.Integer()),
  mentionSimilarity: Type.Number(),
});

export { TriageQuerySchema };
export const QueryIdParams = Type.Object({ id: Type.String({ pattern: '^[a-z0-9_-]{1,64}$', description: 'query id' }) });
/** Request bodies refuse unknown fields: a misspelt "negativetext" must be an error, not silently dropped. */
export const QueryBody = Type.Object(TriageQuerySchema.properties, { additionalProperties: false });
export const QueryBodyNoId = Type.Omit(QueryBody, ['id'], { additionalProperties: false });
export const QueriesResponse = Type.Object({
  version: Type.Integer(),
  queries: Type.Array(TriageQuerySchema),
  /** Stored entries that no longer validate (skipped by the worker too). */
  problems: Type.Array(Type.String()),
});
export const QueryChangeResponse = Type.Object({ version: Type.Integer(), query: Type.Optional(TriageQuerySchema) });

export const MeResponse = Type.Object({ name: Type.String(), role: lit(ROLES) });
