// A private redis-server on a unix socket (no TCP port to collide on), for a single machine: `npm start` keeps its
// data under DATA_DIR/redis; tests and benchmarks use a temp dir removed on stop. Production points REDIS_URL at a
// managed Redis instead.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface PrivateRedisOptions {
  /** Where the socket and the AOF live; default a new temp dir that stop() removes. */
  dir?: string;
  /** AOF on (default) with this fsync policy; false for a throwaway benchmark store. */
  appendonly?: boolean;
  appendfsync?: 'always' | 'everysec' | 'no';
  /** Where redis-server's own log lines go (default: this process's stderr). */
  stdio?: 'inherit' | 'ignore';
  startTimeoutMs?: number;
}

export interface PrivateRedis {
  /** unix:///.../redis.sock, accepted by shared/redis.ts connectRedis(). */
  url: string;
  dir: string;
  process: ChildProcess;
  /** SIGTERM and wait (Redis writes its AOF on the way out); removes the dir when it was a temp dir. */
  stop(): Promise<void>;
}

export async function startPrivateRedis(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const temp = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(path.join(tmpdir(), 'nt-redis-'));
  mkdirSync(dir, { recursive: true });
  const socket = path.join(dir, 'redis.sock');
  // sun_path holds 107 bytes on Linux.
  if (socket.length > 100) throw new Error(`redis socket path is too long (${socket.length} chars): use a shorter dir or set REDIS_URL`);
  const child = spawn(
    'redis-server',
    ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--dir', dir,
      '--appendonly', options.appendonly === false ? 'no' : 'yes', '--appendfsync', options.appendfsync ?? 'everysec',
      '--save', '', '--daemonize', 'no', '--loglevel', 'warning'],
    { stdio: ['ignore', 'ignore', options.stdio ?? 'inherit'] },
  );
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    if (temp) rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
  while (!existsSync(socket)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error('redis-server did not start within the time allowed (is it installed? npm run setup)');
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { url: `unix://${socket}`, dir, process: child, stop };
}
