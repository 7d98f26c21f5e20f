// Typed failures of a C-STORE and the DIMSE status each one answers with (PS3.4 B.2.3). Retryable failures
// (disk low, Redis away) answer A7xx "Refused: Out of Resources" so the sending PACS keeps the instance and tries
// again; permanent ones (a data set we cannot read) answer A9xx/Cxxx so it stops retrying a hopeless instance.
import type { RefusalCode } from '../../shared/refusals';

/** C-STORE response statuses this listener sends. */
export const StoreStatus = {
  Success: 0x0000,
  /** Refused: Out of Resources (disk below the watermark, Redis unreachable, I/O error). */
  OutOfResources: 0xa700,
  /**
   * Error: Data Set does not match SOP Class (command and data set disagree on SOP Class/Instance UID; a required
   * image attribute is missing or disagrees with the pixel data received).
   */
  DataSetDoesNotMatchSopClass: 0xa900,
  /** Error: Cannot understand (data set structure unreadable, required UID missing or invalid). */
  CannotUnderstand: 0xc000,
  /** Refused: SOP Class not supported (PS3.7 C.5.3: a C-STORE whose class is not its presentation context's). */
  SopClassNotSupported: 0x0122,
} as const;

export abstract class StoreError extends Error {
  abstract readonly status: number;
  abstract readonly retryable: boolean;
}

/** Free disk below DISK_MIN_FREE_MB, or the disk filled up while writing. */
export class OutOfDiskError extends StoreError {
  readonly status = StoreStatus.OutOfResources;
  readonly retryable = true;
  override name = 'OutOfDiskError';
}

/** The instance's temp file was removed before its rename and no copy was left in memory; the sender retries. */
export class TempFileLostError extends StoreError {
  readonly status = StoreStatus.OutOfResources;
  readonly retryable = true;
  override name = 'TempFileLostError';
}

/** Retention is deleting this study's stored instances right now: the sender retries once it has finished. */
export class StudyPurgingError extends StoreError {
  readonly status = StoreStatus.OutOfResources;
  readonly retryable = true;
  override name = 'StudyPurgingError';
}

/** Redis (arrival record or study queue) did not answer; nothing was acknowledged. */
export class BackendUnavailableError extends StoreError {
  readonly status = StoreStatus.OutOfResources;
  readonly retryable = true;
  override name = 'BackendUnavailableError';
}

/** The received bytes are not a data set we can read, or lack the UIDs we file it under. */
export class MalformedDatasetError extends StoreError {
  readonly status = StoreStatus.CannotUnderstand;
  readonly retryable = false;
  override name = 'MalformedDatasetError';
}

/**
 * The data set is readable but is not a valid instance of its SOP class: an Image Pixel attribute is missing or
 * out of range, or the pixel data received does not match what Rows, Columns, frames and bits describe.
 */
export class InvalidImageError extends StoreError {
  readonly status = StoreStatus.DataSetDoesNotMatchSopClass;
  readonly retryable = false;
  override name = 'InvalidImageError';
}

/** The data set's SOP Class/Instance UID differ from the C-STORE command's affected ones. */
export class DatasetMismatchError extends StoreError {
  readonly status = StoreStatus.DataSetDoesNotMatchSopClass;
  readonly retryable = false;
  override name = 'DatasetMismatchError';
}

/** The C-STORE's Affected SOP Class UID is not the abstract syntax of the presentation context it came on. */
export class SopClassNotOnContextError extends StoreError {
  readonly status = StoreStatus.SopClassNotSupported;
  readonly retryable = false;
  override name = 'SopClassNotOnContextError';
}

/** Maps any failure to the status the C-STORE response carries; unknown errors are treated as retryable. */
export function statusForError(err: unknown): number {
  if (err instanceof StoreError) return err.status;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return StoreStatus.OutOfResources;
  return StoreStatus.OutOfResources;
}

/** A short, identifier-free label for logs and metrics. */
export function errorLabel(err: unknown): string {
  if (err instanceof StoreError) return err.name;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  // An errno code is a bounded set of labels; anything else (a bug) is one label, not its class name.
  return code ?? 'InternalError';
}

/**
 * The code under which a refusal is recorded for the study's result (shared/refusals.ts): only the permanent
 * failures that say something about the instance itself. Retryable ones (disk, Redis, retention) are not: the
 * sender keeps the instance and sends it again.
 */
export function refusalCode(err: unknown): RefusalCode | undefined {
  if (err instanceof InvalidImageError) return 'invalid-image';
  if (err instanceof DatasetMismatchError) return 'dataset-mismatch';
  if (err instanceof MalformedDatasetError) return 'malformed-dataset';
  if (err instanceof SopClassNotOnContextError) return 'sop-class-not-on-context';
  return undefined;
}
