// Typed errors of the imaging module. A series that cannot become a volume is a permanent condition of the data
// (never retried) and is reported with a machine-readable reason; nothing in this module throws untyped errors
// at its callers for bad input.

/** Why a series (or a study) gave no volume. Stable strings: they appear in results, metrics and docs/imaging.md. */
export const UNUSABLE_REASONS = [
  'not-mr', // Modality is not MR
  'not-image', // SR, presentation state, spectroscopy, raw data: no pixel data to use
  'not-head', // BodyPartExamined or description names another body part
  'localiser', // scout/survey images: never a diagnostic volume
  'unsupported-sequence', // classified, but no image encoder takes this sequence
  'colour', // SamplesPerPixel != 1 or PhotometricInterpretation not MONOCHROME1/2 (screenshots, fused or colour maps, PALETTE COLOR)
  'missing-geometry', // no usable ImagePositionPatient / ImageOrientationPatient / PixelSpacing
  'inconsistent-geometry', // no single stack with one matrix size and orientation, or zero slice spacing
  'too-few-slices',
  'insufficient-coverage', // the stack covers too little along its normal to be a brain volume
  'unsupported-transfer-syntax',
  'corrupt', // the file or a frame could not be parsed or decoded
  'too-large', // more slices, voxels or header bytes than the limits in study.ts / dicom-header.ts allow
  'empty-volume', // no foreground after resampling (all background, or constant)
  'not-selected', // usable, but another series of the same sequence was preferred
] as const;
export type UnusableReason = (typeof UNUSABLE_REASONS)[number];

/** A series that cannot become a canonical volume. Permanent: the same input always fails the same way. */
export class UnusableSeriesError extends Error {
  override name = 'UnusableSeriesError';
  readonly retryable = false;
  constructor(
    readonly reason: UnusableReason,
    /** What went wrong, without the reason in front (the message is "reason: detail"). */
    readonly detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

/** A file that is not a readable DICOM Part 10 instance (not DICOM at all, corrupt, or too large to read). Permanent. */
export class DicomParseError extends Error {
  override name = 'DicomParseError';
  readonly retryable = false;
  constructor(
    readonly file: string,
    readonly detail: string,
    readonly reason: 'corrupt' | 'too-large' | 'not-dicom' = 'corrupt',
  ) {
    super(`cannot parse ${file}: ${detail}`);
  }
}

/** The preprocessing spec is invalid (e.g. a manifest with a malformed preprocessing block). Permanent. */
export class PreprocessingSpecError extends Error {
  override name = 'PreprocessingSpecError';
  readonly retryable = false;
}
