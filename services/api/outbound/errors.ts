// Typed delivery failures. Retryable ones (peer down, timeout, AE, 5xx) are retried by BullMQ with backoff;
// permanent ones (AR, 4xx, a result that cannot be expressed) end the job at once with a dead-letter copy.
// Messages carry UIDs, codes and counts only: never a message body, a patient identifier or peer free text.

export type Adapter = 'hl7' | 'sr' | 'webhook';

export class RetryableDeliveryError extends Error {
  override name = 'RetryableDeliveryError';
  constructor(
    message: string,
    /** Short machine-readable reason for metrics and the dead letter, e.g. "ack-timeout", "http-503". */
    public readonly reason: string,
    options?: { cause?: unknown; retryAfterMs?: number },
  ) {
    super(message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }

  /** The peer said when to come back (HTTP Retry-After): the next attempt waits at least this long. */
  readonly retryAfterMs: number | undefined;
}

export class PermanentDeliveryError extends Error {
  override name = 'PermanentDeliveryError';
  constructor(
    message: string,
    public readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Reason code (dead letter, metrics) of a delivery whose stored result is not JSON or not a StudyResult. */
export const RESULT_UNREADABLE = 'result-unreadable';

/** Not a failure: this result is not for this adapter after all (found out only when the job runs). */
export class SkipDelivery extends Error {
  override name = 'SkipDelivery';
  constructor(public readonly reason: string) {
    super(`not sent: ${reason}`);
  }
}

/** Anything not declared permanent is retried: a network stack error is more often transient than not. */
export function isPermanent(err: unknown): err is PermanentDeliveryError {
  return err instanceof PermanentDeliveryError;
}

/** The reason label for metrics; unknown errors are "error" so label cardinality stays bounded. */
export function reasonOf(err: unknown): string {
  if (err instanceof PermanentDeliveryError || err instanceof RetryableDeliveryError) return err.reason;
  return 'error';
}

/**
 * The text recorded for a failure (logs, dead letter, BullMQ's failedReason): ours verbatim, a library's reduced to
 * its name and code, because third-party messages can quote data (a DICOM value, a peer's reply).
 */
export function safeMessage(err: unknown): string {
  if (err instanceof PermanentDeliveryError || err instanceof RetryableDeliveryError) return err.message;
  const e = err as { name?: unknown; code?: unknown } | null;
  const name = typeof e?.name === 'string' ? e.name : 'Error';
  return typeof e?.code === 'string' ? `unexpected ${name} (${e.code})` : `unexpected ${name}`;
}

/** Untyped errors become retryable ones carrying only the safe text (what BullMQ then stores). */
export function asDeliveryError(err: unknown): RetryableDeliveryError | PermanentDeliveryError {
  if (err instanceof PermanentDeliveryError || err instanceof RetryableDeliveryError) return err;
  return new RetryableDeliveryError(safeMessage(err), 'error', { cause: err });
}
