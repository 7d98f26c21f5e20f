// Bearer-token authentication with four roles, least to most: metrics (only /metrics, for Prometheus, so a scrape
// credential reads no study), reporter (also posts reports: the RIS's account), reader, admin. Every route needs a token unless its config says `public: true`
// (health probes, the page's static files, the API description). Routes needing more than reading say
// `role: 'admin'`; /metrics says `role: 'metrics'`. Tokens are compared as SHA-256 digests with timingSafeEqual against every configured
// token, so neither the match position nor the token length leaks through timing. Every refusal is audited.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ROLES, type ApiToken, type Role } from '../settings';
import { HttpProblem } from './problems';

export interface ApiUser {
  name: string;
  role: Role;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** No token needed (health, static page files, /docs). */
    public?: boolean;
    /** Least role allowed; default 'reader'. */
    role?: Role;
  }
  interface FastifyRequest {
    user: ApiUser | null;
  }
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export function createTokenVerifier(tokens: ApiToken[]): (presented: string) => ApiUser | null {
  const table = tokens.map((t) => ({ hash: digest(t.token), user: { name: t.name, role: t.role } }));
  return (presented) => {
    const h = digest(presented);
    let found: ApiUser | null = null;
    for (const entry of table) if (timingSafeEqual(h, entry.hash) && !found) found = entry.user;
    return found;
  };
}

const CHALLENGE = { 'WWW-Authenticate': 'Bearer realm="neurotriage"' };

export function bearerToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (!header) return null;
  const m = /^Bearer[ ]+([^\s]+)\s*$/i.exec(header);
  return m ? m[1] : null;
}

export const authPlugin = fp(async function auth(app: FastifyInstance, opts: { tokens: ApiToken[] }) {
  const verify = createTokenVerifier(opts.tokens);
  app.decorateRequest('user', null);
  // Every refusal is audited (action access.denied: who, from where, which route, why) before the answer leaves: a
  // SIEM looks for denied access first. The rate limiter runs before this hook, so guesses cannot flood the log. A
  // refusal discloses nothing, so an audit write that fails is logged and the refusal still answered.
  const deny = async (request: FastifyRequest, problem: HttpProblem, outcome: 'no-token' | 'invalid-token' | 'role'): Promise<never> => {
    if (app.hasDecorator('audit')) {
      await app.audit(request, 'access.denied', { route: `${request.method} ${request.routeOptions.url}`, outcome }).catch((err: unknown) => {
        request.log.error({ err }, 'audit log write failed for a refused request');
      });
    }
    throw problem;
  };
  const check = async (request: FastifyRequest) => {
    const config = request.routeOptions.config;
    if (config?.public) return;
    const token = bearerToken(request);
    if (!token) {
      return deny(request, new HttpProblem(401, 'this route needs a bearer token: send "Authorization: Bearer <token>"', CHALLENGE), 'no-token');
    }
    const user = verify(token);
    if (!user) return deny(request, new HttpProblem(401, 'the bearer token is not one this API knows', { 'WWW-Authenticate': 'Bearer realm="neurotriage", error="invalid_token"' }), 'invalid-token');
    request.user = user;
    const needed = config?.role ?? 'reader';
    if (ROLES.indexOf(user.role) < ROLES.indexOf(needed)) {
      return deny(request, new HttpProblem(403, `${request.method} ${request.routeOptions.url} needs the ${needed} role; "${user.name}" has ${user.role}`), 'role');
    }
  };
  // A route-level hook appended after the rate limiter's (registered earlier), so failed guesses are counted.
  app.addHook('onRoute', (route) => {
    const existing = route.onRequest ? (Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]) : [];
    route.onRequest = [...existing, check];
  });
});

/** The authenticated user; routes behind auth can rely on it being set. */
export function userOf(request: FastifyRequest): ApiUser {
  if (!request.user) throw new HttpProblem(401, 'not authenticated');
  return request.user;
}
