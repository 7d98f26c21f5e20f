// GET /api/v1/events: Server-Sent Events for the worklist page. "scored" carries a StudyInstanceUID each time
// the worker writes a result, "queries" the new query version. The page reads it with fetch() so the bearer
// token travels in a header (EventSource cannot send one, and tokens in URLs end up in proxy logs). Streams are
// capped per user and per process, and one whose client stops reading is closed (plugins/live.ts).
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { userOf } from '../plugins/auth';
import { problems } from '../schemas';

/**
 * The stream names each study as it is scored (worklist data): no cache keeps it, as for every /api/v1 answer (it was
 * no-cache, which lets one store it); no-transform keeps a proxy from compressing, and so buffering, the events.
 */
const STREAM_CACHE_CONTROL = 'no-store, no-transform';

export async function eventRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/api/v1/events',
    {
      schema: {
        tags: ['live'],
        summary: 'Live updates (text/event-stream): events "scored" and "queries"',
        response: { 200: { description: 'an endless event stream', content: { 'text/event-stream': { schema: Type.String() } } }, ...problems },
      },
    },
    async (request, reply) => {
      // HEAD (Fastify's automatic one, same handler): the stream's headers and the end. Hijacked and attached like a
      // GET it sent nothing at all (Node holds a HEAD's headers until the response ends), kept a live listener while
      // the client waited, and stalled every request behind it on the connection.
      if (request.method === 'HEAD') {
        return reply.type('text/event-stream; charset=utf-8').header('Cache-Control', STREAM_CACHE_CONTROL).send('');
      }
      // Past the user's or the process's cap: a 429 problem naming it. The place is taken now, before the audit
      // write, and given back if no stream opens with it.
      const place = app.live.reserve(userOf(request).name);
      let attached = false;
      try {
        await app.audit(request, 'events.subscribe');
        reply.hijack();
        const res = reply.raw;
        request.raw.socket.setNoDelay(true);
        res.writeHead(200, {
          'Content-Type': 'text/event-stream; charset=utf-8',
          'Cache-Control': STREAM_CACHE_CONTROL,
          // Hijacked: the app's onSend hook, which adds this to every other answer, never runs.
          'X-Content-Type-Options': 'nosniff',
          Connection: 'keep-alive',
          'X-Accel-Buffering': 'no',
        });
        res.write('retry: 3000\n: connected\n\n');
        place.attach(res);
        attached = true;
      } finally {
        if (!attached) place.release();
      }
    },
  );
}
