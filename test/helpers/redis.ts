// A real, private redis-server per test file (shared/private-redis.ts): unix socket only, AOF on, data in a temp
// dir that is removed on stop. Tests pass the returned url wherever REDIS_URL is expected.
import { startPrivateRedis, type PrivateRedis, type PrivateRedisOptions } from '../../shared/private-redis';

export type TestRedis = PrivateRedis;

/** `options.dir`: keep the AOF there (a small file system, to fill its disk). */
export function startRedis(options: PrivateRedisOptions = {}): Promise<TestRedis> {
  return startPrivateRedis(options);
}
