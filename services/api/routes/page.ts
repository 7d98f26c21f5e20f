// The worklist page: static HTML, JS and CSS from services/api/public, no build step and nothing from a CDN.
// The files carry no data (every number on the page comes from the token-protected API), so they are public.
// A strict Content-Security-Policy allows only this origin's scripts, styles and fetches.
import { existsSync } from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

const CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:", "connect-src 'self'",
  "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
].join('; ');

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
