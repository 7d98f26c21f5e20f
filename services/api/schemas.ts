// TypeBox schemas of the API's requests and responses: the single source for validation, serialisation and
// the OpenAPI document at /docs. Shapes mirror shared/results.ts and shared/model-manifest.ts; a study result's own
// schema is shared/result-schema.ts (the worker and the tools read stored results with it too).
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { PRIORITIES, stringEnum, TriageQuerySchema } from '../../shared/model-manifest';
import { BySequenceSchema, CalibrationStateSchema, ClassThresholdsSchema, PrioritySchema, StudyResultSchema } from '../../shared/result-schema';
import { ROLES } from './settings';

const lit = stringEnum;

export const StatusSchema = lit(['received', 'queued', 'scoring', 'scored', 'failed', 'unsupported'] as const);

/**
 * The `limit` member of a 429 problem: which limit refused the request, for a client to act on without reading
 * `detail` (whose words may change). live-streams-per-user: API_LIVE_MAX_STREAMS_PER_USER; live-streams-per-process:
 * API_LIVE_MAX_STREAMS; rate: the per-client rate limit (API_RATE_LIMIT_MAX in API_RATE_LIMIT_WINDOW_SECONDS).
 */
export const PROBLEM_LIMITS = ['live-streams-per-user', 'live-streams-per-process', 'encoder-per-user', 'rate'] as const;
export type ProblemLimit = (typeof PROBLEM_LIMITS)[number];

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
    /** Extension member of a 429: which limit refused the request. */
    limit: Type.Optional(
      Type.Unsafe<ProblemLimit>({
        type: 'string',
        enum: [...PROBLEM_LIMITS],
        description:
          'on a 429 only: which limit refused the request, to act on instead of the words of detail. live-streams-per-user: ' +
          'this user holds API_LIVE_MAX_STREAMS_PER_USER live-update streams already; live-streams-per-process: the API process holds ' +
          'API_LIVE_MAX_STREAMS; rate: this client sent more than API_RATE_LIMIT_MAX requests in API_RATE_LIMIT_WINDOW_SECONDS',
      }),
    ),
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

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const WorklistItemSchema = Type.Composite([StudyResultSchema, Type.Object({ status: Type.Union([StatusSchema, Type.Null()]) })]);

const csv = (pattern: string, description: string) => Type.String({ pattern: `^(${pattern})(,(${pattern}))*$`, description });

export const WorklistQuery = Type.Object({
  priority: Type.Optional(csv(PRIORITIES.join('|'), 'comma-separated priorities, e.g. STAT,URGENT')),
  status: Type.Optional(csv('received|queued|scoring|scored|failed|unsupported', 'comma-separated statuses')),
  flagged: Type.Optional(Type.String({ pattern: '^[a-z0-9_-]{1,64}$', description: 'only studies where this query id is flagged' })),
  // Bounded by the latest time a Date holds (8.64e15 ms): a larger value is a 400, not an empty list (an infinite
  // one, 1e400, is refused by the problems plugin).
  since: Type.Optional(Type.Integer({ minimum: 0, maximum: 8.64e15, description: 'only studies received at or after this time (ms since epoch)' })),
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
  cursor: Type.Optional(Type.String({ maxLength: 300, description: 'nextCursor from the previous page' })),
}, { additionalProperties: false });

export const WorklistResponse = Type.Object({
  items: Type.Array(WorklistItemSchema),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
  unreadable: Type.Array(Type.String(), {
    description: 'studies listed on the worklist whose stored result cannot be read (not JSON, or not a result), left out of items whatever the filters: score them again',
  }),
});

export const StudiesQuery = Type.Object({
  status: csv('received|queued|scoring|scored|failed|unsupported', 'comma-separated statuses, e.g. failed,unsupported'),
  limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }),
}, { additionalProperties: false });
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

/** POST /api/v1/studies/:uid/rescore: the study's new job (202). */
export const RescoreResponse = Type.Object({
  StudyInstanceUID: Type.String(),
  status: Type.Literal('queued'),
  jobId: Type.String(),
  /** The study's status before: failed, unsupported, scored (a new model bundle, an unreadable result)... */
  previousStatus: Type.Union([StatusSchema, Type.Null()]),
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
    // At most 9 digits before and 6 after the point: finite, and far beyond any stored value after rescale. The
    // route refuses a width below 1 (PS3.3 C.11.2.1.2).
    pattern: '^(auto|-?[0-9]{1,9}(\\.[0-9]{1,6})?,[0-9]{1,9}(\\.[0-9]{1,6})?)$',
    description: '"auto" (1st to 99.5th percentile of the frame, the default) or "center,width" in stored units after rescale (up to 9 digits and 6 decimals each; width at least 1)',
  })),
}, { additionalProperties: false });
export const SlicesParams = Type.Object({ StudyInstanceUID: UidSchema, SeriesInstanceUID: UidSchema });
export const SlicesQuery = Type.Object({
  containing: Type.Optional(Type.String({ pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64, description: 'the stack holding this SOP Instance UID (a diffusion series has one per b-value)' })),
}, { additionalProperties: false });
export const SlicesResponse = Type.Object({
  SeriesInstanceUID: Type.String(),
  rows: Type.Integer(),
  columns: Type.Integer(),
  pixelSpacing: Type.Tuple([Type.Number(), Type.Number()]),
  slices: Type.Array(Type.Object({ SOPInstanceUID: Type.String(), frame: Type.Optional(Type.Integer()), positionMm: Type.Number() })),
});

export const ScoreBody = Type.Object(
  {
    text: Type.String({ minLength: 2, maxLength: 500 }),
    negativeText: Type.Optional(Type.String({ minLength: 2, maxLength: 500 })),
  },
  { additionalProperties: false },
);

export const TextCheckSchema = Type.Object(
  {
    verdict: lit(['ok', 'warning', 'refused'] as const),
    reasons: Type.Array(Type.String()),
    words: Type.Integer({ description: 'content words read' }),
    unknownWords: Type.Array(Type.String()),
    misspelt: Type.Array(Type.Object({ word: Type.String(), suggestion: Type.String() })),
    knownShare: Type.Number(),
    closeness: Nullable(Type.Number({ description: 'best cosine to the bundle\'s sentence bank; null when it has none' })),
    offTopicBelow: Nullable(Type.Number()),
    vocabulary: lit(['known-words', 'tokenizer'] as const),
  },
  { description: 'how well the model knows a text (docs/api.md "How well the model knows a text")' },
);

export const ScoreResponse = Type.Object({
  StudyInstanceUID: Type.String(),
  text: Type.String(),
  /** cos(combined image vector, text) minus cos(combined, negativeText) when given. */
  similarity: Type.Number(),
  bySequence: BySequenceSchema,
  model: Type.Object({ bundleId: Type.String(), version: Type.String() }),
  /** How well the model knows the sentence (a refused one is answered 422 instead). */
  language: TextCheckSchema,
  warning: Nullable(Type.String()),
});

export const SearchQuery = Type.Object({
  q: Type.String({ minLength: 2, maxLength: 500 }),
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  offset: Type.Integer({ minimum: 0, maximum: 100000, default: 0 }),
}, { additionalProperties: false });
export const SearchResponse = Type.Object({
  total: Type.Integer(),
  offset: Type.Integer(),
  limit: Type.Integer(),
  language: TextCheckSchema,
  /** Said above the results (or instead of them, for text the model does not know). */
  warning: Nullable(Type.String()),
  items: Type.Array(
    Type.Object({
      StudyInstanceUID: Type.String(),
      AccessionNumber: Type.Optional(Type.String()),
      score: Type.Number({ description: 'search score: cos(study, text) - cos(study, normal-study sentence)' }),
      similarity: Type.Number({ description: 'cos(study, text)' }),
      priority: PrioritySchema,
      receivedAt: Type.Number(),
    }),
  ),
});

export const TextCheckBody = Type.Object({ text: Type.String({ minLength: 1, maxLength: 500 }) }, { additionalProperties: false });

export const ReportCheckBody = Type.Object({ report: Type.String({ minLength: 1, maxLength: 20000 }) }, { additionalProperties: false });
const Gap = Type.Object({
  queryId: Type.String(), text: Type.String(), priority: PrioritySchema, similarity: Type.Number(),
  probability: Type.Union([Type.Number(), Type.Null()]),
  closestSentence: Type.Union([Type.Integer(), Type.Null()]),
  closestSimilarity: Type.Union([Type.Number(), Type.Null()]),
});
export const ReportCheckResponse = Type.Object({
  StudyInstanceUID: Type.String(),
  sentences: Type.Array(
    Type.Object({
      index: Type.Integer(), text: Type.String(), assertion: lit(['present', 'absent', 'uncertain'] as const),
      about: Type.String({ description: 'the sentence without its assertion cue words: what it is matched on' }),
      matchedQueryId: Nullable(Type.String()), matchSimilarity: Nullable(Type.Number()), matchMargin: Nullable(Type.Number()),
      imageScore: Nullable(Type.Number({ description: 'the sentence scored against the images like a query: a raw score, not a probability' })),
      probability: Nullable(Type.Number({ description: 'imageScore as a probability under the matched query\'s calibration, compared with threshold; null without a calibration' })),
      threshold: Nullable(Type.Number()),
      supported: Nullable(Type.Boolean({ description: 'null: not checked against the images (see notChecked)' })),
      notChecked: Nullable(Type.String({ description: 'why the sentence was not checked against the images; null when it was' })),
    }),
  ),
  notMentioned: Type.Array(Gap),
  contradicted: Type.Array(Gap),
  unsupported: Type.Array(Type.Integer()),
  mentionSimilarity: Type.Number(),
  truncated: Nullable(Type.Object(
    { sentences: Type.Integer(), read: Type.Integer(), skippedFrom: Type.Integer(), skippedTo: Type.Integer() },
    { description: 'a report over 200 sentences: how many it had, how many were read, and the 1-based range of sentences not read (the head and the last 50 are read)' },
  )),
  warnings: Type.Array(Type.String()),
});

export { TriageQuerySchema };
export const QueryIdParams = Type.Object({ id: Type.String({ pattern: '^[a-z0-9_-]{1,64}$', description: 'query id' }) });
/**
 * Request bodies refuse unknown fields: a misspelt "negativetext" must be an error, not silently dropped. A
 * calibration or origin is accepted by the schema only to be refused with a 422 that says why (the service
 * computes both).
 */
const { calibration: _calibration, origin: _origin, ...definition } = TriageQuerySchema.properties;
/**
 * A sensitivity a site can choose: as TRIAGE_<class>_SENSITIVITY (the worker's) and the page's field. 1e-300 was
 * accepted and picked the table's top threshold, which flags almost nothing. Only what clients send is bounded here;
 * a stored query or a bundle's keeps the contract's (0, 1].
 */
export const TargetSensitivity = Type.Number({
  minimum: 0.5, maximum: 1,
  description: 'the sensitivity the query\'s own threshold is chosen for, from 0.5 to 1; absent: the calibration\'s, else 0.95',
});
export const QueryBody = Type.Object(
  { ...definition, targetSensitivity: Type.Optional(TargetSensitivity), calibration: Type.Optional(Type.Unknown({ description: 'refused (422): computed by the service' })), origin: Type.Optional(Type.Unknown({ description: 'refused (422): set by the service' })) },
  { additionalProperties: false },
);
export const QueryBodyNoId = Type.Omit(QueryBody, ['id'], { additionalProperties: false });

const CalibrationAttemptSchema = Type.Object({
  at: Type.String(), ok: Type.Boolean(), detail: Type.String(), studies: Type.Integer(), positives: Type.Integer(), fittedFor: Type.String(), bundleVersion: Type.String(),
});
export const QueryViewSchema = Type.Composite([
  Type.Omit(TriageQuerySchema, ['targetSensitivity']),
  Type.Object({
    calibrationState: CalibrationStateSchema,
    thresholdInUse: Nullable(Type.Number({ description: 'the probability threshold studies are judged with now' })),
    judgedBy: Nullable(lit(['class', 'query'] as const)),
    targetSensitivity: Type.Number({ description: 'the query\'s own target sensitivity: it picks the query\'s own threshold, the one in use when judgedBy is "query"' }),
    judgedAtSensitivity: Nullable(Type.Number({ description: 'the sensitivity the threshold in use was chosen for: the class\'s study-level sensitivity (as GET /api/v1/decision) when judgedBy is "class", else targetSensitivity; null when it cannot flag' })),
    bundleDefault: Type.Boolean(),
    disabled: Type.Boolean({ description: 'a bundle default the site turned off: listed, not scored (thresholdInUse null)' }),
    warning: Nullable(Type.String()),
    lastAttempt: Nullable(CalibrationAttemptSchema),
  }),
]);
export const QueriesResponse = Type.Object({
  version: Type.Integer(),
  bundle: Nullable(Type.Object({ bundleId: Type.String(), version: Type.String() })),
  queries: Type.Array(QueryViewSchema),
  /** Bundle defaults the site turned off. */
  disabled: Type.Array(QueryViewSchema),
  warnings: Type.Array(Type.String()),
  /** Stored entries that no longer validate (skipped by the worker too). */
  problems: Type.Array(Type.String()),
});
export const QuerySaveResponse = Type.Object({
  version: Type.Integer(),
  action: lit(['created', 'replaced', 'restored-default'] as const),
  query: QueryViewSchema,
  language: Type.Object({ text: TextCheckSchema, negativeText: Nullable(TextCheckSchema) }),
  calibration: Type.Object({ state: CalibrationStateSchema, detail: Type.String() }),
});
export const QueryDeleteResponse = Type.Object({ version: Type.Integer(), action: lit(['deleted', 'restored-default', 'disabled'] as const) });
export const QueryRestoreResponse = Type.Object({ version: Type.Integer() });
export const QueryCalibrateResponse = Type.Object({
  version: Nullable(Type.Integer()),
  query: QueryViewSchema,
  calibration: Type.Object({ state: CalibrationStateSchema, detail: Type.String() }),
});

const OperatingPointRow = Type.Object({ threshold: Type.Number(), sensitivity: Type.Number(), falsePositiveRate: Type.Number() });
const ClassDecisionView = Type.Object({
  targetSensitivity: Type.Number({ description: 'the bundle\'s default' }),
  threshold: Type.Number({ description: 'the bundle\'s default threshold' }),
  chosenSensitivity: Nullable(Type.Number({ description: 'the site\'s TRIAGE_<class>_SENSITIVITY, when set' })),
  thresholdInUse: Type.Number(),
  positives: Type.Integer(),
  negatives: Type.Integer(),
  table: Type.Array(Type.Composite([OperatingPointRow, Type.Object({ inUse: Type.Boolean() })])),
});
export const DecisionResponse = Type.Object({
  bundle: Type.Object({ bundleId: Type.String(), version: Type.String() }),
  rule: Type.String(),
  classes: Type.Object({ STAT: Type.Optional(ClassDecisionView), URGENT: Type.Optional(ClassDecisionView) }),
  /** What the workers of this bundle reported they judge with; null until one has started. */
  judging: Nullable(Type.Object({ classThresholds: ClassThresholdsSchema, sensitivity: ClassThresholdsSchema, at: Type.String() })),
  notes: Type.Array(Type.String()),
});

export const MeResponse = Type.Object({ name: Type.String(), role: lit(ROLES) });

// Reports (services/api/inbound): radiologists' final reports of past studies, linked by accession number.
const ReportStatusSchema = Type.Union([Type.Literal('F'), Type.Literal('C'), Type.Literal('P'), Type.Literal('X')], {
  description: 'HL7 OBR-25 result status: F final, C corrected, P preliminary (stored, not used for calibration), '
    + 'X cancelled by the RIS (HL7 only: the report is withdrawn and not used for calibration)',
});
export const AccessionNumberSchema = Type.String({
  minLength: 1, maxLength: 64,
  description: 'the study\'s AccessionNumber as the RIS and the images carry it (spaces at either end are ignored; no control characters)',
});
export const ReportBody = Type.Object(
  {
    AccessionNumber: AccessionNumberSchema,
    text: Type.String({ minLength: 1, maxLength: 60000, description: 'the report text (FINDINGS / IMPRESSION sections as written)' }),
    // An enum rather than a union of literals: a wrong value is then answered with the allowed values in one line.
    status: Type.Optional(Type.Unsafe<'F' | 'C' | 'P'>({ type: 'string', enum: ['F', 'C', 'P'], description: 'F final, C corrected, P preliminary (stored, not used for calibration)' })),
    reportId: Type.Optional(Type.String({
      minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._:-]+$',
      description: 'the sender\'s id for this report version: the same id again is stored once. Without it, the same accession, status and text are',
    })),
  },
  { additionalProperties: false },
);
export const IntakeOutcomeSchema = lit(['matched', 'held', 'duplicate', 'superseded'] as const);
export const ReportCreatedResponse = Type.Object({
  outcome: IntakeOutcomeSchema,
  AccessionNumber: Type.String(),
  /** The studies the report is filed under; empty while it is held for its study. */
  StudyInstanceUIDs: Type.Array(Type.String()),
});
export const StoredReportSchema = Type.Object({
  AccessionNumber: Type.String(),
  StudyInstanceUID: Type.Optional(Type.String()),
  text: Type.String(),
  status: ReportStatusSchema,
  receivedAt: Type.Number(),
  reportTime: Type.Optional(Type.Object({
    from: Type.Number(), to: Type.Number(), field: lit(['OBR-22', 'MSH-7'] as const),
  }, { description: 'the report\'s own time as the span its precision names (ms since 1970; where it was read): it orders two reports of one status' })),
  source: lit(['hl7', 'api'] as const),
  messageControlId: Type.Optional(Type.String()),
});
export const HeldReportsResponse = Type.Object({
  total: Type.Integer(),
  items: Type.Array(Type.Object({
    AccessionNumber: Type.String(), heldAt: Type.Number(), status: ReportStatusSchema, source: lit(['hl7', 'api'] as const),
  })),
});
export const RejectedEntrySchema = Type.Object({
  id: Type.String(),
  kind: lit(['hl7', 'report'] as const),
  reason: Type.String(),
  detail: Type.String(),
  ack: Type.Optional(Type.String()),
  receivedAt: Type.Number(),
  bytes: Type.Integer(),
  truncated: Type.Boolean(),
  replays: Type.Integer(),
});
export const RejectedListQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }),
  offset: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 0 }),
}, { additionalProperties: false });
export const HeldQuery = Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }) }, { additionalProperties: false });
export const RejectedListResponse = Type.Object({ total: Type.Integer(), items: Type.Array(RejectedEntrySchema) });
export const RejectedIdParams = Type.Object({ id: Type.String({ pattern: '^[0-9a-z]{1,12}-[0-9a-f]{12}$', description: 'rejected message id' }) });
export const RejectedMessageResponse = Type.Composite([
  RejectedEntrySchema,
  Type.Object({
    /** kind hl7: the message as received (segments separated by \r), for an admin to correct. */
    message: Type.Optional(Type.String()),
    /** kind report: the held report that expired. */
    report: Type.Optional(StoredReportSchema),
  }),
]);
export const ReplayBody = Type.Object(
  { message: Type.Optional(Type.String({ minLength: 8, maxLength: 250_000, description: 'a corrected HL7 message to use instead of the kept one' })) },
  { additionalProperties: false },
);
export const ReplayResponse = Type.Object({
  ack: lit(['AA', 'AE', 'AR'] as const),
  detail: Type.String(),
  reports: Type.Array(ReportCreatedResponse),
});
