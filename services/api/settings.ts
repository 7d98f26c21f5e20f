// API-only settings (loaded beside the shared Config with loadSection) and the bearer-token table they name.
// Tokens come from API_TOKENS as "token:role:name,..." or from a JSON file it points at; both are validated
// once at start so a typo fails the process with a message instead of locking every radiologist out later.
import { readFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ConfigError } from '../../shared/config';

/** Least to most: `metrics` may only scrape /metrics (Prometheus), `reader` reads studies, `admin` also edits queries. */
export const ROLES = ['metrics', 'reader', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const ApiSettingsSchema = Type.Object({
  /** "token:role:name,..." or a path to a JSON file holding [{ token, role, name }]. */
  API_TOKENS: Type.String(),
  API_RATE_LIMIT_MAX: Type.Integer({ minimum: 1 }),
  API_RATE_LIMIT_WINDOW_SECONDS: Type.Number({ exclusiveMinimum: 0 }),
  /** PEM files; both or neither. Without them the API speaks plain HTTP (behind a TLS-terminating proxy). */
  API_TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1 })),
  API_TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** Append-only JSONL audit log; relative paths are under DATA_DIR. */
  API_AUDIT_LOG_FILE: Type.String({ minLength: 1 }),
  /** Cosine between a report sentence and a query text at or above which the sentence "mentions" the finding. */
  API_REPORT_MENTION_SIMILARITY: Type.Number({ minimum: -1, maximum: 1 }),
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

export const API_DEFAULTS: Omit<ApiSettings, 'API_TLS_CERT_FILE' | 'API_TLS_KEY_FILE'> = {
  API_TOKENS: '',
  API_RATE_LIMIT_MAX: 600,
  API_RATE_LIMIT_WINDOW_SECONDS: 60,
  API_AUDIT_LOG_FILE: 'audit/api-audit.jsonl',
  API_REPORT_MENTION_SIMILARITY: 0.6,
  API_TRUST_PROXY: '',
  MODELS_DIR: './onnx-models',
};

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

/** Fastify's trustProxy value for API_TRUST_PROXY. */
export function trustProxy(value: string): boolean | number | string[] {
  const v = value.trim();
  if (v === '' || v === 'false') return false;
  if (v === 'true') return true;
  // A hop count: the client is the address that many proxies back (Fastify/proxy-addr semantics).
  if (/^\d+$/.test(v)) return Number(v);
  return v.split(',').map((s) => s.trim()).filter(Boolean);
}
