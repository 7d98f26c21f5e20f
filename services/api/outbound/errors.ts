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
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
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

/** Anything not declared permanent is retried: a network stack error is more often transient than not. */
export function isPermanent(err: unknown): err is PermanentDeliveryError {
  return err instanceof PermanentDeliveryError;
}

/** The reason label for metrics; unknown errors are "error" so label cardinality stays bounded. */
export function reasonOf(err: unknown): string {
  if (err instanceof PermanentDeliveryError || err instanceof RetryableDeliveryError) return err.reason;
  return 'error';
}
