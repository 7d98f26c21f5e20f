// A private redis-server on a unix socket (no TCP port to collide on), for a single machine: `npm start` keeps its
// data under DATA_DIR/redis and restarts it when it exits (same socket, the AOF brings the data back); tests and
// benchmarks use a temp dir removed on stop. Production points REDIS_URL at a managed Redis instead.
// A start that fails throws PrivateRedisError, whose message alone says what failed and what to change, with the
// last lines redis-server wrote (its log goes to its stdout, which is otherwise not shown).
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface PrivateRedisOptions {
  /** Where the socket and the AOF live; default a new temp dir that stop() removes. */
  dir?: string;
  /** AOF on (default) with this fsync policy; false for a throwaway benchmark store. */
  appendonly?: boolean;
  appendfsync?: 'always' | 'everysec' | 'no';
  /**
   * Whether redis-server's stderr is passed on to this process's stderr (default 'inherit'). Its log (stdout, warning
   * level) is not shown either way: its last lines are kept and quoted by a PrivateRedisError.
   */
  stdio?: 'inherit' | 'ignore';
  startTimeoutMs?: number;
  /**
   * Its own process group, so a terminal's Ctrl-C (SIGINT to the foreground group) does not stop Redis before the
   * services that use it; whoever started it stops it last. Default false.
   */
  detached?: boolean;
}

export interface PrivateRedis {
  /** unix:///.../redis.sock, accepted by shared/redis.ts connectRedis(). */
  url: string;
  dir: string;
  /** The running redis-server (a new one after restart()). */
  readonly process: ChildProcess;
  /**
   * Starts redis-server again on the same socket and data after it exited; resolves once it answers. Throws
   * PrivateRedisError (with Redis's last lines) when it does not.
   */
  restart(): Promise<void>;
  /** SIGTERM and wait (Redis writes its AOF on the way out); removes the dir when it was a temp dir. */
  stop(): Promise<void>;
}

/** The private Redis could not start; the message says what failed and what to change (no stack needed). */
export class PrivateRedisError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PrivateRedisError';
  }
}

/** What to change when the dir will not do (npm start's is DATA_DIR/redis). */
const OTHER_DIR = 'set DATA_DIR to a directory this user may write (npm start keeps Redis in DATA_DIR/redis), or set REDIS_URL to a Redis you run';

/** This many of redis-server's last lines are kept (each cut to LINE_CHARS) for a PrivateRedisError's message. */
const KEPT_LINES = 5;
const LINE_CHARS = 160;
const OVERCOMMIT_WARNING = /^WARNING Memory overcommit must be enabled/;

/**
 * The last non-empty lines a redis-server wrote on stdout and stderr, without its log prefix ("1768:M 07 Dec 2026
 * 18:46:13.976 # "). Redis's log holds its own events and settings, never a key's value.
 */
function recentLines(child: ChildProcess, passOn: boolean): () => string[] {
  const lines: string[] = [];
  const collect = (stream: NodeJS.ReadableStream | null, forward: boolean) => {
    if (!stream) return;
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      if (forward) process.stderr.write(chunk);
      const parts = (partial + chunk).split(/\r?\n/);
      partial = parts.pop() ?? '';
      for (const part of parts) keep(part);
    });
    stream.on('end', () => keep(partial));
  };
  const keep = (raw: string) => {
    const line = raw.replace(/^\d+:[A-Z] \d{2} \w{3} \d{4} [\d:.]+ [.*#-] ?/, '').trim();
    // Redis warns at every start on a host with vm.overcommit_memory 0 (most); it never says why a start failed,
    // and it took one of the lines kept for what did.
    if (line === '' || OVERCOMMIT_WARNING.test(line)) return;
    lines.push(line.length > LINE_CHARS ? `${line.slice(0, LINE_CHARS)}...` : line);
    if (lines.length > KEPT_LINES) lines.shift();
  };
  collect(child.stdout, false);
  collect(child.stderr, passOn);
  return () => [...lines];
}

/** Resolves when something answers a PING on the socket (PONG, or LOADING while it reads its AOF). */
function answersPing(socket: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = net.connect(socket);
    const done = (ok: boolean) => {
      conn.destroy();
      resolve(ok);
    };
    conn.setTimeout(timeoutMs, () => done(false));
    conn.once('error', () => done(false));
    conn.once('connect', () => conn.write('PING\r\n'));
    conn.once('data', (d) => done(/^(\+PONG|-LOADING)/.test(d.toString('latin1'))));
  });
}

const exited = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;

export async function startPrivateRedis(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const temp = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(path.join(tmpdir(), 'nt-redis-'));
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new PrivateRedisError(`cannot use ${dir} for Redis's data (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): ${OTHER_DIR}`);
  }
  const socket = path.join(dir, 'redis.sock');
  // sun_path holds 107 bytes on Linux.
  if (socket.length > 100) throw new PrivateRedisError(`redis socket path is too long (${socket.length} chars): use a shorter DATA_DIR or set REDIS_URL`);

  /** Why the last spawn failed (ENOENT: redis-server is not on PATH). */
  let spawnError: NodeJS.ErrnoException | undefined;
  /** The last lines the running (or last) redis-server wrote. */
  let said: () => string[] = () => [];
  const spawnServer = (): ChildProcess => {
    spawnError = undefined;
    const c = spawn(
      'redis-server',
      ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--dir', dir,
        '--appendonly', options.appendonly === false ? 'no' : 'yes', '--appendfsync', options.appendfsync ?? 'everysec',
        '--save', '', '--daemonize', 'no', '--loglevel', 'warning'],
      // Its log (stdout) was discarded: a Redis that would not start said why there, and nobody could read it.
      { stdio: ['ignore', 'pipe', 'pipe'], detached: options.detached ?? false },
    );
    c.on('error', (err) => (spawnError = err)); // not installed: waitReady says so
    said = recentLines(c, (options.stdio ?? 'inherit') === 'inherit');
    return c;
  };

  const quoted = (lines: string[]) => (lines.length > 0 ? ` Redis said: ${lines.join(' | ')}` : '');
  /** Redis's last lines, once the output of the one that exited has been read to the end (or after a second). */
  const lastWords = async (child: ChildProcess): Promise<string> => {
    if (!(child.stdout?.readableEnded ?? true) || !(child.stderr?.readableEnded ?? true)) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        child.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return quoted(said());
  };

  const stopChild = async (child: ChildProcess) => {
    if (exited(child)) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await gone;
  };

  /** A stale socket from a killed server may still exist: only an answer counts. */
  const waitReady = async (child: ChildProcess) => {
    const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
    while (!(await answersPing(socket, 1000))) {
      if (spawnError?.code === 'ENOENT') {
        throw new PrivateRedisError('redis-server is not installed (not found on PATH): npm run setup installs it, or set REDIS_URL to a Redis you run');
      }
      if (exited(child)) {
        throw new PrivateRedisError(
          `redis-server exited as it started (status ${child.exitCode ?? child.signalCode}): is ${dir} writable, its disk ` +
            `not full and its AOF undamaged (redis-check-aof repairs one)? Otherwise ${OTHER_DIR}.${await lastWords(child)}`,
        );
      }
      if (Date.now() > deadline) {
        const before = said(); // what it said while starting, not its lines on the way out
        await stopChild(child);
        throw new PrivateRedisError(`redis-server did not answer within ${options.startTimeoutMs ?? 10_000} ms of starting: is the machine overloaded? Or set REDIS_URL to a Redis you run.${quoted(before)}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  // Another redis-server still serving this dir (an earlier npm start whose supervisor was SIGKILLed leaves its
  // children running): a second one would take over the socket and append a second dataset to the same AOF.
  if (await answersPing(socket, 1000)) {
    throw new PrivateRedisError(
      `a Redis already answers on ${socket}: another npm start (or what is left of one) uses ${dir}; stop it first ` +
        `(its processes: pgrep -af '${socket}') or use another DATA_DIR`,
    );
  }
  let child = spawnServer();
  try {
    await waitReady(child);
  } catch (err) {
    if (temp) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `unix://${socket}`,
    dir,
    get process() {
      return child;
    },
    async restart() {
      if (!exited(child)) throw new Error('redis-server is still running');
      child = spawnServer();
      await waitReady(child);
    },
    async stop() {
      await stopChild(child);
      if (temp) rmSync(dir, { recursive: true, force: true });
    },
  };
}
