// Per-client rate limit (@fastify/rate-limit, in-memory: one API process per site). Runs before authentication
// so token guessing is limited too; keyed by client address. Health probes opt out with
// config.rateLimit = false: orchestrators poll them. Register before auth and the routes (it works per route).
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { HttpProblem } from './problems';

export const rateLimitPlugin = fp(async function limits(app: FastifyInstance, opts: { max: number; windowSeconds: number }) {
  await app.register(rateLimit, {
    global: true,
    max: opts.max,
    timeWindow: opts.windowSeconds * 1000,
    hook: 'onRequest',
    errorResponseBuilder: (_request, ctx) =>
      // ctx.after is the time left until the budget refills, not the window: the window is the setting.
      // limit "rate" tells it from a live-update stream's caps (plugins/live.ts) without reading the detail.
      new HttpProblem(
        429,
        `more than ${ctx.max} requests in ${opts.windowSeconds} s; retry after ${Math.ceil(ctx.ttl / 1000)} s`,
        { 'Retry-After': String(Math.ceil(ctx.ttl / 1000)) },
        undefined,
        'rate',
      ),
  });
});
