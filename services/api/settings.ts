// API-only settings (loaded beside the shared Config with loadSection) and the bearer-token table they name.
// Tokens come from API_TOKENS as "token:role:name,..." or from a JSON file it points at; both are validated
// once at start so a typo fails the process with a message instead of locking every radiologist out later.
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { RedisOptions } from 'ioredis';
import { ConfigError } from '../../shared/config';

/**
 * Least to most: `metrics` may only scrape /metrics (Prometheus), `reporter` may also post radiologists' reports
 * (a RIS or interface-engine account that reads no study), `reader` reads studies, `admin` also edits queries.
 */
export const ROLES = ['metrics', 'reporter', 'reader', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const ApiSettingsSchema = Type.Object({
  /** "token:role:name,..." or a path to a JSON file holding [{ token, role, name }]. */
  API_TOKENS: Type.String(),
  API_RATE_LIMIT_MAX: Type.Integer({ minimum: 1 }),
  API_RATE_LIMIT_WINDOW_SECONDS: Type.Number({ exclusiveMinimum: 0 }),
  /**
   * Longest wait for one Redis command of the API (its connection's commandTimeout): past it the request answers 503
   * naming Redis instead of hanging while Redis does not answer. The worker and listener keep their own bounds.
   */
  API_REDIS_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000 }),
  /**
   * Live-update streams (GET /api/v1/events) one user (a token's name) may hold open, and this process in all: past
   * either, a new stream is answered 429 naming the cap. Each holds a socket, an event listener and heartbeats.
   */
  API_LIVE_MAX_STREAMS_PER_USER: Type.Integer({ minimum: 1, maximum: 100_000 }),
  API_LIVE_MAX_STREAMS: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
  /** Text-encoder runs (search, sentence scores, report checks) one user may have in flight; one more is a 429. */
  API_ENCODER_MAX_PER_USER: Type.Integer({ minimum: 1, maximum: 10_000 }),
  /**
   * Bytes a live-update stream may have written but not yet sent (the client reads slower than events come, or not
   * at all): past it the stream is closed and the page reconnects and reloads, instead of the process buffering
   * events for it without end.
   */
  API_LIVE_MAX_UNSENT_BYTES: Type.Integer({ minimum: 1024, maximum: 1024 * 1024 * 1024 }),
  /** PEM files; both or neither. Without them the API speaks plain HTTP (behind a TLS-terminating proxy). */
  API_TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1 })),
  API_TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** Append-only JSONL audit log; relative paths are under DATA_DIR. */
  API_AUDIT_LOG_FILE: Type.String({ minLength: 1 }),
  /**
   * Cosine between a report sentence and a query text at or above which the sentence "mentions" the finding (report
   * check and report pseudo-labels). Unset: the bundle's measured manifest.language.mentionSimilarity, else 0.6.
   */
  API_REPORT_MENTION_SIMILARITY: Type.Optional(Type.Number({ minimum: -1, maximum: 1 })),
  /** Zero-label calibration of site queries from reports: fewest past studies with a report, and pseudo-positives. */
  CALIBRATION_MIN_STUDIES: Type.Integer({ minimum: 10, maximum: 100_000 }),
  CALIBRATION_MIN_POSITIVES: Type.Integer({ minimum: 3, maximum: 10_000 }),
  /** The newest reported studies a calibration reads at most. */
  CALIBRATION_MAX_STUDIES: Type.Integer({ minimum: 10, maximum: 100_000 }),
  /** How often uncalibrated site queries are tried again while reports and results arrive; 0: only on edits. */
  CALIBRATION_INTERVAL_SECONDS: Type.Integer({ minimum: 0, maximum: 86_400 }),
  /**
   * Behind a reverse proxy: the proxies whose X-Forwarded-For is believed, so rate limits and the audit log see
   * the client's address rather than the proxy's: a number of hops ("1": the proxy in front, e.g. ingress-nginx),
   * a comma list of addresses/CIDRs, or "true" for any (then a client can name its own address).
   */
  API_TRUST_PROXY: Type.String(),
  /** The model bundle (same setting as the worker's); the API loads its text encoder on CPU. */
  MODELS_DIR: Type.String({ minLength: 1 }),
});
export type ApiSettings = Static<typeof ApiSettingsSchema>;

export const API_DEFAULTS: Omit<ApiSettings, 'API_TLS_CERT_FILE' | 'API_TLS_KEY_FILE' | 'API_REPORT_MENTION_SIMILARITY'> = {
  API_TOKENS: '',
  API_RATE_LIMIT_MAX: 600,
  API_RATE_LIMIT_WINDOW_SECONDS: 60,
  API_REDIS_TIMEOUT_MS: 3000,
  API_LIVE_MAX_STREAMS_PER_USER: 20,
  API_LIVE_MAX_STREAMS: 1000,
  API_ENCODER_MAX_PER_USER: 4,
  API_LIVE_MAX_UNSENT_BYTES: 1024 * 1024,
  API_AUDIT_LOG_FILE: 'audit/api-audit.jsonl',
  CALIBRATION_MIN_STUDIES: 30,
  CALIBRATION_MIN_POSITIVES: 5,
  CALIBRATION_MAX_STUDIES: 2000,
  CALIBRATION_INTERVAL_SECONDS: 300,
  API_TRUST_PROXY: '',
  MODELS_DIR: './onnx-models',
};

/** The API's Redis connection options on top of the producer role's (shared/redis.ts): each command bounded. */
export function apiRedisOptions(settings: Pick<ApiSettings, 'API_REDIS_TIMEOUT_MS'>): RedisOptions {
  return { commandTimeout: settings.API_REDIS_TIMEOUT_MS };
}

export const ApiTokenSchema = Type.Object({
  /** At least 16 characters from the base64url/base64 alphabet, so tokens survive headers and config files. */
  token: Type.String({ minLength: 16, maxLength: 512, pattern: '^[A-Za-z0-9._~+/=-]+$' }),
  role: Type.Union(ROLES.map((r) => Type.Literal(r))),
  /** Who the token belongs to, as written in the audit log (a user or system name, never a patient's). */
  name: Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\s:,][^:,]*$' }),
});
export type ApiToken = Static<typeof ApiTokenSchema>;

function looksLikeFile(value: string): boolean {
  return value.startsWith('/') || value.startsWith('./') || value.endsWith('.json');
}

/** Parses API_TOKENS; throws ConfigError naming every bad entry (without echoing the secret itself). */
export function parseTokens(value: string): ApiToken[] {
  let entries: unknown[];
  const source = looksLikeFile(value) ? `API_TOKENS file ${value}` : 'API_TOKENS';
  if (looksLikeFile(value)) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(value, 'utf8'));
      if (!Array.isArray(parsed)) throw new Error('must hold a JSON array of { token, role, name }');
      entries = parsed;
    } catch (err) {
      throw new ConfigError([`${source}: ${(err as Error).message}`]);
    }
  } else {
    entries = value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0)
      .map((s) => {
        const [token, role, ...name] = s.split(':');
        return { token, role, name: name.join(':') };
      });
  }
  const problems: string[] = [];
  const tokens: ApiToken[] = [];
  entries.forEach((entry, i) => {
    const errors = [...Value.Errors(ApiTokenSchema, entry)];
    if (errors.length > 0) {
      problems.push(`${source} entry ${i + 1}: ${errors.map((e) => `${e.path.replace(/^\//, '') || 'entry'} ${e.message}`).join('; ')}`);
    } else tokens.push(entry as ApiToken);
  });
  if (tokens.length === 0 && problems.length === 0) {
    problems.push(`${source}: no tokens configured, nobody could use the API (format "token:role:name,...", roles ${ROLES.join(', ')})`);
  }
  const seen = new Set<string>();
  for (const t of tokens) {
    if (seen.has(t.token)) problems.push(`${source}: the token of "${t.name}" is used twice`);
    seen.add(t.token);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return tokens;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Where a loopback-only API without API_TOKENS keeps its admin token (`npm start`; README). */
export const LOCAL_ADMIN_TOKEN_FILE = 'api-admin-token';

/**
 * The admin token of a loopback-only API without API_TOKENS, in DATA_DIR/api-admin-token (mode 0600, never
 * logged). Written once and reused at every later start, so a restart does not sign everybody out; a file that no
 * longer holds a valid token is replaced. Created with O_EXCL, so two processes starting together agree on one.
 */
export function localAdminToken(dir: string, log: (msg: string) => void): ApiToken {
  const file = path.join(dir, LOCAL_ADMIN_TOKEN_FILE);
  const read = (): string | undefined => {
    let token: string;
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return Value.Check(ApiTokenSchema, { token, role: 'admin', name: 'local-admin' }) ? token : undefined;
  };
  let token = read();
  if (!token) {
    mkdirSync(dir, { recursive: true });
    const fresh = randomBytes(24).toString('base64url');
    try {
      writeFileSync(file, `${fresh}\n`, { mode: 0o600, flag: 'wx' });
      token = fresh;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // Another process wrote one first (take it), or the file holds no valid token (replace it).
      token = read();
      if (!token) {
        writeFileSync(file, `${fresh}\n`, { mode: 0o600 });
        token = fresh;
      }
    }
    log(`API_TOKENS is empty: a local admin token was written to ${file} (loopback only; reused at later starts)`);
  }
  chmodSync(file, 0o600);
  return { token, role: 'admin', name: 'local-admin' };
}

/**
 * The token table of the API process: API_TOKENS, or without it on a loopback-only API one local admin token
 * (localAdminToken); on any other address an empty API_TOKENS is a configuration error.
 */
export function tokensFor(value: string, host: string, dir: string, log: (msg: string) => void): ApiToken[] {
  if (value.trim() !== '') return parseTokens(value);
  if (!LOOPBACK.has(host)) {
    throw new ConfigError([`API_TOKENS is empty and API_HOST=${host} is reachable from other machines: set API_TOKENS ("token:role:name,...")`]);
  }
  return [localAdminToken(dir, log)];
}

/**
 * Fastify's trustProxy value for API_TRUST_PROXY. A hop count N trusts the N nearest proxies whatever their
 * address (a function: Fastify's own number setting trusts nothing since 5.12, because a client that reaches the
 * API directly could then name its own address). Use it only where nothing but the proxy can reach API_PORT: in
 * Kubernetes the NetworkPolicy allow-api-from-ingress lets in only the ingress controller (and Prometheus).
 */
export function trustProxy(value: string): boolean | string[] | ((address: string, hop: number) => boolean) {
  const v = value.trim();
  if (v === '' || v === 'false') return false;
  if (v === 'true') return true;
  if (/^\d+$/.test(v)) {
    const hops = Number(v);
    return (_address, hop) => hop < hops;
  }
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  // Fastify compiles the list when the app is built: a typo there was a TypeError stack and exit 1 (npm start
  // restarted the API for ever) instead of a setting to fix.
  const bad = list.filter((entry) => !isTrustedProxyEntry(entry));
  if (bad.length > 0) {
    throw new ConfigError([
      `API_TRUST_PROXY: ${bad.map((b) => JSON.stringify(b)).join(', ')} is not an address; expected a hop count, true, false, or a comma list of IP addresses, CIDR ranges (10.1.0.0/16) and the names loopback, linklocal, uniquelocal`,
    ]);
  }
  return list;
}

/** What @fastify/proxy-addr takes in a trust list: a name, an IP address, or an address with a prefix length or netmask. */
function isTrustedProxyEntry(entry: string): boolean {
  if (entry === 'loopback' || entry === 'linklocal' || entry === 'uniquelocal') return true;
  const slash = entry.lastIndexOf('/');
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return false;
  if (slash === -1) return true;
  const range = entry.slice(slash + 1);
  if (/^\d{1,3}$/.test(range)) return Number(range) <= (family === 4 ? 32 : 128);
  return family === 4 && isIP(range) === 4;
}
