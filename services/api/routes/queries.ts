// Triage queries: list and read for readers; create, replace, delete, restore and calibrate for admins. The rules
// (layers, language check, calibration) live in query-service.ts; writes go through shared/queries.ts, which bumps
// the version and publishes it, so every worker re-embeds the changed sentence and scores with it from its next
// study: no restart. POST /api/v1/text-check says how well the model knows a text without saving anything.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { loadedModel } from '../app';
import { checkTexts } from '../language';
import { assertFreeText } from '../free-text';
import { HttpProblem } from '../plugins/problems';
import type { QueryService } from '../query-service';
import type { EmbedText } from '../report-check';
import type { ModelStatus } from '../app';
import {
  QueriesResponse, QueryBody, QueryBodyNoId, QueryCalibrateResponse, QueryDeleteResponse, QueryIdParams, QueryRestoreResponse, QuerySaveResponse,
  QueryViewSchema, TextCheckBody, TextCheckSchema, problems,
} from '../schemas';

export interface QueryRouteOptions {
  service: QueryService;
  modelStatus: () => ModelStatus;
  embed: EmbedText;
}

export async function queryRoutes(fastify: FastifyInstance, opts: QueryRouteOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { service } = opts;
  const admin = { role: 'admin' as const };
  const refusals = { 409: problems[404], 422: problems[400] };

  app.get('/api/v1/queries', { schema: { tags: ['queries'], summary: 'The triage queries studies are judged with, their calibration and threshold in use', response: { 200: QueriesResponse, ...problems } } }, async (request) => {
    const res = await service.list();
    await app.audit(request, 'queries.read', { queryVersion: res.version, count: res.queries.length });
    return res;
  });

  app.get(
    '/api/v1/queries/:id',
    { schema: { tags: ['queries'], params: QueryIdParams, response: { 200: QueryViewSchema, ...problems } } },
    async (request) => {
      const q = await service.find(request.params.id);
      if (!q) throw new HttpProblem(404, `no triage query "${request.params.id}"`);
      // A read like the list's: every read under /api/v1 is audited (docs/security.md).
      await app.audit(request, 'queries.read', { queryId: q.id });
      return q;
    },
  );

  app.post(
    '/api/v1/queries',
    {
      config: admin,
      schema: {
        tags: ['queries'], summary: 'Create a site query (admin); checked for language and calibrated from this site\'s reports',
        body: QueryBody, response: { 201: QuerySaveResponse, ...refusals, ...problems },
      },
    },
    async (request, reply) => {
      assertFreeText([{ field: 'body/text', value: request.body.text }, { field: 'body/negativeText', value: request.body.negativeText, needsText: true }]);
      const out = await service.save(request.body, 'create');
      await app.audit(request, 'query.create', { queryId: out.query.id, queryVersion: out.version });
      reply.code(201).header('Location', `/api/v1/queries/${out.query.id}`);
      return out;
    },
  );

  app.put(
    '/api/v1/queries/:id',
    {
      config: admin,
      schema: {
        tags: ['queries'], summary: 'Replace a query (admin); an edited bundle default becomes a site query',
        params: QueryIdParams, body: QueryBodyNoId, response: { 200: QuerySaveResponse, ...refusals, ...problems },
      },
    },
    async (request) => {
      assertFreeText([{ field: 'body/text', value: request.body.text }, { field: 'body/negativeText', value: request.body.negativeText, needsText: true }]);
      const out = await service.save({ ...request.body, id: request.params.id }, 'replace');
      await app.audit(request, 'query.update', { queryId: out.query.id, queryVersion: out.version });
      return out;
    },
  );

  app.delete(
    '/api/v1/queries/:id',
    { config: admin, schema: { tags: ['queries'], summary: 'Delete a site query, or turn a bundle default off (admin)', params: QueryIdParams, response: { 200: QueryDeleteResponse, ...problems } } },
    async (request) => {
      const out = await service.remove(request.params.id);
      // outcome: deleted (a site query), disabled (a bundle default turned off) or restored-default (a site edit of a
      // default removed, the default back): the audit log says which, as the answer does.
      await app.audit(request, 'query.delete', { queryId: request.params.id, queryVersion: out.version, outcome: out.action });
      return out;
    },
  );

  app.post(
    '/api/v1/queries/:id/restore',
    { config: admin, schema: { tags: ['queries'], summary: 'Back to the bundle\'s default of this id (admin)', params: QueryIdParams, response: { 200: QueryRestoreResponse, ...problems } } },
    async (request) => {
      const out = await service.restore(request.params.id);
      await app.audit(request, 'query.restore', { queryId: request.params.id, queryVersion: out.version });
      return out;
    },
  );

  app.post(
    '/api/v1/queries/:id/calibrate',
    { config: admin, schema: { tags: ['queries'], summary: 'Calibrate a site query from this site\'s reports now (admin)', params: QueryIdParams, response: { 200: QueryCalibrateResponse, 409: problems[404], ...problems } } },
    async (request) => {
      const out = await service.recalibrate(request.params.id);
      await app.audit(request, 'query.calibrate', { queryId: request.params.id, ...(out.version !== null ? { queryVersion: out.version } : {}) });
      return out;
    },
  );

  app.post(
    '/api/v1/text-check',
    { schema: { tags: ['queries'], summary: 'How well the model knows a text (before saving a query or searching)', body: TextCheckBody, response: { 200: TextCheckSchema, ...problems } } },
    async (request) => {
      assertFreeText([{ field: 'body/text', value: request.body.text }]);
      const model = loadedModel(opts.modelStatus());
      const [check] = await checkTexts(model.language, (texts) => opts.embed(texts, request.user?.name), [request.body.text]);
      await app.audit(request, 'text-check', { textLength: request.body.text.length });
      return check;
    },
  );
}
