// `npm start`: the whole system on one machine for a newcomer or a demo. Starts a private Redis (AOF on, data
// under DATA_DIR/redis) unless REDIS_URL is set, then the listener, worker and API as separate processes, the
// way production runs them (each also runs alone: node dist/services/<name>/main.js). Ctrl-C stops them in order.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, dataDir, ConfigError } from '../shared/config';
import { createLogger } from '../shared/logger';
import { startPrivateRedis } from '../shared/private-redis';

const SERVICES = ['listener', 'worker', 'api'] as const;
/** Calling AE titles of `npm run synth -- --send` and of DCMTK's storescu, from this machine only. */
export const LOCAL_SENDERS = 'NT_SYNTH@127.0.0.1,STORESCU@127.0.0.1';

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

interface Running {
  name: string;
  child: ChildProcess;
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
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

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger('start', config.LOG_LEVEL);
  const root = path.resolve(__dirname, '..');
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir(config) };
  // The listener's default allow-list is empty (reject everyone). On a loopback-only listener, npm start lets the
  // project's own senders in so the quick start works; any other host must configure the allow-list.
  if (process.env.DICOM_ALLOWED_CALLING_AES === undefined && isLoopback(config.DICOM_HOST)) {
    env.DICOM_ALLOWED_CALLING_AES = LOCAL_SENDERS;
    log.info({ allowed: LOCAL_SENDERS }, 'DICOM_ALLOWED_CALLING_AES unset: allowing the local synthetic sender and storescu');
  }
  let redis: ChildProcess | undefined;
  if (!config.REDIS_URL) {
    const started = await startPrivateRedis({ dir: path.join(dataDir(config), 'redis') });
    redis = started.process;
    env.REDIS_URL = started.url;
    log.info({ redis: started.url }, 'private Redis started (AOF on)');
  }

  const running: Running[] = [];
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    const timeoutMs = config.SHUTDOWN_TIMEOUT_SECONDS * 1000;
    // Stop intake first so nothing new arrives while the worker drains, then Redis last.
    for (const r of running) await stopChild(r.child, 'SIGTERM', timeoutMs);
    if (redis) await stopChild(redis, 'SIGTERM', timeoutMs);
    process.exit(code);
  };

  for (const name of SERVICES) {
    const entry = path.join(root, 'services', name, 'main.js');
    if (!existsSync(entry)) {
      log.error({ child: name }, 'service entry point missing: run npm run build');
      await stopAll(1);
      return;
    }
    const child = spawn(process.execPath, [entry], { env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('exit', (code, signal) => {
      if (stopping) return;
      log.error({ child: name, code, signal }, 'service exited; stopping the others');
      void stopAll(1);
    });
    running.push({ name, child });
  }
  log.info(
    { dicom: `${config.DICOM_AE_TITLE}@${config.DICOM_HOST}:${config.DICOM_PORT}`, api: `http://${config.API_HOST}:${config.API_PORT}/` },
    'neurotriage is running; Ctrl-C stops it',
  );
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));
}

main().catch((err) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
