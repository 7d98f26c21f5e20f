// The schema of a stored study result (shared/results.ts StudyResult), and the one way to read one: the API
// serves and checks results with it, the worker reads the result it finalises with it, the tools select by it. A
// result that is not JSON or not this shape (a write cut off, a hand edit, another writer's format) is UNREADABLE,
// never an exception whose message would quote the stored text.
import { Type, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { PRIORITIES, SEQUENCES, stringEnum } from './model-manifest';
import type { StudyResult } from './results';

export const PrioritySchema = stringEnum(PRIORITIES);
export const SequenceSchema = stringEnum(SEQUENCES);

export const BySequenceSchema = Type.Object(Object.fromEntries(SEQUENCES.map((s) => [s, Type.Optional(Type.Number())])) as Record<string, TSchema>);

export const CalibrationStateSchema = stringEnum(['calibrated', 'uncalibrated', 'stale-text', 'stale-bundle'] as const);
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
  radiusRowsPx: Type.Optional(Type.Number({ description: 'the radius in pixel rows, where rows and columns are spaced differently' })),
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
  similarity: Type.Number({ description: 'raw image-text score (cosine, minus the contrast sentence\'s)' }),
  probability: Type.Union([Type.Number(), Type.Null()], { description: 'calibrated probability P; null when the query has no calibration that applies' }),
  threshold: Type.Union([Type.Number(), Type.Null()], { description: 'the probability threshold it was judged with; null: it could not be flagged' }),
  flagged: Type.Boolean({ description: 'flagged: P >= threshold (the one rule)' }),
  triggered: Type.Boolean({ description: 'flagged, and of the study\'s priority class: one reason the study sits where it does' }),
  calibration: CalibrationStateSchema,
  bySequence: BySequenceSchema,
  waitingFor: Type.Optional(Type.Array(SequenceSchema, { description: 'sequences its query reads on that the study lacks (STAT/URGENT queries)' })),
  fallback: Type.Optional(Type.Boolean({ description: 'scored on other sequences than its query reads on (the study has none of them)' })),
  held: Type.Optional(Type.Boolean({ description: 'a fallback finding of a provisional result: it cannot set the priority until the result is final' })),
  statement: Type.Optional(Type.String({ description: 'the decision in words, e.g. "flagged: P 0.930 >= threshold 0.500; sets the STAT priority"' })),
  location: Type.Optional(FindingLocationSchema),
});

export const ClassThresholdsSchema = Type.Object({ STAT: Type.Optional(Type.Number()), URGENT: Type.Optional(Type.Number()) });

export const StudyResultSchema = Type.Object({
  StudyInstanceUID: Type.String(),
  AccessionNumber: Type.Optional(Type.String()),
  priority: PrioritySchema,
  priorityProbability: Type.Union([Type.Number(), Type.Null()], { description: 'highest P among the findings that set the priority: the order within a priority' }),
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
      reason: Type.Optional(Type.String({ description: 'why the series was not used; refused-at-intake: every instance of it was refused at C-STORE (sequence "unknown")' })),
      dropped: Type.Optional(
        Type.Array(
          Type.Object({
            images: Type.Integer(),
            reason: Type.String(),
            refusal: Type.Optional(Type.String({ description: 'refused-at-intake only: the listener\'s refusal code (invalid-image, dataset-mismatch, malformed-dataset, sop-class-not-on-context)' })),
            status: Type.Optional(Type.String({ description: 'refused-at-intake only: the C-STORE status the listener answered, four hex digits (A900, C000)' })),
          }),
          {
            description: 'images left out of the volume, by why (unreadable, no-geometry, other-stack, duplicate-position, position-outlier, missing-slices and unjoined-part lower the confidence; refused-at-intake: refused at C-STORE, never stored, lowers it on a used series)',
          },
        ),
      ),
      joinedWith: Type.Optional(
        Type.Array(Type.String(), { description: 'the other series (SeriesInstanceUIDs) of one acquisition split across series whose slices were joined with this one into one volume' }),
      ),
      contrastEnhanced: Type.Optional(Type.Literal(true, { description: 'post-contrast series (used only when no pre-contrast one of its sequence exists)' })),
      lossyCompressed: Type.Optional(
        Type.Literal(true, {
          description:
            'lossy history: some image of the series (of its volume, when used) was lossy-compressed at some time (Lossy Image Compression (0028,2110) "01", or a lossy transfer syntax); marked, not scored differently (confidence and scores unchanged; the models are trained on lossless pixel data)',
        }),
      ),
    }),
  ),
  confidence: Type.Number(),
  provisional: Type.Optional(Type.Object({ waitingFor: Type.Array(SequenceSchema), until: Type.Number() }, { description: 'present while the result may still change (partial study)' })),
  incomplete: Type.Optional(Type.Object({ missing: Type.Array(SequenceSchema), waitedUntil: Type.Number() }, { description: 'a final result judged after the wait for missing sequences expired' })),
  model: Type.Object({ bundleId: Type.String(), version: Type.String() }),
  judgedWith: Type.Object({ querySetVersion: Type.String(), classThresholds: ClassThresholdsSchema }, { description: 'the query set and class thresholds the study was judged with' }),
  resultVersion: Type.Optional(Type.Integer({ description: '1 for the first result of a study, +1 for each later one (a correction)' })),
  traceId: Type.Optional(Type.String({ description: 'the trace id of the scoring job (the DICOM association that completed the study, or the re-score), carried by the log lines that scored and delivered it; absent in results written before it was recorded' })),
  provider: Type.String(),
  timingsMs: Type.Object({
    decode: Type.Number(), preprocess: Type.Number(), inference: Type.Number(), scoring: Type.Number(), localise: Type.Optional(Type.Number()), total: Type.Number(),
  }),
  receivedAt: Type.Number(),
  scoredAt: Type.Number(),
});

/** What parseResult gives for a stored result that cannot be read as a StudyResult. */
export const UNREADABLE = Symbol('unreadable result');

/**
 * The schema's check, compiled once: every worklist page, search and calibration runs it on each result it reads,
 * and Value.Check would walk the schema afresh each time (several times the JSON.parse it follows).
 */
const isStudyResult = TypeCompiler.Compile(StudyResultSchema);

/** The stored JSON as a StudyResult, or UNREADABLE; JSON.parse's message is dropped as it quotes the text. */
export function parseResult(raw: string): StudyResult | typeof UNREADABLE {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return UNREADABLE;
  }
  return isStudyResult.Check(parsed) ? (parsed as StudyResult) : UNREADABLE;
}
