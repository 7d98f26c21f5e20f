// Typed settings for every neurotriage process: read from the environment (and an optional JSON file named
// by NEUROTRIAGE_CONFIG_FILE), validated once at start, failing fast with messages a PACS administrator can act on.
// No module-level state: each process calls loadConfig() once in its main.ts and passes the result down.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { listenFailure } from './listen-failure';

const Port = Type.Integer({ minimum: 0, maximum: 65535 });
const AeTitle = Type.String({ pattern: '^[ -~]{1,16}$', description: '1-16 printable ASCII characters' });

export const ConfigSchema = Type.Object({
  /** Redis for queues and study state; unset means "start a private local Redis" (npm start only). */
  REDIS_URL: Type.Optional(Type.String({ minLength: 1 })),
  DICOM_PORT: Port,
  DICOM_HOST: Type.String({ minLength: 1 }),
  DICOM_AE_TITLE: AeTitle,
  /** Comma-separated calling AE titles allowed to store, each optionally AE@host. Empty means nobody. "*" means anybody. */
  DICOM_ALLOWED_CALLING_AES: Type.String(),
  DICOM_MAX_ASSOCIATIONS: Type.Integer({ minimum: 1, maximum: 1000 }),
  /** At most a day: a longer timer would overflow Node's 2^31-1 ms and fire at once. */
  DICOM_IDLE_TIMEOUT_SECONDS: Type.Number({ exclusiveMinimum: 0, maximum: 86400 }),
  /**
   * Storage SOP classes other than MR: "accept-and-ignore" (default: Success without storing, so a study sent whole
   * with its SR or other series succeeds) or "reject" (not negotiated).
   */
  DICOM_OTHER_STORAGE: Type.Union([Type.Literal('reject'), Type.Literal('accept-and-ignore')]),
  /** Refuse instances (A700) when free disk under DATA_DIR drops below this many megabytes. */
  DISK_MIN_FREE_MB: Type.Number({ minimum: 0 }),
  API_PORT: Port,
  API_HOST: Type.String({ minLength: 1 }),
  METRICS_PORT: Port,
  DATA_DIR: Type.String({ minLength: 1 }),
  STUDY_QUIET_SECONDS: Type.Number({ minimum: 0, maximum: 86400 }),
  /** Complete a study as soon as the association that sent it is released (see docs/architecture.md). */
  STUDY_COMPLETE_ON_RELEASE: Type.Boolean(),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l))),
  /**
   * At most a day: Node timers hold at most 2^31-1 ms (24.8 days) and fire after 1 ms beyond it, which made a
   * "never kill" value SIGKILL every process of npm start at once.
   */
  SHUTDOWN_TIMEOUT_SECONDS: Type.Number({ exclusiveMinimum: 0, maximum: 86400 }),
});

export type Config = Static<typeof ConfigSchema>;

export const DEFAULTS: Omit<Config, 'REDIS_URL'> = {
  DICOM_PORT: 11112,
  DICOM_HOST: '127.0.0.1',
  DICOM_AE_TITLE: 'NEUROTRIAGE',
  DICOM_ALLOWED_CALLING_AES: '',
  DICOM_MAX_ASSOCIATIONS: 16,
  DICOM_IDLE_TIMEOUT_SECONDS: 60,
  DICOM_OTHER_STORAGE: 'accept-and-ignore',
  DISK_MIN_FREE_MB: 1024,
  API_PORT: 8080,
  API_HOST: '127.0.0.1',
  METRICS_PORT: 9464,
  DATA_DIR: './var',
  STUDY_QUIET_SECONDS: 5,
  STUDY_COMPLETE_ON_RELEASE: false,
  LOG_LEVEL: 'info',
  SHUTDOWN_TIMEOUT_SECONDS: 30,
};

/**
 * Exit status of a service stopped by a bad setting (EX_CONFIG of sysexits.h): restarting it cannot help, so
 * `npm start` stops everything instead of restarting it.
 */
export const EXIT_CONFIG = 78;

export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * A process that could not start: its reason on stderr (a bad setting's message alone), and EXIT_CONFIG or 1. A port
 * it cannot listen on counts as a bad setting (shared/listen-failure.ts).
 */
export function exitOnStartFailure(err: unknown): never {
  const listen = listenFailure(err);
  const setting = listen === undefined ? err : new ConfigError([listen]);
  console.error(setting instanceof ConfigError ? setting.message : setting);
  process.exit(setting instanceof ConfigError ? EXIT_CONFIG : 1);
}

type Source = Record<string, string | undefined>;

function readFile(file: string): Source {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError([`NEUROTRIAGE_CONFIG_FILE ${file}: ${(err as Error).message}`]);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError([`NEUROTRIAGE_CONFIG_FILE ${file}: must hold a JSON object of settings`]);
  }
  return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, v === null ? undefined : String(v)]));
}

/**
 * Builds the configuration from defaults < config file < environment. Keys outside the schema are ignored
 * (the environment holds much else); values are converted from strings ("5" -> 5, "true" -> true).
 * Extra keys a service defines for itself are validated by the `extend` schema's owner with loadSection().
 */
export function loadConfig(env: Source = process.env): Config {
  const config = loadSection(ConfigSchema, DEFAULTS, settingsSource(env));
  // Anything but these reached ioredis as a path or a host (http://h:6379 became the unix socket "//h:6379") and
  // failed later as a connection error in a restart loop. The value is not echoed: it may carry a password.
  if (config.REDIS_URL !== undefined && !REDIS_URL_FORM.test(config.REDIS_URL)) {
    throw new ConfigError(['REDIS_URL: expected redis://[:password@]host:port[/db], rediss://... (TLS) or unix:///path/to/redis.sock (value not shown: it may hold a password)']);
  }
  checkTimeZone(env.TZ);
  return config;
}

/**
 * TZ, the runtime's own setting, is the site's zone for the SR's dates and times and for report times without an
 * offset. A name the runtime does not know ("Europe/Londn") was taken silently as UTC.
 */
function checkTimeZone(tz: string | undefined): void {
  if (tz === undefined || tz === '') return;
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz.replace(/^:/, '') });
  } catch {
    throw new ConfigError([`TZ: "${tz}" is not a time zone this runtime knows: use an IANA name such as Europe/London, or UTC`]);
  }
}

/** The REDIS_URL forms shared/redis.ts connectRedis() takes. */
const REDIS_URL_FORM = /^(rediss?:\/\/[^\s/]+(\/\d*)?(\?\S*)?|unix:\/\/\/\S+)$/;

/**
 * The settings every loader reads: the JSON file named by NEUROTRIAGE_CONFIG_FILE, overridden by the environment.
 * Each service's own section (loadSection) reads this too, so the file works for every setting.
 */
export function settingsSource(env: Source = process.env): Source {
  return env.NEUROTRIAGE_CONFIG_FILE ? { ...readFile(env.NEUROTRIAGE_CONFIG_FILE), ...env } : env;
}

/** Validates one schema's keys from a string source; shared by loadConfig and service-specific sections. */
export function loadSection<S extends ReturnType<typeof Type.Object>>(
  schema: S,
  defaults: Partial<Static<S>>,
  source: Source,
): Static<S> {
  const raw: Record<string, unknown> = { ...defaults };
  for (const key of Object.keys(schema.properties)) {
    const value = source[key];
    if (value !== undefined && value !== '') raw[key] = value;
    else if (value === '' && typeof (defaults as Record<string, unknown>)[key] === 'string') raw[key] = '';
  }
  const converted = Value.Convert(schema, raw);
  const problems = [...Value.Errors(schema, converted)].map((e) => {
    const key = e.path.replace(/^\//, '') || '(root)';
    // The message goes to stderr, i.e. the container log: a key or a URL carrying a token is named, not shown.
    const shown = (e.schema as { secret?: unknown }).secret === true ? ' (value not shown)' : `=${JSON.stringify(raw[key] ?? null)}`;
    return `${key}${shown}: ${allowedValues(e.schema) ?? e.message}`;
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return converted as Static<S>;
}

/**
 * The values a setting of a fixed set takes, for its message: TypeBox says only "Expected union value" for
 * LOG_LEVEL=verbose and "Expected boolean" for STUDY_COMPLETE_ON_RELEASE=yes, which leaves the administrator to
 * read the source. Undefined for any other schema (its own message says what is wrong).
 */
function allowedValues(schema: unknown): string | undefined {
  const s = schema as { anyOf?: { const?: unknown }[]; type?: unknown };
  if (s.type === 'boolean') return 'expected true or false';
  const options = s.anyOf?.map((o) => o.const);
  if (!options || options.length === 0 || options.some((o) => typeof o !== 'string' && typeof o !== 'number')) return undefined;
  return `expected one of ${options.join(', ')}`;
}

/** Resolves DATA_DIR against the working directory, once, so every module agrees on the same absolute path. */
export function dataDir(config: Pick<Config, 'DATA_DIR'>): string {
  return path.resolve(config.DATA_DIR);
}
