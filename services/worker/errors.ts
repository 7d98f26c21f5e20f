// Typed worker failures: permanent ones (the study itself cannot be scored: corrupt data, nothing scorable) end the
// job at once with UnrecoverableError and a dead-letter copy; everything else is retried with backoff.
// Messages carry UIDs and reasons only, never patient identity.

/** What a permanently failed study's status becomes (shared/studies.ts StudyStatus). */
export type PermanentOutcome = 'failed' | 'unsupported';

export class PermanentStudyError extends Error {
  override name = 'PermanentStudyError';
  constructor(
    message: string,
    /** Short machine-readable reason, e.g. "corrupt-data", "no-scorable-sequence", "study-missing". */
    public readonly reason: string,
    public readonly outcome: PermanentOutcome = 'failed',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Transient by declaration (Redis hiccup, model session busy, file not yet visible): retried with backoff. */
export class RetryableStudyError extends Error {
  override name = 'RetryableStudyError';
}

/** shared/imaging UnusableReason values that mean "not something this service scores" rather than "broken". */
const UNSUPPORTED_REASONS = new Set([
  'not-mr', 'not-image', 'not-head', 'localiser', 'unsupported-sequence', 'colour', 'unsupported-transfer-syntax',
  'no-scorable-sequence',
]);

/** Status for a permanent failure reason: out of scope ('unsupported') or broken data ('failed'). */
export function outcomeFor(reason: string): PermanentOutcome {
  return UNSUPPORTED_REASONS.has(reason) ? 'unsupported' : 'failed';
}

/**
 * Maps any thrown value to a PermanentStudyError, or null when it should be retried. shared/imaging and
 * shared/models mark their errors with `retryable = false` (and imaging ones with a `reason`); errors are matched
 * by those fields, not class identity, so errors rebuilt after crossing a worker thread still classify.
 */
export function asPermanent(err: unknown): PermanentStudyError | null {
  if (err instanceof PermanentStudyError) return err;
  if (err instanceof RetryableStudyError) return null;
  if (typeof err !== 'object' || err === null) return null;
  const e = err as { name?: unknown; message?: unknown; permanent?: unknown; retryable?: unknown; reason?: unknown; outcome?: unknown };
  if (e.name === 'PermanentStudyError' && typeof e.reason === 'string') {
    return new PermanentStudyError(String(e.message), e.reason, e.outcome === 'unsupported' ? 'unsupported' : 'failed', { cause: err });
  }
  if (e.retryable !== false && e.permanent !== true) return null;
  const message = typeof e.message === 'string' ? e.message : String(err);
  const reason = typeof e.reason === 'string' ? e.reason : e.name === 'DicomParseError' ? 'corrupt' : 'unusable-data';
  return new PermanentStudyError(message, reason, outcomeFor(reason), { cause: err });
}

// Errors cross the worker-thread boundary as plain data (structured clone drops custom fields and class identity).
export interface SerializedError {
  name: string;
  message: string;
  reason?: string;
  outcome?: string;
  retryable?: boolean;
}

export function serializeError(err: unknown): SerializedError {
  if (typeof err !== 'object' || err === null) return { name: 'Error', message: String(err) };
  const e = err as Partial<SerializedError> & { message?: string };
  return {
    name: typeof e.name === 'string' ? e.name : 'Error',
    message: typeof e.message === 'string' ? e.message : String(err),
    ...(typeof e.reason === 'string' ? { reason: e.reason } : {}),
    ...(typeof e.outcome === 'string' ? { outcome: e.outcome } : {}),
    ...(typeof e.retryable === 'boolean' ? { retryable: e.retryable } : {}),
  };
}

/** Rebuilds a thread's error: fields asPermanent() reads are kept (name, reason, retryable). */
export function rebuildError(s: SerializedError): Error {
  if (s.name === 'PermanentStudyError' && s.reason) {
    return new PermanentStudyError(s.message, s.reason, s.outcome === 'unsupported' ? 'unsupported' : 'failed');
  }
  const err = new Error(s.message) as Error & { reason?: string; retryable?: boolean };
  err.name = s.name;
  if (s.reason !== undefined) err.reason = s.reason;
  if (s.retryable !== undefined) err.retryable = s.retryable;
  return err;
}
