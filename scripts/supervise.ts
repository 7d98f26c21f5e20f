// Keeps one child process running for `npm start`: when it exits on its own it is started again after a backoff
// (1 s, doubling to 30 s; back to 1 s once a run has lasted a minute), so one crashed service never stops the
// others and a crash loop does not spin. A service that exits on a bad setting (EXIT_CONFIG) is not restarted: its
// owner hears of it (onBadSetting) and stops everything. stop() ends it for good: a signal, then SIGKILL after a
// timeout.
import type { ChildProcess } from 'node:child_process';
import { EXIT_CONFIG } from '../shared/config';
import type { Logger } from '../shared/logger';

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** A run that lasted this long resets the delay to initialMs. */
  stableMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1000, maxMs: 30_000, stableMs: 60_000 };

export interface SupervisedOptions {
  name: string;
  /** Starts the process (spawn); resolves once it is up (for Redis: answering). */
  start: () => Promise<ChildProcess> | ChildProcess;
  log: Logger;
  backoff?: BackoffPolicy;
  /** Called when it exits with EXIT_CONFIG (a bad setting; its own message says which): it is not restarted. */
  onBadSetting?: () => void;
  /**
   * For a start that failed with an error whose message says all (what failed and what to change): that message,
   * logged in the line's msg with no stack. Undefined (the default for every error): the error with its stack.
   */
  reasonOf?: (err: unknown) => string | undefined;
}

export interface Supervised {
  readonly name: string;
  /** The running process, if any. */
  current(): ChildProcess | undefined;
  /** How many times it was restarted after exiting on its own. */
  restarts(): number;
  /** No more restarts; `signal`, then SIGKILL after timeoutMs. Resolves when it has exited. */
  stop(signal: NodeJS.Signals, timeoutMs: number): Promise<void>;
}

export function stopProcess(child: ChildProcess, signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

export async function supervise(opts: SupervisedOptions): Promise<Supervised> {
  const policy = opts.backoff ?? DEFAULT_BACKOFF;
  let child: ChildProcess | undefined;
  let stopping = false;
  let restarts = 0;
  let delay = policy.initialMs;
  let timer: NodeJS.Timeout | undefined;
  /** A restart in progress (its start() may still be waiting for the process to be ready). */
  let starting: Promise<void> | undefined;
  /** How stop() asked to stop: also used on a process whose start() finished after stop() began. */
  let stopWith: { signal: NodeJS.Signals; timeoutMs: number } = { signal: 'SIGTERM', timeoutMs: 30_000 };

  /** Starts it again after the current backoff, and again (longer) if that start fails. */
  const schedule = (): void => {
    if (stopping) return;
    const wait = delay;
    delay = Math.min(policy.maxMs, delay * 2);
    timer = setTimeout(() => {
      restarts++;
      starting = run()
        .catch((err: unknown) => {
          const reason = opts.reasonOf?.(err);
          if (reason === undefined) opts.log.error({ child: opts.name, err }, 'service did not start: trying again');
          else opts.log.error({ child: opts.name, restartInMs: delay }, `service did not start: ${reason} (trying again)`);
          schedule();
        })
        .finally(() => {
          starting = undefined;
        });
    }, wait);
  };

  const run = async (): Promise<void> => {
    const startedAt = Date.now();
    const c = await opts.start();
    if (stopping) {
      // stop() came while this was starting: it is not left running after its supervisor is done.
      await stopProcess(c, stopWith.signal, stopWith.timeoutMs);
      return;
    }
    child = c;
    opts.log.info({ child: opts.name, pid: c.pid }, 'service started');
    c.once('exit', (code, signal) => {
      if (child === c) child = undefined;
      if (stopping) return;
      if (code === EXIT_CONFIG) {
        opts.log.error({ child: opts.name, code }, 'service stopped on a bad setting (its message is above): not restarting it');
        opts.onBadSetting?.();
        return;
      }
      if (Date.now() - startedAt >= policy.stableMs) delay = policy.initialMs;
      opts.log.error({ child: opts.name, code, signal, restartInMs: delay }, 'service exited: restarting it');
      schedule();
    });
  };
  await run();

  return {
    name: opts.name,
    current: () => child,
    restarts: () => restarts,
    async stop(signal, timeoutMs) {
      stopping = true;
      stopWith = { signal, timeoutMs };
      clearTimeout(timer);
      await starting;
      if (child) await stopProcess(child, signal, timeoutMs);
    },
  };
}
