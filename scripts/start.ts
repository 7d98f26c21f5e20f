// `npm start`: the whole system on one machine for a newcomer or a demo. Starts a private Redis (AOF on, data
// under DATA_DIR/redis) unless REDIS_URL is set, then the listener, worker and API as separate processes, the
// way production runs them (each also runs alone: node dist/services/<name>/main.js), and supervises them all:
// a process that exits on its own is started again with backoff (scripts/supervise.ts) while the others keep
// running, and the services reconnect to a restarted Redis by themselves; one that stops on a bad setting stops
// everything (exit status EXIT_CONFIG, its message naming the setting). SIGINT, SIGTERM or SIGHUP to this
// process (npm passes its own on: the start script execs node) stops everything in order: intake first, Redis
// last. The children run in their own process groups so that a terminal's Ctrl-C reaches only this process,
// which then stops them in that order; a SIGKILL to this process leaves them running. "neurotriage is running" comes
// once every service's /readyz answers 200 (the worker's model sessions loaded); one that is not ready after
// START_READY_TIMEOUT_SECONDS is named with what it waits for, and the line still comes if it gets ready later.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, dataDir, EXIT_CONFIG, exitOnStartFailure } from '../shared/config';
import { createLogger } from '../shared/logger';
import { PrivateRedisError, startPrivateRedis } from '../shared/private-redis';
import { localAllowList } from './local-senders';
import { waitUntilReady } from './readiness';
import { readinessTargets } from './start-targets';
import { supervise, type Supervised } from './supervise';

const SERVICES = ['listener', 'worker', 'api'] as const;

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger('start', config.LOG_LEVEL);
  const root = path.resolve(__dirname, '..');
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir(config) };
  // The listener's default allow-list is empty (reject everyone). On a loopback-only listener, npm start lets the
  // project's own senders in so the quick start works; any other host must configure the allow-list. One set in
  // NEUROTRIAGE_CONFIG_FILE counts as set: the environment this puts it in would override the file's.
  const localSenders = localAllowList(process.env, config.DICOM_HOST);
  if (localSenders !== undefined) {
    env.DICOM_ALLOWED_CALLING_AES = localSenders;
    log.info({ allowed: localSenders }, 'DICOM_ALLOWED_CALLING_AES unset: allowing the local synthetic sender and storescu');
  }
  const { targets, slowAfterSeconds, dicom } = await readinessTargets(config, env);
  for (const name of SERVICES) {
    if (!existsSync(path.join(root, 'services', name, 'main.js'))) {
      log.error({ child: name }, 'service entry point missing: run npm run build');
      process.exit(1);
    }
  }

  const services: Supervised[] = [];
  let redis: Promise<Supervised | undefined> = Promise.resolve(undefined);
  let stopping = false;
  const timeoutMs = config.SHUTDOWN_TIMEOUT_SECONDS * 1000;
  const stopAll = async (signal: string, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping every service');
    // Intake first so nothing new arrives while the worker drains, then the worker and the API together (each may
    // take its whole shutdown time when Redis is frozen: in turn that was 3 x 30 s), Redis last.
    const [intake, ...others] = services;
    await intake?.stop('SIGTERM', timeoutMs);
    await Promise.all(others.map((s) => s.stop('SIGTERM', timeoutMs)));
    await (await redis.catch(() => undefined))?.stop('SIGTERM', timeoutMs);
    log.info('stopped');
    process.exit(exitCode);
  };
  // Before anything starts: a signal during start-up stops what has started so far.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stopAll(signal));

  if (!config.REDIS_URL) {
    // stopAll waits for this, so a signal during Redis' start-up still stops it.
    redis = (async () => {
      const privateRedis = await startPrivateRedis({ dir: path.join(dataDir(config), 'redis'), detached: true }).catch((err: unknown) => {
        // What failed and what to change, nothing more: a stack says nothing to whoever runs npm start. Nothing else
        // has started yet; like a bad setting, no restart can mend it.
        if (!(err instanceof PrivateRedisError)) throw err;
        console.error(`npm start: the private Redis did not start: ${err.message}`);
        process.exit(EXIT_CONFIG);
      });
      env.REDIS_URL = privateRedis.url;
      let first = true;
      const supervised = await supervise({
        name: 'redis',
        log,
        start: async () => {
          if (!first) await privateRedis.restart();
          first = false;
          return privateRedis.process;
        },
        // A restart that fails (its AOF damaged, its dir no longer writable) is logged as the first start's failure
        // is printed: what failed, what to change and Redis's last lines, no stack (it was the whole stack).
        reasonOf: (err) => (err instanceof PrivateRedisError ? err.message : undefined),
      });
      log.info({ redis: privateRedis.url }, 'private Redis started (AOF on)');
      return supervised;
    })();
    await redis;
  }

  for (const name of SERVICES) {
    if (stopping) return;
    const entry = path.join(root, 'services', name, 'main.js');
    services.push(await supervise({
      name,
      log,
      start: () => spawn(process.execPath, [entry], { env, stdio: ['ignore', 'inherit', 'inherit'], detached: true }),
      // A bad setting stops the whole system, as it would a single service: nothing runs half-configured.
      onBadSetting: () => void stopAll(`${name} has a bad setting`, EXIT_CONFIG),
    }));
  }
  const ready = await waitUntilReady(targets, {
    slowAfterMs: slowAfterSeconds * 1000,
    onSlow: (waiting) => log.warn({ waiting }, `still starting after ${slowAfterSeconds} s (START_READY_TIMEOUT_SECONDS): ${Object.keys(waiting).join(', ')}`),
    cancelled: () => stopping,
  });
  if (!ready) return;
  // Where the page answers, as it was polled (a port of 80 or 443 is left out of a URL, an IPv6 host bracketed).
  const api = new URL('/', targets[2].url).href;
  log.info(
    { dicom, api },
    'neurotriage is running; Ctrl-C stops it',
  );
}

main().catch(exitOnStartFailure);
