// Builds a running listener from settings and injected connections: instance store, Redis arrival records and
// study queue, metrics and probe endpoint and the DICOM server. startListener() is what main.ts, `npm start` and
// the tests call; close() stops intake, lets associations finish, then closes the queue and Redis.
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import type tls from 'node:tls';
import type { Redis } from 'ioredis';
import { Queue } from 'bullmq';
import { log as dimseLog } from 'dcmjs-dimse';
import { quietDcmjsLog } from '../../shared/imaging/dcmjs';
import { connectRedis } from '../../shared/redis';
import { redisOutageLog } from '../../shared/redis-outage';
import { redisCheck, withTimeout } from '../../shared/health';
import { keys, STUDY_QUEUE, type StudyJobData } from '../../shared/studies';
import type { Logger } from '../../shared/logger';
import type { ListenerSettings } from './config';
import { parseAllowList } from './association-policy';
import { InstanceStore } from './instance-store';
import { StudyAssembler } from './study-assembler';
import { createListenerMetrics, startMetricsServer, type ListenerMetrics, type Readiness } from './metrics';
import { DicomServer } from './store-scp';

export interface ListenerDeps {
  settings: ListenerSettings;
  log: Logger;
  /** A producer connection (fail-fast options); when absent one is opened from REDIS_URL and closed by close(). */
  redis?: Redis;
  /**
   * Names this listener's temp dir and lease under DATA_DIR/tmp; default <hostname>-<pid>. Two listeners in one
   * process (a test of replicas sharing DATA_DIR) need different names.
   */
  instanceName?: string;
}

export interface RunningListener {
  /** The DICOM port actually bound (DICOM_PORT=0 asks the OS for one); 0 with DICOM_TLS_ONLY. */
  port: number;
  /** The DICOM TLS port actually bound, when DICOM_TLS_PORT is set. */
  tlsPort?: number;
  metricsPort: number;
  metrics: ListenerMetrics;
  /** Studies re-queued at start (stored instances whose study job had not finished). */
  requeued: number;
  close(): Promise<void>;
}

/** Server-side TLS for DICOM (PS3.15 B.1): client certificates verified against DICOM_TLS_CA_FILE. */
function tlsOptions(settings: ListenerSettings): tls.TlsOptions {
  return {
    cert: readFileSync(settings.DICOM_TLS_CERT_FILE as string),
    key: readFileSync(settings.DICOM_TLS_KEY_FILE as string),
    ...(settings.DICOM_TLS_CA_FILE ? { ca: readFileSync(settings.DICOM_TLS_CA_FILE) } : {}),
    requestCert: true,
    rejectUnauthorized: settings.DICOM_TLS_CLIENT_CERT === 'require',
    minVersion: 'TLSv1.2',
  };
}

/** READINESS_TIMEOUT_MS: a Kubernetes probe's own default timeout is 1 s. */
const READINESS_TIMEOUT_MS = 900;

async function ready(redis: Redis): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('Redis not reachable within 10 s')), 10_000);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export async function startListener(deps: ListenerDeps): Promise<RunningListener> {
  const { settings, log } = deps;
  // dcmjs-dimse logs through a global loglevel logger, and dcmjs (which it parses with) prints data set values on
  // console; our own logs cover associations and failures without them.
  dimseLog.setLevel('silent');
  quietDcmjsLog();

  const allowList = parseAllowList(settings.DICOM_ALLOWED_CALLING_AES);
  if (!allowList.anyone && allowList.peers.length === 0) {
    log.warn('DICOM_ALLOWED_CALLING_AES is empty: every association will be rejected until calling AEs are listed');
  }

  const store = new InstanceStore({
    dataDir: settings.DATA_DIR,
    minFreeBytes: settings.DISK_MIN_FREE_MB * 1024 * 1024,
    memoryLimitBytes: settings.DICOM_SPOOL_MEMORY_MB * 1024 * 1024,
    logBytes: settings.DICOM_WAL_MB * 1024 * 1024,
    onLogError: (err) => log.error({ err: err.message }, 'could not flush stored instances from the write-ahead log; they stay in it and are tried again'),
    // A dead replica's log swept while running: its repaired studies are scored again, those swept before the
    // assembler exists (a heartbeat between the store's init and the assembler's creation) once it does.
    onRepaired: (studies) => {
      if (rescoreRepaired) void rescoreRepaired(studies);
      else repairedEarly.push(...studies);
    },
    ...(deps.instanceName ? { instanceName: deps.instanceName } : {}),
  });
  let rescoreRepaired: ((studies: string[]) => Promise<void>) | undefined;
  const repairedEarly: string[] = [];

  const ownRedis = deps.redis === undefined;
  if (ownRedis && !settings.REDIS_URL) throw new Error('REDIS_URL is not set');
  // A Redis that stops answering (frozen, partitioned) must fail a C-STORE within seconds, not hold it open.
  const redis = deps.redis ?? connectRedis(settings.REDIS_URL as string, 'producer', { commandTimeout: settings.LISTENER_REDIS_TIMEOUT_MS });
  const redisErrors = redisOutageLog(log);
  redis.on('error', (err: Error) => redisErrors.error('Redis connection', err));
  redisErrors.watch(redis);
  const metrics = createListenerMetrics(() => store.lastFreeBytes());
  let queue: Queue<StudyJobData> | undefined;
  let metricsServer: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
  const servers: DicomServer[] = [];
  try {
    await ready(redis);
    // After Redis: a replay removes the logs it wrote back, so the studies it repaired must be scheduled in this
    // run; a start that fails for want of Redis leaves the logs to the next one.
    const { removedTempFiles, replayedInstances, repairedStudies, logUnavailable } = await store.init();
    if (logUnavailable) log.warn({ err: logUnavailable }, 'no write-ahead log (DICOM_WAL_MB): each instance flushes its own file and directory before Success');
    if (removedTempFiles > 0) log.info({ removedTempFiles }, 'removed unacknowledged temp files of a stopped listener');
    if (replayedInstances > 0) log.info({ replayedInstances }, 'wrote instances from the write-ahead log of a stopped listener into the store');
    queue = new Queue<StudyJobData>(STUDY_QUEUE, { connection: redis });
    queue.on('error', (err: Error) => redisErrors.error('study queue', err));
    const assembler = new StudyAssembler({
      redis,
      queue,
      quietMs: Math.round(settings.STUDY_QUIET_SECONDS * 1000),
      // A release completes a study early, which the arrival throttle's reasoning does not allow for.
      throttle: !settings.STUDY_COMPLETE_ON_RELEASE,
      onScheduled: (trigger) => metrics.studiesEnqueued.inc({ trigger }),
      onScheduleError: (StudyInstanceUID, err) =>
        log.error({ StudyInstanceUID, err: err.message }, 'could not schedule the study job; retrying (it stays pending)'),
    });
    const { requeued, invalid } = await assembler.requeuePending();
    if (requeued > 0) log.info({ requeued }, 're-queued studies whose job had not finished');
    rescoreRepaired = async (studies) => {
      log.warn({ studies: studies.length }, 'instances replayed from a write-ahead log were missing or damaged in the store (a crash before their checkpoint); scoring their studies again');
      for (const uid of studies) {
        await assembler.rescore(uid, randomUUID()).then(
          (outcome) => {
            if (outcome !== 'scheduled') log.info({ StudyInstanceUID: uid, outcome }, 'a repaired study is not scored again: retention deleted or is deleting its instances');
          },
          (err: Error) =>
            log.error({ StudyInstanceUID: uid, err: err.message }, 'could not schedule a repaired study to be scored again; add it to the pending set by hand (docs/operations.md)'),
        );
      }
    };
    const repaired = [...new Set([...repairedStudies, ...repairedEarly.splice(0)])];
    if (repaired.length > 0) await rescoreRepaired(repaired);
    if (invalid > 0) log.warn({ invalid, key: keys.pendingStudies() }, 'removed pending-set entries that are not a StudyInstanceUID');

    const readiness = async (): Promise<Readiness> => {
      const [redisOk, storeOk] = await Promise.all([
        redisCheck(redis, READINESS_TIMEOUT_MS),
        withTimeout(store.writable(), READINESS_TIMEOUT_MS, 'the store').then(
          () => ({ ok: true, detail: 'store and temp dir writable' }),
          (err: Error) => ({ ok: false, detail: err.message }),
        ),
      ]);
      const checks = { redis: redisOk, store: storeOk };
      return { status: redisOk.ok && storeOk.ok ? 'ready' : 'not ready', checks };
    };
    metricsServer = await startMetricsServer(metrics.registry, settings.METRICS_HOST, settings.METRICS_PORT, readiness);
    const scp = {
        settings: {
          policy: {
            calledAeTitle: settings.DICOM_AE_TITLE,
            allowList,
            maxAssociations: settings.DICOM_MAX_ASSOCIATIONS,
            aeFromCertificate: settings.DICOM_TLS_AE_FROM_CERT,
          },
          otherStorage: settings.DICOM_OTHER_STORAGE,
          idleTimeoutMs: settings.DICOM_IDLE_TIMEOUT_SECONDS * 1000,
          artimTimeoutMs: settings.DICOM_ARTIM_TIMEOUT_SECONDS * 1000,
          maxPduLength: settings.DICOM_MAX_PDU_LENGTH,
          completeOnRelease: settings.STUDY_COMPLETE_ON_RELEASE,
          maxConnections: settings.DICOM_MAX_CONNECTIONS,
          maxConnectionsPerPeer: settings.DICOM_MAX_CONNECTIONS_PER_PEER,
        },
        store,
        assembler,
        metrics,
        log,
    };
    let port = 0;
    if (!settings.DICOM_TLS_ONLY) {
      const plain = new DicomServer({ host: settings.DICOM_HOST, port: settings.DICOM_PORT, scp });
      servers.push(plain);
      port = await plain.listen();
    }
    let tlsPort: number | undefined;
    if (settings.DICOM_TLS_PORT !== undefined) {
      const secure = new DicomServer({ host: settings.DICOM_HOST, port: settings.DICOM_TLS_PORT, scp, tls: tlsOptions(settings) });
      servers.push(secure);
      tlsPort = await secure.listen();
    }
    log.info(
      { port, tlsPort, host: settings.DICOM_HOST, aeTitle: settings.DICOM_AE_TITLE, metricsPort: metricsServer.port },
      'DICOM listener ready',
    );

    const openQueue = queue;
    const openMetrics = metricsServer;
    let closing: Promise<void> | undefined;
    return {
      port,
      tlsPort,
      metricsPort: openMetrics.port,
      metrics,
      requeued,
      close() {
        closing ??= (async () => {
          await Promise.all(servers.map((s) => s.close(settings.SHUTDOWN_TIMEOUT_SECONDS * 1000)));
          await assembler.drain();
          await store.close();
          await openQueue.close();
          if (ownRedis) await redis.quit().catch(() => redis.disconnect());
          await openMetrics.close();
          log.info('DICOM listener stopped');
        })();
        return closing;
      },
    };
  } catch (err) {
    // A DICOM port already listening (the TLS one failed after it) is closed too, not left accepting associations.
    await Promise.allSettled(servers.map((s) => s.close(0)));
    await queue?.close().catch(() => undefined);
    await metricsServer?.close();
    await store.close();
    if (ownRedis) redis.disconnect();
    throw err;
  }
}
