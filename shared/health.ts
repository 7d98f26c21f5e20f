// Pieces of the services' liveness and readiness answers. Liveness is "this process's event loop answers" and
// never waits on anything else; readiness checks dependencies, each within a deadline, so a frozen Redis makes a
// probe say "not ready" in about a second instead of hanging it.
import type { Redis } from 'ioredis';

export interface Check {
  ok: boolean;
  detail: string;
}

/** Resolves or rejects with `p`, or rejects after `ms` saying what did not answer. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * PING within `ms`. Use a connection without an offline queue, so a lost connection fails at once. A connection
 * whose own commandTimeout is shorter (the API's API_REDIS_TIMEOUT_MS) fails first: said the same way. A lost
 * connection is said as the API's 503s say it ("Redis is not reachable"), not in ioredis's words.
 */
export function redisCheck(redis: Pick<Redis, 'ping'> & { options?: { commandTimeout?: number } }, ms = 1000): Promise<Check> {
  return withTimeout(redis.ping(), ms, 'Redis')
    .then((r) => ({ ok: r === 'PONG', detail: r === 'PONG' ? 'PONG' : `unexpected reply ${r}` }))
    .catch((err: Error) => ({ ok: false, detail: redisUnavailable(err, redis.options?.commandTimeout ?? ms) ?? err.message }));
}

/** ioredis's rejection of a command that outlived the connection's commandTimeout. */
export const REDIS_COMMAND_TIMED_OUT = 'Command timed out';

/**
 * Why Redis could not serve a command, for an answer to a client: the command outlived the connection's
 * commandTimeout (`timeoutMs`), there is no connection to send it on (a producer connection has no offline
 * queue), or Redis is up but refuses the command for a condition that passes, like an outage (redisRefusal).
 * Undefined for any other error (any other Redis reply error is a bug, not an outage).
 */
export function redisUnavailable(err: Error, timeoutMs: number | undefined): string | undefined {
  if (err.message === REDIS_COMMAND_TIMED_OUT) return `Redis did not answer within ${timeoutMs ?? '?'} ms`;
  const refusal = redisRefusal(err);
  if (refusal) return refusal;
  return redisConnectionGone(err) ? 'Redis is not reachable' : undefined;
}

/**
 * ioredis's own word that a command had no connection to go out on: it gave up reconnecting for it, the connection
 * has no offline queue, or it was closed. (shared/redis-outage.ts adds the socket's own errors for its logs.)
 */
export function redisConnectionGone(err: { name?: string; message: string }): boolean {
  return err.name === 'MaxRetriesPerRequestError' || err.message.startsWith("Stream isn't writeable") || err.message === 'Connection is closed.';
}

/**
 * The replies of a Redis that is up but refuses a command for a while, each as said to a client or in a log: at
 * maxmemory with the noeviction policy (OOM), unable to write its own disk (MISCONF: a failed save, or an AOF on a
 * full disk), a read-only replica (READONLY: a failover in progress), still loading its data set after a start
 * (LOADING).
 */
const REFUSALS: [RegExp, string][] = [
  [/^OOM /, 'Redis is out of memory (maxmemory) and refuses writes'],
  [/^MISCONF /, 'Redis cannot write to its disk (MISCONF) and refuses writes'],
  [/^READONLY /, 'Redis is a read-only replica and refuses writes'],
  [/^LOADING /, 'Redis is still loading its data set'],
];

/** Why a Redis that is up refuses commands for now (REFUSALS), or undefined for any other error. */
export function redisRefusal(err: unknown): string | undefined {
  // Duck-typed: an error made in another realm (a vm context, jest's) is no instanceof this realm's Error.
  const message = typeof err === 'object' && err !== null ? (err as Error).message : undefined;
  return typeof message === 'string' ? REFUSALS.find(([reply]) => reply.test(message))?.[1] : undefined;
}
