// Redis connections. BullMQ workers need maxRetriesPerRequest: null (blocking commands must not be retried
// away); producers fail fast instead so a C-STORE is not acknowledged while Redis is unreachable.
import { Redis, type RedisOptions } from 'ioredis';

export type RedisRole = 'worker' | 'producer';

export function redisOptions(role: RedisRole): RedisOptions {
  return role === 'worker'
    ? { maxRetriesPerRequest: null, enableReadyCheck: true }
    : { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 5000 };
}

/**
 * Accepts redis://, rediss:// and unix:///path/to/redis.sock (what the test harness and a private Redis use).
 * `overrides` adds options to the role's (the listener bounds each command with commandTimeout, for instance).
 */
export function connectRedis(url: string, role: RedisRole, overrides: RedisOptions = {}): Redis {
  const options = { ...redisOptions(role), ...overrides };
  if (url.startsWith('unix://')) return new Redis({ ...options, path: url.slice('unix://'.length) });
  return new Redis(url, options);
}

/** A Redis URL fit for logs and error messages: the password (and user) are dropped. */
export function redactRedisUrl(url: string): string {
  if (url.startsWith('unix://')) return url;
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(unparseable REDIS_URL)';
  }
}

/**
 * A subscriber on `channels` (a duplicate connection: a subscribed one can run nothing else), calling `onMessage`
 * for each message. It never waits for Redis: SUBSCRIBE waits in the offline queue until Redis answers and ioredis
 * subscribes again after every reconnect, so a service starts and stays up through a Redis outage. `onError` gets
 * connection errors (ioredis reconnects) and a failed SUBSCRIBE.
 */
export function subscribe(redis: Redis, channels: string[], onMessage: (channel: string, message: string) => void, onError: (err: Error) => void): Redis {
  // No commandTimeout either (the API bounds its own commands): a subscribed connection only waits for messages.
  const sub = redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, lazyConnect: true, commandTimeout: undefined });
  sub.on('error', onError);
  sub.on('message', onMessage);
  sub.subscribe(...channels).catch(onError);
  return sub;
}
