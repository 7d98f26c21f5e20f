// Triage queries: list and read for readers; create, replace and delete for admins. Writes go through
// shared/queries.ts changeQuery(), which bumps the version and publishes it, so every worker re-embeds the
// changed sentence and scores with it from its next study: no restart.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Redis } from 'ioredis';
import type { TriageQuery } from '../../../shared/model-manifest';
import { changeQuery, queryKeys, readQueries } from '../../../shared/queries';
import { HttpProblem } from '../plugins/problems';
import { QueriesResponse, QueryBody, QueryBodyNoId, QueryChangeResponse, QueryIdParams, TriageQuerySchema, problems } from '../schemas';

/** Checks the schema cannot express; each message names the field. */
function checkQuery(q: TriageQuery): void {
  if (q.negativeText !== undefined && q.negativeText.trim().toLowerCase() === q.text.trim().toLowerCase()) {
    throw new HttpProblem(400, 'body/negativeText must differ from body/text: the score would always be 0');
  }
  if (q.text.trim().length < 3) throw new HttpProblem(400, 'body/text must have at least 3 characters besides spaces');
}

export async function queryRoutes(fastify: FastifyInstance, opts: { redis: Redis }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const exists = async (id: string) => (await opts.redis.hexists(queryKeys.queries(), id)) === 1;
  const admin = { role: 'admin' as const };

  app.get('/api/v1/queries', { schema: { tags: ['queries'], summary: 'All triage queries and their version', response: { 200: QueriesResponse, ...problems } } }, async (request) => {
    const res = await readQueries(opts.redis);
    await app.audit(request, 'queries.read', { queryVersion: res.version, count: res.queries.length });
    return res;
  });

  app.get(
    '/api/v1/queries/:id',
    { schema: { tags: ['queries'], params: QueryIdParams, response: { 200: TriageQuerySchema, ...problems } } },
    async (request) => {
      const { queries } = await readQueries(opts.redis);
      const q = queries.find((x) => x.id === request.params.id);
      if (!q) throw new HttpProblem(404, `no triage query "${request.params.id}"`);
      return q;
    },
  );

  app.post(
    '/api/v1/queries',
    { config: admin, schema: { tags: ['queries'], summary: 'Create a query (admin)', body: QueryBody, response: { 201: QueryChangeResponse, 409: problems[404], ...problems } } },
    async (request, reply) => {
      const q = request.body;
      checkQuery(q);
      if (await exists(q.id)) throw new HttpProblem(409, `a triage query "${q.id}" exists already; PUT /api/v1/queries/${q.id} replaces it`);
      const version = await changeQuery(opts.redis, { put: q });
      await app.audit(request, 'query.create', { queryId: q.id, queryVersion: version });
      reply.code(201).header('Location', `/api/v1/queries/${q.id}`);
      return { version, query: q };
    },
  );

  app.put(
    '/api/v1/queries/:id',
    { config: admin, schema: { tags: ['queries'], summary: 'Replace a query (admin)', params: QueryIdParams, body: QueryBodyNoId, response: { 200: QueryChangeResponse, ...problems } } },
    async (request) => {
      const q: TriageQuery = { ...request.body, id: request.params.id };
      checkQuery(q);
      if (!(await exists(q.id))) throw new HttpProblem(404, `no triage query "${q.id}"; POST /api/v1/queries creates one`);
      const version = await changeQuery(opts.redis, { put: q });
      await app.audit(request, 'query.update', { queryId: q.id, queryVersion: version });
      return { version, query: q };
    },
  );

  app.delete(
    '/api/v1/queries/:id',
    { config: admin, schema: { tags: ['queries'], summary: 'Delete a query (admin)', params: QueryIdParams, response: { 200: QueryChangeResponse, ...problems } } },
    async (request) => {
      const { id } = request.params;
      if (!(await exists(id))) throw new HttpProblem(404, `no triage query "${id}"`);
      const version = await changeQuery(opts.redis, { delete: id });
      await app.audit(request, 'query.delete', { queryId: id, queryVersion: version });
      return { version };
    },
  );
}
