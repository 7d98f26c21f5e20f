// A real, private redis-server per test file (shared/private-redis.ts): unix socket only, AOF on, data in a temp
// dir that is removed on stop. Tests pass the returned url wherever REDIS_URL is expected.
import { startPrivateRedis, type PrivateRedis } from '../../shared/private-redis';

export type TestRedis = PrivateRedis;

export function startRedis(): Promise<TestRedis> {
  return startPrivateRedis();
}
