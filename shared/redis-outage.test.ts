import { Queue, Worker } from 'bullmq';
import { createLogger } from './logger';
import { startPrivateRedis, type PrivateRedis } from './private-redis';
import { connectRedis } from './redis';
import { isRedisConnectionError, redisOutageLog } from './redis-outage';

let server: PrivateRedis;
beforeAll(async () => {
  server = await startPrivateRedis();
});
afterAll(async () => {
  await server?.stop();
});

test('a Redis outage is one warning and one "back" line, whichever connections, queues and workers see it', async () => {
  const lines: { level: number; msg: string; source?: string }[] = [];
  const log = createLogger('test', 'info', { write: (s: string) => void lines.push(JSON.parse(s) as (typeof lines)[number]) });
  const errors = redisOutageLog(log);
  // As the worker process has them: its connection, a queue on it, and a BullMQ worker (which duplicates it).
  const redis = connectRedis(server.url, 'worker');
  redis.on('error', (err) => errors.error('Redis connection', err));
  errors.watch(redis);
  const queue = new Queue('outage-test', { connection: redis });
  queue.on('error', (err) => errors.error('test queue', err));
  const worker = new Worker('outage-test', async () => undefined, { connection: redis });
  worker.on('error', (err) => errors.error('test worker', err));
  try {
    await queue.add('x', {});
    server.process.kill('SIGKILL');
    await new Promise((r) => server.process.once('exit', r));
    // Several reconnect attempts of each connection (ioredis retries within ~2 s at first).
    await new Promise((r) => setTimeout(r, 4000));
    const down = lines.filter((l) => /not reachable/.test(l.msg));
    expect(down).toHaveLength(1);
    expect(down[0].level).toBe(40);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    await server.restart();
    await new Promise<void>((resolve) => {
      const check = (): void => void (lines.some((l) => l.msg === 'Redis connection back') ? resolve() : setTimeout(check, 100));
      check();
    });
    expect(lines.filter((l) => l.msg === 'Redis connection back')).toHaveLength(1);
    // Any other error is still logged each time, as an error.
    errors.error('test queue', new Error('ERR something else'));
    errors.error('test queue', new Error('ERR something else'));
    expect(lines.filter((l) => l.msg === 'test queue error')).toHaveLength(2);
  } finally {
    await worker.close(true);
    await queue.close();
    redis.disconnect();
  }
});

test('connection errors are told from other errors', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
  const noSocket = Object.assign(new Error('connect ENOENT /tmp/x/redis.sock'), { code: 'ENOENT' });
  expect([refused, noSocket, new Error('Connection is closed.')].map(isRedisConnectionError)).toEqual([true, true, true]);
  expect([new Error('OOM command not allowed'), new Error('ERR unknown command'), 'ECONNREFUSED'].map(isRedisConnectionError)).toEqual([false, false, false]);
});
