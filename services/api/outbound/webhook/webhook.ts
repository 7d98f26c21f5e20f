// The signed webhook for paging and messaging systems: a small JSON body without patient identifiers, signed with
// HMAC-SHA256 over "<timestamp>.<body>" (the timestamp lets receivers refuse replays), posted with a timeout.
// 2xx delivered; 5xx, 408, 429, timeouts and network errors retried (no sooner than a Retry-After); any other
// status, and a receiver certificate that fails verification, is permanent.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { StudyResult } from '../../../../shared/results';
import { flagStatement } from '../../../../shared/models/decision';
import type { WebhookTarget } from '../config';
import { PermanentDeliveryError, RetryableDeliveryError } from '../errors';

export const SIGNATURE_HEADER = 'X-Neurotriage-Signature';
export const TIMESTAMP_HEADER = 'X-Neurotriage-Timestamp';
export const DELIVERY_HEADER = 'X-Neurotriage-Delivery';

export interface WebhookPayload {
  event: 'study.scored';
  /** The idempotency key: receivers drop a delivery id they have already handled. */
  deliveryId: string;
  StudyInstanceUID: string;
  AccessionNumber: string | null;
  priority: StudyResult['priority'];
  /** Highest probability among the findings that set the priority (the order within a priority). */
  priorityProbability: number | null;
  abnormalProbability: number | null;
  /** The rule every flag follows. */
  decision: 'flagged: P >= threshold';
  flaggedFindings: Array<{
    queryId: string; text: string; priority: StudyResult['priority']; similarity: number; probability: number | null;
    threshold: number | null; triggered: boolean; held: boolean;
    /** The decision in words, e.g. "flagged: P 0.930 >= threshold 0.500; sets the STAT priority". */
    statement: string;
  }>;
  /** 1 for the study's first result; a higher version corrects the one before (same StudyInstanceUID). */
  resultVersion: number;
  /** The result version this one replaces: the latest earlier one the receiver was sent (webhook/sent.ts), or null. */
  corrects: number | null;
  /** Present while the result may still change (the study lacks sequences findings read on). */
  provisional: { waitingFor: string[]; until: string } | null;
  model: StudyResult['model'];
  judgedWith: StudyResult['judgedWith'] | null;
  scoredAt: string;
}

/** `corrects`: the earlier version the receiver was sent that this one replaces, or null (none was sent). */
export function buildWebhookPayload(result: StudyResult, deliveryId: string, corrects: number | null = null): WebhookPayload {
  const version = result.resultVersion ?? 1;
  return {
    event: 'study.scored',
    deliveryId,
    StudyInstanceUID: result.StudyInstanceUID,
    AccessionNumber: result.AccessionNumber ?? null,
    priority: result.priority,
    priorityProbability: result.priorityProbability ?? null,
    abnormalProbability: result.abnormalProbability,
    decision: 'flagged: P >= threshold',
    flaggedFindings: result.findings
      .filter((f) => f.flagged)
      .map((f) => ({
        queryId: f.queryId, text: f.text, priority: f.priority, similarity: f.similarity, probability: f.probability,
        threshold: f.threshold ?? null, triggered: f.triggered === true, held: f.held === true, statement: flagStatement(f),
      })),
    resultVersion: version,
    corrects,
    provisional: result.provisional ? { waitingFor: result.provisional.waitingFor, until: new Date(result.provisional.until).toISOString() } : null,
    model: result.model,
    judgedWith: result.judgedWith ?? null,
    scoredAt: new Date(result.scoredAt).toISOString(),
  };
}

/** "sha256=<hex>" of HMAC-SHA256(secret, timestamp + "." + body). */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** For receivers (and tests): constant-time check plus a freshness window against replays. */
export function verifyWebhook(
  secret: string,
  headers: { signature?: string; timestamp?: string },
  body: string,
  opts: { nowSeconds?: number; toleranceSeconds?: number } = {},
): boolean {
  const { signature, timestamp } = headers;
  if (!signature || !timestamp || !/^\d+$/.test(timestamp)) return false;
  const now = opts.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number(timestamp)) > (opts.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(signWebhook(secret, timestamp, body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export interface WebhookDeps {
  fetch?: typeof fetch;
  now?: () => number;
}

/** Bytes of a receiver's answer read (and dropped) so the connection can be reused; past them it is closed. */
const DRAIN_LIMIT_BYTES = 64 * 1024;

/**
 * Reads and drops the answer's body: its content is the receiver's business, not our logs'. A receiver answering with
 * a large or endless body had all of it held in memory until the timeout; past DRAIN_LIMIT_BYTES the body is cancelled.
 */
async function discardBody(response: Response): Promise<void> {
  const reader = response.body?.getReader();
  if (!reader) return;
  let read = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      read += value.byteLength;
      if (read > DRAIN_LIMIT_BYTES) {
        await reader.cancel();
        return;
      }
    }
  } catch {
    // The timeout or the receiver ended the body: its status is what counts.
  }
}

/** A Retry-After longer than this is taken as this: a page an hour late is better than one never retried. */
export const RETRY_AFTER_MAX_MS = 3_600_000;

/** Retry-After as delay-seconds or an HTTP-date (RFC 9110 10.2.3), in ms from now; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  const ms = /^\d+$/.test(text) ? Number(text) * 1000 : Date.parse(text) - now;
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), RETRY_AFTER_MAX_MS) : undefined;
}

/** Errors of a connection the other side closed or reset under a request (undici's own code, or the socket's). */
const CONNECTION_DROPPED = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

/**
 * Node's (OpenSSL's) certificate verification failures: the receiver's certificate is self-signed, from a CA the API
 * does not trust, expired, for another host or revoked. A configuration error on one side or the other, which no
 * retry within minutes heals; a reset or timeout during the handshake is not among them and stays retryable.
 */
const CERTIFICATE_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD', 'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED', 'INVALID_CA', 'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The reason code (metrics, dead letter) of a receiver certificate that failed verification. */
export const TLS_CERTIFICATE = 'tls-certificate';

function errorCode(err: unknown): string {
  return ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code ?? 'error';
}

export async function postWebhook(target: WebhookTarget, payload: WebhookPayload, deps: WebhookDeps = {}): Promise<number> {
  const body = JSON.stringify(payload);
  const now = deps.now ?? Date.now;
  const timestamp = String(Math.floor(now() / 1000));
  const send = () =>
    (deps.fetch ?? fetch)(target.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        [SIGNATURE_HEADER]: signWebhook(target.secret, timestamp, body),
        [TIMESTAMP_HEADER]: timestamp,
        [DELIVERY_HEADER]: payload.deliveryId,
        ...(target.authorization ? { authorization: target.authorization } : {}),
      },
      body,
      // A signed body is for this URL only; a redirect is a configuration error, not something to follow.
      redirect: 'manual',
      signal: AbortSignal.timeout(target.timeoutMs),
    });
  let response: Response;
  try {
    try {
      response = await send();
    } catch (err) {
      // A kept-alive connection the receiver closed while idle fails the request sent on it at once: sent again
      // at once on a new one (the delivery id makes a repeat harmless), not after a backoff of seconds on a page.
      if (!CONNECTION_DROPPED.has(errorCode(err))) throw err;
      response = await send();
    }
  } catch (err) {
    const name = (err as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      throw new RetryableDeliveryError(`webhook did not answer within ${target.timeoutMs} ms`, 'timeout', { cause: err });
    }
    const code = errorCode(err);
    if (CERTIFICATE_ERRORS.has(code)) {
      throw new PermanentDeliveryError(
        `webhook receiver's TLS certificate failed verification (${code}): a configuration error, not retried; `
          + 'fix the receiver\'s certificate, or give the API its CA in NODE_EXTRA_CA_CERTS',
        TLS_CERTIFICATE,
        { cause: err },
      );
    }
    throw new RetryableDeliveryError(`webhook request failed (${code})`, 'network', { cause: err });
  }
  await discardBody(response);
  const status = response.status;
  if (status >= 200 && status < 300) return status;
  if (status >= 500 || status === 408 || status === 429) {
    const retryAfter = retryAfterMs(response.headers.get('retry-after'), now());
    throw new RetryableDeliveryError(`webhook answered HTTP ${status}`, `http-${status}`, retryAfter === undefined ? {} : { retryAfterMs: retryAfter });
  }
  throw new PermanentDeliveryError(`webhook answered HTTP ${status}`, `http-${status}`);
}
