// The listener's settings: the shared ones it uses (shared/config.ts) plus a few of its own, validated together
// once at start. The listener-only keys have safe defaults so nobody needs to set them.
import { Type, type Static } from '@sinclair/typebox';
import { ConfigError, loadConfig, loadSection, dataDir, settingsSource, type Config } from '../../shared/config';

export const ListenerSectionSchema = Type.Object({
  /** Address the /metrics endpoint binds; loopback by default (scrape through a local agent or a sidecar). */
  METRICS_HOST: Type.String({ minLength: 1 }),
  /** Largest P-DATA PDU we accept (our A-ASSOCIATE-AC maximum length); larger PDUs mean fewer per-PDU costs. */
  DICOM_MAX_PDU_LENGTH: Type.Integer({ minimum: 4096, maximum: 262144 }),
  /** A data set up to this size is held in memory and written with one call; larger ones stream to the temp file. */
  DICOM_SPOOL_MEMORY_MB: Type.Number({ minimum: 1, maximum: 1024 }),
  /**
   * Size of the write-ahead log in this listener's temp dir: an instance held in memory is flushed there before
   * Success (one flush, no file system metadata) and its own file a moment later. 0: each instance's file and
   * directory are flushed before Success instead.
   */
  DICOM_WAL_MB: Type.Integer({ minimum: 0, maximum: 4096 }),
  /** A second port for DICOM over TLS (PS3.15 B.1; 2762 is the registered one). Unset: no TLS. 0: OS-chosen. */
  DICOM_TLS_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  /** PEM server certificate (chain) and private key; required with DICOM_TLS_PORT. */
  DICOM_TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1 })),
  DICOM_TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** PEM CA bundle that signs the peers' client certificates; without it the system CAs are used. */
  DICOM_TLS_CA_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** "require": a peer without a valid client certificate is refused during the handshake. */
  DICOM_TLS_CLIENT_CERT: Type.Union([Type.Literal('require'), Type.Literal('optional')]),
  /** Serve TLS only: the plain DICOM port is not opened. */
  DICOM_TLS_ONLY: Type.Boolean(),
  /**
   * On the TLS port, the calling AE title must equal the common name (CN) of the peer's verified client
   * certificate, so a peer holding any certificate from the CA cannot claim another peer's AE title.
   */
  DICOM_TLS_AE_FROM_CERT: Type.Boolean(),
  /**
   * ARTIM (PS3.8 9.1.5): a new connection must deliver its whole A-ASSOCIATE-RQ within this time, and a peer we
   * sent A-ASSOCIATE-RJ must close within it; otherwise the listener closes the connection.
   */
  DICOM_ARTIM_TIMEOUT_SECONDS: Type.Number({ exclusiveMinimum: 0, maximum: 600 }),
  /** Open TCP connections one peer address may hold; more are closed at once (counted, logged). */
  DICOM_MAX_CONNECTIONS_PER_PEER: Type.Integer({ minimum: 1, maximum: 10000 }),
  /** Open TCP connections in all (associations and connections still negotiating); more are closed at once. */
  DICOM_MAX_CONNECTIONS: Type.Integer({ minimum: 1, maximum: 100000 }),
  /**
   * Longest wait for one Redis command on the C-STORE path (and readiness); past it the C-STORE answers A700
   * instead of hanging on a Redis that stopped answering.
   */
  LISTENER_REDIS_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60000 }),
});

export type ListenerSection = Static<typeof ListenerSectionSchema>;

export const LISTENER_DEFAULTS: ListenerSection = {
  METRICS_HOST: '127.0.0.1',
  DICOM_MAX_PDU_LENGTH: 65536,
  DICOM_SPOOL_MEMORY_MB: 16,
  DICOM_WAL_MB: 64,
  DICOM_TLS_CLIENT_CERT: 'require',
  DICOM_TLS_ONLY: false,
  DICOM_TLS_AE_FROM_CERT: false,
  DICOM_ARTIM_TIMEOUT_SECONDS: 10,
  DICOM_MAX_CONNECTIONS_PER_PEER: 8,
  DICOM_MAX_CONNECTIONS: 256,
  LISTENER_REDIS_TIMEOUT_MS: 3000,
};

export type ListenerSettings = Pick<
  Config,
  | 'REDIS_URL'
  | 'DICOM_PORT'
  | 'DICOM_HOST'
  | 'DICOM_AE_TITLE'
  | 'DICOM_ALLOWED_CALLING_AES'
  | 'DICOM_MAX_ASSOCIATIONS'
  | 'DICOM_IDLE_TIMEOUT_SECONDS'
  | 'DICOM_OTHER_STORAGE'
  | 'DISK_MIN_FREE_MB'
  | 'METRICS_PORT'
  | 'DATA_DIR'
  | 'STUDY_QUIET_SECONDS'
  | 'STUDY_COMPLETE_ON_RELEASE'
  | 'LOG_LEVEL'
  | 'SHUTDOWN_TIMEOUT_SECONDS'
> &
  ListenerSection;

/** Reads and validates everything the listener process needs; DATA_DIR comes back absolute. */
export function loadListenerSettings(env: Record<string, string | undefined> = process.env): ListenerSettings {
  const shared = loadConfig(env);
  const own = loadSection(ListenerSectionSchema, LISTENER_DEFAULTS, settingsSource(env));
  const problems: string[] = [];
  if (own.DICOM_TLS_PORT !== undefined && (!own.DICOM_TLS_CERT_FILE || !own.DICOM_TLS_KEY_FILE)) {
    problems.push('DICOM_TLS_PORT is set: DICOM_TLS_CERT_FILE and DICOM_TLS_KEY_FILE are required');
  }
  if (own.DICOM_TLS_ONLY && own.DICOM_TLS_PORT === undefined) problems.push('DICOM_TLS_ONLY=true needs DICOM_TLS_PORT');
  if (own.DICOM_TLS_AE_FROM_CERT && own.DICOM_TLS_CLIENT_CERT !== 'require') {
    problems.push('DICOM_TLS_AE_FROM_CERT=true needs DICOM_TLS_CLIENT_CERT=require (the AE title is checked against a verified certificate)');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { ...shared, ...own, DATA_DIR: dataDir(shared) };
}

/** Test and embedding helper: full settings from defaults plus overrides, without reading the environment. */
export function listenerSettings(overrides: Partial<ListenerSettings>): ListenerSettings {
  const base = loadListenerSettings({});
  return { ...base, ...overrides, DATA_DIR: dataDir({ DATA_DIR: overrides.DATA_DIR ?? base.DATA_DIR }) };
}
