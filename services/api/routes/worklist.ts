// GET /api/v1/worklist: scored studies in reading order (priority class, then probability, then arrival), with filters and
// cursor pagination; GET /api/v1/me tells the page who is signed in.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Priority } from '../../../shared/model-manifest';
import type { StudyStatus } from '../../../shared/studies';
import { HttpProblem } from '../plugins/problems';
import { userOf } from '../plugins/auth';
import { MeResponse, WorklistQuery, WorklistResponse, problems } from '../schemas';
import { BadCursorError, decodeCursor, type StudyStore } from '../store';

export async function worklistRoutes(fastify: FastifyInstance, opts: { store: StudyStore }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.get('/api/v1/me', { schema: { tags: ['session'], summary: 'The signed-in user and role', response: { 200: MeResponse, ...problems } } }, async (request) => userOf(request));

  app.get(
    '/api/v1/worklist',
    {
      schema: {
        tags: ['worklist'],
        summary: 'Scored studies ordered by priority, then the probability that set it, then arrival',
        querystring: WorklistQuery,
        response: { 200: WorklistResponse, ...problems },
      },
    },
    async (request) => {
      const q = request.query;
      let cursor;
      try {
        cursor = q.cursor ? decodeCursor(q.cursor) : undefined;
      } catch (err) {
        if (err instanceof BadCursorError) throw new HttpProblem(400, `querystring/cursor: ${err.message}`);
        throw err;
      }
      const page = await opts.store.worklist(
        {
          priority: q.priority?.split(',') as Priority[] | undefined,
          status: q.status?.split(',') as StudyStatus[] | undefined,
          flagged: q.flagged,
          since: q.since,
        },
        q.limit,
        cursor,
      );
      // UIDs only (docs/security.md): what the administrator needs to find and re-score them.
      if (page.unreadable.length > 0) request.log.warn({ studies: page.unreadable }, 'stored result unreadable: left off the worklist');
      await app.audit(request, 'worklist.read', { studies: page.items.map((i) => i.StudyInstanceUID), count: page.items.length });
      return page;
    },
  );
}
