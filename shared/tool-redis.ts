// How the operator tools (retention, rescore) reach the services' Redis: REDIS_URL, or without it the private Redis
// `npm start` runs under DATA_DIR (the one-machine install). A tool runs once, from cron or a shell: a Redis that
// does not answer fails the run at once (exit 1, the scheduler shows it) instead of waiting for it.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { ConfigError, dataDir, exitOnStartFailure, loadConfig, type Config } from './config';
import { createLogger, type Logger } from './logger';
import { connectRedis } from './redis';
import { STUDY_QUEUE, type StudyJobData } from './studies';

const REDIS_WAIT_MS = 10_000;

/** A tool's run failing for a reason it can state (Redis does not answer): its message is what an operator reads, no stack. */
export class ToolError extends Error {
  override name = 'ToolError';
}

/** How a tool ends on a failure: a bad setting exits 78 with its message; a ToolError 1 with its message; else 1 with the stack. */
export function exitOnToolFailure(err: unknown): never {
  if (err instanceof ToolError) {
    console.error(err.message);
    process.exit(1);
  }
  return exitOnStartFailure(err);
}

/** Connected and ready; `unanswered` ends the error message when Redis does not answer (e.g. "nothing deleted"). */
export async function connectToolRedis(config: Pick<Config, 'REDIS_URL' | 'DATA_DIR'>, tool: string, log: Logger, unanswered: string): Promise<Redis> {
  const privateSocket = path.join(dataDir(config), 'redis', 'redis.sock');
  const redisUrl = config.REDIS_URL || (existsSync(privateSocket) ? `unix://${privateSocket}` : '');
  if (!redisUrl) throw new ConfigError([`REDIS_URL: ${tool} needs the Redis the services use (none set, and no npm start Redis at ${privateSocket})`]);
  const redis = connectRedis(redisUrl, 'worker');
  let lastError = '';
  redis.on('error', (err) => {
    lastError = err.message;
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new ToolError(`Redis not reachable within ${REDIS_WAIT_MS / 1000} s (${lastError || 'no answer'}): ${unanswered}`)), REDIS_WAIT_MS);
      redis.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  redis.on('error', (err) => log.error({ err: err.message }, 'Redis connection error'));
  return redis;
}

/** A tool that queues studies (rescore, recover): its config, log, Redis and the study queue, closed after `work`. */
export async function withStudyQueue<T>(
  tool: string,
  unanswered: string,
  work: (c: { config: Config; log: Logger; redis: Redis; queue: Queue<StudyJobData> }) => Promise<T>,
): Promise<T> {
  const config = loadConfig();
  const log = createLogger(tool, config.LOG_LEVEL);
  const redis = await connectToolRedis(config, tool, log, unanswered);
  const queue = new Queue<StudyJobData>(STUDY_QUEUE, { connection: redis });
  queue.on('error', (err) => log.error({ err: err.message }, 'study queue error'));
  try {
    return await work({ config, log, redis, queue });
  } finally {
    await queue.close();
    redis.disconnect();
  }
}
