// Liveness (/livez, and /healthz as before: the process answers; never waits on Redis or the models, so a frozen
// Redis cannot get API pods restarted) and readiness (/readyz: 503 only when Redis does not answer a PING within
// 1 s, the one thing every route needs). The text encoder and DATA_DIR's free space are reported as checks too, and
// a failed one makes the status "degraded" with 200: without them search, ad-hoc scoring and report checks answer 503
// with the reason, but the worklist, studies and queries still serve, so a bad bundle or a disk alert must not take
// every API pod off the Service (radiologists would lose the worklist, STAT studies included). All are public and not
// rate limited: probes poll them.
import { statfs } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Redis } from 'ioredis';
import { redisCheck } from '../../../shared/health';
import type { ModelStatus } from '../app';

const Check = Type.Object({ ok: Type.Boolean(), detail: Type.String() });
const Ready = Type.Object({ status: Type.Union([Type.Literal('ready'), Type.Literal('degraded'), Type.Literal('not ready')]), checks: Type.Object({ redis: Check, models: Check, disk: Check }) });

export interface HealthOptions {
  redis: Redis;
  modelStatus: () => ModelStatus;
  dataDir: string;
  diskMinFreeMb: number;
}

export async function healthRoutes(fastify: FastifyInstance, opts: HealthOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const config = { public: true, rateLimit: false } as const;
  const live = { config, schema: { tags: ['health'], security: [], response: { 200: Type.Object({ status: Type.Literal('ok') }) } } };
  app.get('/livez', live, async () => ({ status: 'ok' as const }));
  app.get('/healthz', live, async () => ({ status: 'ok' as const }));

  app.get('/readyz', { config, schema: { tags: ['health'], security: [], response: { 200: Ready, 503: Ready } } }, async (_request, reply) => {
    const redis = await redisCheck(opts.redis);
    const m = opts.modelStatus();
    const models = { ok: m.loaded, detail: m.loaded ? `${m.bundleId} ${m.version}` : (m.detail ?? 'text encoder not loaded') };
    const disk = await statfs(opts.dataDir)
      .then((s) => {
        const freeMb = (s.bavail * s.bsize) / 1048576;
        return { ok: freeMb >= opts.diskMinFreeMb, detail: `${Math.floor(freeMb)} MB free, need ${opts.diskMinFreeMb}` };
      })
      .catch((err: Error) => ({ ok: false, detail: err.message }));
    reply.code(redis.ok ? 200 : 503);
    const status = !redis.ok ? ('not ready' as const) : models.ok && disk.ok ? ('ready' as const) : ('degraded' as const);
    return { status, checks: { redis, models, disk } };
  });
}
