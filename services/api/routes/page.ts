// The worklist page: static HTML, JS and CSS from services/api/public, no build step and nothing from a CDN.
// The files carry no data (every number on the page comes from the token-protected API), so they are public.
// A strict Content-Security-Policy allows only this origin's scripts, styles and fetches.
import { existsSync } from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { problemBody, targetPath } from '../plugins/problems';

const CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:", "connect-src 'self'",
  "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
].join('; ');

/** What @fastify/static's refusals mean (its own errors say only "Forbidden" and "Bad Request"). */
const STATIC_DETAILS: Record<number, string> = {
  403: "only the page's own files are served: this path climbs out of its folder (..) or names a folder or a hidden file",
  400: 'this path holds a NUL byte or a percent-encoding that does not decode',
};

/**
 * The error handler of a scope serving static files (the page's, and /docs's assets): @fastify/static's 403 and 400
 * say what is wrong; anything else goes on to the problems plugin's handler.
 */
export function staticRefusal(err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const status = err.statusCode ?? 500;
  const detail = STATIC_DETAILS[status];
  if (!detail) throw err;
  return reply.code(status).type('application/problem+json').send(problemBody(status, detail, targetPath(request.url)));
}

/** services/api/public beside the sources; from dist/services/api the sources are three folders up. */
export function findPublicDir(from = __dirname): string {
  const candidates = [path.join(from, '..', 'public'), path.join(from, '..', '..', '..', '..', 'services', 'api', 'public')];
  const found = candidates.find((c) => existsSync(path.join(c, 'index.html')));
  if (!found) throw new Error(`worklist page files not found (looked in ${candidates.join(', ')})`);
  return found;
}

export async function pageRoutes(app: FastifyInstance, opts: { publicDir: string }): Promise<void> {
  app.addHook('onRoute', (route) => {
    route.config = { ...(route.config ?? {}), public: true };
    route.schema = { ...(route.schema ?? {}), hide: true };
  });
  // This plugin's scope only (the static routes): a refusal says what is wrong; anything else goes to the problems
  // plugin's handler.
  app.setErrorHandler(staticRefusal);
  await app.register(fastifyStatic, {
    root: opts.publicDir,
    prefix: '/',
    index: ['index.html'],
    cacheControl: true,
    maxAge: 0,
    setHeaders(res) {
      res.setHeader('Content-Security-Policy', CSP);
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.setHeader('Referrer-Policy', 'no-referrer');
      res.setHeader('X-Frame-Options', 'DENY');
    },
  });
}
