// The API process: settings, tokens, TLS, Redis, the model bundle's text encoder, the report feed (HL7 ORU^R01
// over MLLP when REPORTS_MLLP_PORT is set, and POST /api/v1/reports), the app, signals.
// The API serves the worklist while the text encoder loads or if it cannot (then /readyz says why and only
// the embedding routes answer 503): radiologists must never lose the worklist to a model problem. It also starts
// and stays up without Redis (/livez answers, /readyz says Redis is not reachable; ioredis reconnects), so a Redis
// outage never turns into API restarts.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Registry } from 'prom-client';
import { ConfigError, dataDir, exitOnStartFailure, loadConfig, loadSection, settingsSource } from '../../shared/config';
import { listenFailure } from '../../shared/listen-failure';
import { createLogger } from '../../shared/logger';
import { connectRedis, redactRedisUrl } from '../../shared/redis';
import { redisOutageLog } from '../../shared/redis-outage';
import { migrateQueries } from '../../shared/query-migration';
import { build, type ModelStatus } from './app';
import { createReportInbound, loadReportsConfig } from './inbound';
import { createOutbound, loadOutboundConfig } from './outbound';
import { API_DEFAULTS, ApiSettingsSchema, apiRedisOptions, tokensFor, trustProxy } from './settings';
import { loadTextEmbedder, type TextEmbedder } from './text-embedder';

/** A file a setting names, or a ConfigError naming the setting (a missing certificate was an ENOENT stack, exit 1). */
function readSettingFile(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError([`${key} ${file}: ${(err as Error).message}`]);
  }
}

async function main(): Promise<void> {
  const config = loadConfig();
  const settings = loadSection(ApiSettingsSchema, API_DEFAULTS, settingsSource(process.env));
  const logger = createLogger('api', config.LOG_LEVEL);
  if (!config.REDIS_URL) throw new ConfigError(['REDIS_URL is required for the API (npm start provides a private Redis)']);
  trustProxy(settings.API_TRUST_PROXY); // refuses a bad address list now, naming the setting
  const tokens = tokensFor(settings.API_TOKENS, config.API_HOST, dataDir(config), (m) => logger.warn(m));
  if (Boolean(settings.API_TLS_CERT_FILE) !== Boolean(settings.API_TLS_KEY_FILE)) {
    throw new ConfigError(['API_TLS_CERT_FILE and API_TLS_KEY_FILE go together: set both or neither']);
  }
  const outboundConfig = loadOutboundConfig(process.env);
  const reportsConfig = loadReportsConfig(process.env);
  const https = settings.API_TLS_CERT_FILE && settings.API_TLS_KEY_FILE
    ? { cert: readSettingFile('API_TLS_CERT_FILE', settings.API_TLS_CERT_FILE), key: readSettingFile('API_TLS_KEY_FILE', settings.API_TLS_KEY_FILE) }
    : undefined;

  // Every command bounded (API_REDIS_TIMEOUT_MS): a frozen Redis makes a request answer 503, not hang.
  const redis = connectRedis(config.REDIS_URL, 'producer', apiRedisOptions(settings));
  // One line per outage, not one per reconnect attempt (the outbound deliveries' connections share it).
  const redisErrors = redisOutageLog(logger, { redis: redactRedisUrl(config.REDIS_URL as string) });
  redis.on('error', (err) => redisErrors.error('Redis connection', err));
  redisErrors.watch(redis);

  const registry = new Registry();
  // Pushes each scored result to the configured RIS (HL7), PACS (SR) and webhook; none configured, none run.
  const outbound = createOutbound(outboundConfig, { redisUrl: config.REDIS_URL, registry, logger, redisErrors, dataDir: dataDir(config) });

  const reports = createReportInbound(reportsConfig, { redis, registry, logger, dataDir: dataDir(config) });
  let models: TextEmbedder | null = null;
  let status: ModelStatus = { loaded: false, detail: `loading the model bundle from ${settings.MODELS_DIR}` };
  const app = await build({
    config, settings, tokens, redis, logger, https,
    registry, reports,
    embedText: async (texts) => {
      if (!models) throw new Error('text encoder not loaded');
      return models.embedTexts(texts);
    },
    modelStatus: () => status,
    clock: Date.now,
  });
  // Loads after listen so the worklist is up at once; the text encoder is small, CPU is enough for sentences.
  const loading = loadTextEmbedder(path.resolve(settings.MODELS_DIR))
    .then(async (m) => {
      // An older queries hash becomes the site layer before the API lists or edits queries (once per Redis; a
      // worker starting first does the same).
      await migrateQueries(redis, m.manifest.queries).then(
        (moved) => moved.migrated && logger.info({ dropped: moved.dropped, kept: moved.kept, uncalibrated: moved.uncalibrated, unreadable: moved.unreadable }, 'triage queries moved to the layered contract'),
        (err: Error) => logger.warn({ err: err.message }, 'moving the triage queries to the layered contract failed; the next start (API or worker) tries again'),
      );
      models = m;
      status = { loaded: true, bundleId: m.manifest.bundleId, version: m.manifest.version, combination: m.manifest.combination, manifest: m.manifest, language: m.language };
      logger.info({ bundleId: m.manifest.bundleId, version: m.manifest.version }, 'text encoder loaded');
    })
    .catch((err: Error) => {
      status = { loaded: false, detail: `model bundle not usable: ${err.message.split('\n')[0]}` };
      logger.error({ err: err.message }, 'model bundle not usable; search, ad-hoc scoring and report checks answer 503');
    });

  await app.listen({ host: config.API_HOST, port: config.API_PORT });
  // After listen: outbound waits for Redis, and the API answers probes and the worklist's errors meanwhile.
  outbound.start().then(
    () => outbound.adapters.length > 0 && logger.info({ adapters: outbound.adapters }, 'outbound adapters running'),
    (err: unknown) => logger.error({ err }, 'outbound adapters failed to start'),
  );
  // Reports of past studies from the RIS: the journal replay and the study index first, then the MLLP listener
  // (after the worklist is up: a long journal must not keep radiologists waiting; like outbound, it waits for Redis).
  // REPORTS_MLLP_PORT names a port it cannot open: a bad setting (the RIS would send to nobody, or to whatever holds it).
  reports.start().catch((err: unknown) => (listenFailure(err) === undefined ? logger.error({ err }, 'the report feed failed to start') : exitOnStartFailure(err)));

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    const timer = setTimeout(() => {
      logger.error('shutdown timed out');
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_SECONDS * 1000);
    timer.unref();
    await reports.close();
    await app.close();
    await outbound.close();
    await loading;
    await (models as TextEmbedder | null)?.close();
    await redis.quit().catch(() => redis.disconnect());
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // logrotate's postrotate (or `kill -HUP`): the audit log's next entry goes to a new file at its path.
  process.on('SIGHUP', () => {
    app.reopenAuditLog().then(
      () => logger.info('audit log reopened'),
      (err: unknown) => logger.error({ err }, 'audit log reopen failed'),
    );
  });
}

main().catch(exitOnStartFailure);
