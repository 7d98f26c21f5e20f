// The API as a Fastify app built from injected dependencies (config, Redis, logger, metrics registry, text
// embedder, clock): no side effects on import, nothing global, so tests build as many as they like and drive
// them with app.inject() or listen(0). main.ts wires the real process.
import path from 'node:path';
import { Queue } from 'bullmq';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { ConfigError, dataDir, type Config } from '../../shared/config';
import type { Logger } from '../../shared/logger';
import type { BundleLanguage } from '../../shared/language/knowledge';
import type { Manifest } from '../../shared/model-manifest';
import { auditFileFor, auditPlugin, createFileAuditLog, type AuditLog } from './plugins/audit';
import { authPlugin } from './plugins/auth';
import { openApiPlugin, swaggerUiRoutes } from './plugins/docs';
import { jsonBodyPlugin } from './plugins/json-body';
import { livePlugin } from './plugins/live';
import { metricsPlugin } from './plugins/metrics';
import { clientErrorHandler, connectNotServed, expectationFailed, frameworkErrorHandler, HttpProblem, problemsPlugin, targetPath } from './plugins/problems';
import { rateLimitPlugin } from './plugins/rate-limit';
import { createEncoderShare } from './encoder-share';
import type { EmbedText } from './report-check';
import { eventRoutes } from './routes/events';
import { healthRoutes } from './routes/health';
import { findPublicDir, pageRoutes } from './routes/page';
import { queryRoutes } from './routes/queries';
import { decisionRoutes } from './routes/decision';
import { createCalibrationService, type CalibrationService } from './calibration/service';
import { createQueryService } from './query-service';
import { reportRoutes } from './routes/reports';
import type { ReportInbound } from './inbound';
import { auditRoutes } from './routes/audit';
import { imageRoutes } from './routes/images';
import { createKeyImageStore } from './key-images';
import { searchRoutes } from './routes/search';
import { studyRoutes } from './routes/studies';
import { worklistRoutes } from './routes/worklist';
import { trustProxy, type ApiSettings, type ApiToken } from './settings';
import { createRescorer } from '../../shared/rescore';
import { createStudyStore } from './store';
import { STUDY_QUEUE, type StudyJobData } from '../../shared/studies';

export interface ModelStatus {
  loaded: boolean;
  bundleId?: string;
  version?: string;
  /** How the bundle combines sequences (manifest.combination); ad-hoc scores follow it. */
  combination?: 'mean-embedding' | 'mean-score';
  /** Why it is not loaded (missing bundle, checksum failure, still loading). */
  detail?: string;
  /** The loaded bundle's manifest (default queries, decision tables, normal-study sentence) and language knowledge. */
  manifest?: Manifest;
  language?: BundleLanguage;
}

/** The loaded bundle, or a 503 saying why there is none (routes that need its queries or language). */
export function loadedModel(status: ModelStatus): Required<Pick<ModelStatus, 'bundleId' | 'version' | 'manifest' | 'language'>> & ModelStatus {
  if (!status.loaded || !status.manifest || !status.language || !status.bundleId || !status.version) {
    throw new HttpProblem(503, `the model bundle is not loaded (${status.detail ?? 'starting'}); try again shortly`);
  }
  return status as Required<Pick<ModelStatus, 'bundleId' | 'version' | 'manifest' | 'language'>> & ModelStatus;
}

export interface AppDeps {
  config: Pick<Config, 'DATA_DIR' | 'DISK_MIN_FREE_MB'>;
  settings: ApiSettings;
  tokens: ApiToken[];
  /**
   * A producer-style connection (fails fast) whose commands are bounded (main.ts: apiRedisOptions, API_REDIS_TIMEOUT_MS);
   * the live-update subscriber is duplicated from it.
   */
  redis: Redis;
  logger: Logger;
  registry: Registry;
  /** The bundle's text encoder; null while it is not loaded (routes that need it answer 503). */
  embedText: EmbedText | null;
  modelStatus: () => ModelStatus;
  clock: () => number;
  /** Defaults to this instance's JSONL file beside API_AUDIT_LOG_FILE under DATA_DIR (auditFileFor). */
  auditLog?: AuditLog;
  /** Names this instance's audit file; defaults to the host name (a pod name, a container id). */
  instanceName?: string;
  /** How long the studies-by-status scan is reused; default 2000 ms (tests use 0). */
  statusCacheMs?: number;
  /** Defaults to services/api/public. */
  publicDir?: string;
  /** The report feed (services/api/inbound); without it the report routes are not registered. */
  reports?: ReportInbound;
  /**
   * Longest time a request may take to arrive in full, headers and body (default REQUEST_TIMEOUT_MS); past it the
   * client gets a 408 problem and the connection is closed. Tests shorten it.
   */
  requestTimeoutMs?: number;
  /**
   * How often every live-update stream gets a comment, so proxies in front (nginx's proxy_read_timeout, 60 s by
   * default) do not close it while no study changes; default 15 000 ms, which the page's 45 s watchdog assumes. Tests
   * shorten it.
   */
  liveHeartbeatMs?: number;
  /** TLS key and certificate (PEM) when the API terminates HTTPS itself. */
  https?: { key: Buffer; cert: Buffer };
  version?: string;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Calibration of site queries from reports (tests run a pass with app.calibration.pass()). */
    calibration: CalibrationService;
  }
}

/** The audit log, or a ConfigError naming API_AUDIT_LOG_FILE when its place cannot be written (it was a raw stack). */
function openAuditLog(file: string): AuditLog {
  try {
    return createFileAuditLog(file);
  } catch (err) {
    throw new ConfigError([`API_AUDIT_LOG_FILE: cannot append to ${file}: ${(err as Error).message}`]);
  }
}

/** A request whose headers and body have not arrived in full after this long is answered 408 (Node's headersTimeout). */
export const REQUEST_TIMEOUT_MS = 60_000;

export async function build(deps: AppDeps): Promise<FastifyInstance> {
  const requestTimeout = deps.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const app = Fastify({
    loggerInstance: deps.logger,
    // Request ids in the audit log and in 5xx details; no client-supplied ids.
    genReqId: (() => {
      let n = 0;
      return () => `req-${(++n).toString(36)}`;
    })(),
    // Fastify's own request lines carry the raw URL, and a search URL carries the free text a user typed;
    // the onResponse hook below logs the route template instead.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 256 * 1024,
    // Fastify's default (0) turns Node's request timeout off: a client that sent its headers and then stalled in the
    // body (a Content-Length it never sends, a slow-loris upload) held its connection and socket forever. Bounded, it
    // gets the 408 problem below. Node ignores its request timeout while headersTimeout (default 60 s) is longer, and
    // looks for expired requests every connectionsCheckingInterval (default 30 s): both follow it.
    requestTimeout,
    http: { headersTimeout: Math.min(60_000, requestTimeout), connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(requestTimeout / 2))) },
    // A request line over the parser's limit (431) and bytes that are not HTTP answer as problems too.
    clientErrorHandler,
    // A path whose percent-encoding does not decode answers as a problem too (Fastify's own shape quoted the path).
    frameworkErrors: frameworkErrorHandler,
    // Fastify's default (100) answered a longer path parameter 404 "no route"; above the request line's own limit,
    // every parameter reaches its route's schema (a UID over 64 characters is a 400 naming the parameter).
    routerOptions: { maxParamLength: 16 * 1024 },
    trustProxy: trustProxy(deps.settings.API_TRUST_PROXY),
    ajv: { customOptions: { allErrors: true, coerceTypes: 'array', removeAdditional: false } },
    ...(deps.https ? { https: deps.https } : {}),
  }) as unknown as FastifyInstance;

  // Two refusals Node answers itself, bare (no body): an HTTP/1.1 request without Host, and an Expect other than
  // 100-continue. The API answers them as problems (problems.ts: its onRequest hook, expectationFailed).
  (app.server as { requireHostHeader?: boolean }).requireHostHeader = false;
  app.server.on('checkExpectation', expectationFailed);
  // A CONNECT (authority-form, for proxies) never reaches the router: answered 501 here rather than dropped unanswered.
  app.server.on('connect', connectNotServed);

  const auditFile = path.resolve(dataDir(deps.config), deps.settings.API_AUDIT_LOG_FILE);
  const auditLog = deps.auditLog ?? openAuditLog(auditFileFor(auditFile, deps.instanceName));
  const encoderShare = createEncoderShare(deps.settings.API_ENCODER_MAX_PER_USER, (user, running) => {
    app.metrics.encoderRefused.inc();
    deps.logger.warn({ user, running, limit: deps.settings.API_ENCODER_MAX_PER_USER }, 'text-encoder request refused: too many of this user running');
  });
  const embed: EmbedText = async (texts, user) => {
    if (!deps.embedText) {
      const m = deps.modelStatus();
      throw new HttpProblem(503, `the text encoder is not loaded (${m.detail ?? 'starting'}); try again shortly`);
    }
    const embedText = deps.embedText;
    return user === undefined ? embedText(texts) : encoderShare.run(user, () => embedText(texts));
  };
  // app.metrics is decorated below, before any route can read a result (or calibration start).
  const store = createStudyStore(deps.redis, {
    statusCacheMs: deps.statusCacheMs,
    clock: deps.clock,
    onUnreadable: () => app.metrics.resultsUnreadable.inc(),
  });
  const calibration = createCalibrationService({
    redis: deps.redis,
    modelStatus: deps.modelStatus,
    embed,
    log: deps.logger,
    onUnreadable: () => app.metrics.resultsUnreadable.inc(),
    settings: {
      minStudies: deps.settings.CALIBRATION_MIN_STUDIES,
      minPositives: deps.settings.CALIBRATION_MIN_POSITIVES,
      maxStudies: deps.settings.CALIBRATION_MAX_STUDIES,
      intervalMs: deps.settings.CALIBRATION_INTERVAL_SECONDS * 1000,
      mentionSimilarity: deps.settings.API_REPORT_MENTION_SIMILARITY,
    },
  });
  const queries = createQueryService({ redis: deps.redis, model: deps.modelStatus, embed, calibrator: calibration.calibrator });
  app.decorate('calibration', calibration);
  app.addHook('onReady', () => calibration.start());
  app.addHook('onClose', () => calibration.close());
  // The listener's study queue, for administrators' "score again" (rescore.ts); on the API's own connection.
  const studyQueue = new Queue<StudyJobData>(STUDY_QUEUE, { connection: deps.redis });
  studyQueue.on('error', (err) => deps.logger.warn({ err: err.message }, 'study queue: redis error'));
  app.addHook('onClose', () => studyQueue.close());

  // Order matters: problems and the rate limiter before auth (both hook routes as they are added), then
  // shared decorations, then the routes.
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: reply.statusCode, ms: Math.round(reply.elapsedTime), user: request.user?.name },
      'request',
    );
  });
  // Everything under /api/v1 but the key images carries patient data (worklist and study JSON, report text,
  // rejected HL7 messages, the audit export) or is an error about it: no cache keeps it (a key image sets its own
  // `private, max-age` for stepping). No response is content-sniffed. The page's files set their own headers.
  app.addHook('onSend', async (request, reply, payload) => {
    if (!reply.hasHeader('x-content-type-options')) reply.header('X-Content-Type-Options', 'nosniff');
    if (targetPath(request.url).startsWith('/api/') && !reply.hasHeader('cache-control')) reply.header('Cache-Control', 'no-store');
    return payload;
  });
  // The connection's own command bound (API_REDIS_TIMEOUT_MS in main.ts) is what a 503 about Redis names.
  await app.register(problemsPlugin, { redisTimeoutMs: deps.redis.options.commandTimeout });
  // JSON bodies only: text/plain and other types answer 415; a "__proto__" key gets its own 400.
  await app.register(jsonBodyPlugin);
  await app.register(rateLimitPlugin, { max: deps.settings.API_RATE_LIMIT_MAX, windowSeconds: deps.settings.API_RATE_LIMIT_WINDOW_SECONDS });
  await app.register(authPlugin, { tokens: deps.tokens });
  await app.register(metricsPlugin, { registry: deps.registry });
  await app.register(auditPlugin, { log: auditLog, clock: deps.clock });
  await app.register(livePlugin, {
    redis: deps.redis,
    limits: {
      maxStreamsPerUser: deps.settings.API_LIVE_MAX_STREAMS_PER_USER,
      maxStreams: deps.settings.API_LIVE_MAX_STREAMS,
      maxUnsentBytes: deps.settings.API_LIVE_MAX_UNSENT_BYTES,
    },
    heartbeatMs: deps.liveHeartbeatMs,
  });
  await app.register(openApiPlugin, { version: deps.version ?? '0.1.0' });

  await app.register(healthRoutes, {
    redis: deps.redis, modelStatus: deps.modelStatus, dataDir: dataDir(deps.config), diskMinFreeMb: deps.config.DISK_MIN_FREE_MB,
  });
  await app.register(worklistRoutes, { store });
  await app.register(studyRoutes, {
    store, redis: deps.redis, embed, modelStatus: deps.modelStatus, mentionSimilarity: deps.settings.API_REPORT_MENTION_SIMILARITY,
    rescorer: createRescorer({ redis: deps.redis, queue: studyQueue, clock: deps.clock }),
  });
  await app.register(imageRoutes, { images: createKeyImageStore({ redis: deps.redis, dataDir: dataDir(deps.config) }) });
  await app.register(searchRoutes, { store, embed, modelStatus: deps.modelStatus });
  await app.register(queryRoutes, { service: queries, modelStatus: deps.modelStatus, embed });
  await app.register(decisionRoutes, { redis: deps.redis, modelStatus: deps.modelStatus });
  if (deps.reports) await app.register(reportRoutes, { redis: deps.redis, reports: deps.reports, clock: deps.clock });
  await app.register(auditRoutes, { file: auditFile });
  await app.register(eventRoutes);
  await app.register(swaggerUiRoutes);
  await app.register(pageRoutes, { publicDir: deps.publicDir ?? findPublicDir() });
  return app;
}
