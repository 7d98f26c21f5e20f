// The listener process: settings, logger, signals. `node dist/services/listener/main.js` runs it alone; `npm start`
// runs it beside the worker and the API. SIGTERM/SIGINT stop intake and let open associations finish within
// SHUTDOWN_TIMEOUT_SECONDS.
import { ConfigError, exitOnStartFailure } from '../../shared/config';
import { listenFailure } from '../../shared/listen-failure';
import { createLogger } from '../../shared/logger';
import { loadListenerSettings } from './config';
import { startListener } from './listener';

async function main(): Promise<void> {
  let settings;
  try {
    settings = loadListenerSettings();
    // Alone the listener needs Redis as the worker and the API do: a missing REDIS_URL is a setting (exit 78, not
    // restarted), not a start failure to retry.
    if (!settings.REDIS_URL) throw new ConfigError(['REDIS_URL: the listener needs Redis (npm start sets it when it starts a private one)']);
  } catch (err) {
    if (err instanceof ConfigError) exitOnStartFailure(err);
    throw err;
  }
  const log = createLogger('listener', settings.LOG_LEVEL);
  const listener = await startListener({ settings, log });
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: no new associations, waiting for open ones');
    listener.close().then(
      () => process.exit(0),
      (err: Error) => {
        log.error({ err: err.message }, 'unclean stop');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: Error) => {
  if (listenFailure(err) !== undefined) exitOnStartFailure(err);
  console.error(`listener failed to start: ${err.message}`);
  process.exit(1);
});
