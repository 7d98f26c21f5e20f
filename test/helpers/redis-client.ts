// What most integration tests start first: a private redis-server of their own (helpers/redis.ts) and one client
// of it, started in a beforeAll and stopped in the afterAll (after what runs on it: an app, a queue).
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { connectRedis, type RedisRole } from '../../shared/redis';
import { STUDY_QUEUE, type StudyJobData } from '../../shared/studies';
import { startRedis, type TestRedis } from './redis';

/** The server each client started here is connected to, until stopRedisClient. */
const servers = new Map<Redis, TestRedis>();

/**
 * A new private redis-server and a client of it connected as `role`, ready: a producer queues no command while it
 * connects. A client not ready within 10 s is dropped with its server (the caller's afterAll gets no client to stop).
 */
export async function startRedisClient(role: RedisRole): Promise<Redis> {
  const server = await startRedis();
  const redis = connectRedis(server.url, role);
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      redis.once('ready', resolve);
      timer = setTimeout(() => reject(new Error(`Redis client (${role}) not ready within 10 s`)), 10_000);
    });
  } catch (err) {
    redis.disconnect();
    await server.stop();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  servers.set(redis, server);
  return redis;
}

/** The URL of a started client's server: REDIS_URL for a tool or service the test runs. */
export function redisUrl(redis: Redis): string {
  const server = servers.get(redis);
  if (!server) throw new Error('not a client from startRedisClient, or stopped');
  return server.url;
}

/**
 * Closes what runs on the client (an app, a queue; in order, any left undefined by a failed start skipped), then
 * disconnects the client and stops its server. Nothing to do for a client that never started.
 */
export async function stopRedisClient(redis: Redis | undefined, ...closeFirst: Array<{ close(): Promise<unknown> } | undefined>): Promise<void> {
  for (const c of closeFirst) await c?.close();
  if (!redis) return;
  redis.disconnect();
  await servers.get(redis)?.stop();
  servers.delete(redis);
}

/** A worker client (as the tools connect) and the study queue (BullMQ) on it; stopRedisClient(redis, queue) ends both. */
export async function startStudyQueue(): Promise<{ redis: Redis; queue: Queue<StudyJobData> }> {
  const redis = await startRedisClient('worker');
  return { redis, queue: new Queue<StudyJobData>(STUDY_QUEUE, { connection: redis }) };
}
