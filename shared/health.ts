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

/** PING within `ms`. Use a connection without an offline queue, so a lost connection fails at once. */
export function redisCheck(redis: Pick<Redis, 'ping'>, ms = 1000): Promise<Check> {
  return withTimeout(redis.ping(), ms, 'Redis')
    .then((r) => ({ ok: r === 'PONG', detail: r === 'PONG' ? 'PONG' : `unexpected reply ${r}` }))
    .catch((err: Error) => ({ ok: false, detail: err.message }));
}
