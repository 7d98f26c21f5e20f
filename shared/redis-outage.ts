// Redis connection errors, said once per outage. Every ioredis connection emits an error for each reconnect attempt,
// and BullMQ's queues and workers emit their connections' errors again: with Redis down, one worker process logged
// the same ECONNREFUSED four times every reconnect (its own connection, its study queue, its dead-letter queue and
// its BullMQ worker), each with a stack, 40-50 error lines for a 10-second Redis restart. Here the first connection
// error of an outage is one warning and the rest are dropped until a watched connection is ready again, which is
// one info line. Any other error is logged each time, as before.
import type { Redis } from 'ioredis';
import { redisConnectionGone } from './health';
import type { Logger } from './logger';

/** The errors of a connection that cannot reach Redis: the socket's, or ioredis's while it has none. */
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);

export function isRedisConnectionError(err: unknown): boolean {
  // Duck-typed: an error made in another realm (a vm context, jest's) is no instanceof this realm's Error.
  if (typeof err !== 'object' || err === null || typeof (err as Error).message !== 'string') return false;
  const { code } = err as NodeJS.ErrnoException;
  return (code !== undefined && CONNECTION_CODES.has(code)) || redisConnectionGone(err as Error);
}

export interface RedisOutageLog {
  /** An 'error' event of `source` (a connection, a queue, a worker): connection errors once per outage. */
  error(source: string, err: Error): void;
  /** A connection whose 'ready' ends the outage. */
  watch(redis: Redis): void;
}

/** `context` goes with the outage's warning (say, which Redis: redactRedisUrl, never the password). */
export function redisOutageLog(log: Logger, context: Record<string, unknown> = {}): RedisOutageLog {
  let down = false;
  return {
    error(source, err) {
      if (!isRedisConnectionError(err)) {
        log.error({ err, source }, `${source} error`);
        return;
      }
      if (down) return;
      down = true;
      log.warn({ err: err.message, source, ...context }, 'Redis not reachable: the connections retry by themselves and work waits; /readyz says not ready meanwhile');
    },
    watch(redis) {
      redis.on('ready', () => {
        if (down) log.info('Redis connection back');
        down = false;
      });
    },
  };
}
