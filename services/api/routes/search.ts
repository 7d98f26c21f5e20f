// GET /api/v1/search?q=: past studies ranked by cosine between their image vectors (combined as the worker
// combines them) and the embedded text. Brute force over every stored vector: at a site's scale (tens of thousands of studies, 512 floats each)
// that is a few tens of milliseconds and needs no index to keep in step; an ANN index is the step after that.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { ModelStatus } from '../app';
import { HttpProblem } from '../plugins/problems';
import type { EmbedText } from '../report-check';
import { SearchQuery, SearchResponse, problems } from '../schemas';
import type { StudyStore } from '../store';
import { studyCosine } from '../vectors';

export async function searchRoutes(fastify: FastifyInstance, opts: { store: StudyStore; embed: EmbedText; modelStatus: () => ModelStatus }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/api/v1/search',
    { schema: { tags: ['search'], summary: 'Past studies ranked by similarity to a description', querystring: SearchQuery, response: { 200: SearchResponse, ...problems } } },
    async (request) => {
      const { q, limit, offset } = request.query;
      const model = opts.modelStatus();
      if (!model.loaded) throw new HttpProblem(503, `the text encoder is not loaded (${model.detail ?? 'starting'}); try again shortly`);
      const [text] = await opts.embed([q]);
      const ranked: { StudyInstanceUID: string; AccessionNumber?: string; similarity: number; priority: 'STAT' | 'URGENT' | 'ROUTINE'; receivedAt: number }[] = [];
      for await (const uids of opts.store.scoredUids()) {
        const [results, vectors] = await Promise.all([opts.store.results(uids), opts.store.vectorsMany(uids)]);
        uids.forEach((uid, i) => {
          const r = results[i];
          const v = vectors[i];
          // Studies scored by another model bundle live in another embedding space: left out, not mis-ranked.
          if (!r || !v || r.model.bundleId !== model.bundleId || r.model.version !== model.version) return;
          const dim = (v.combined ?? Object.values(v.bySequence)[0])?.length;
          if (dim !== text.length) return;
          ranked.push({
            StudyInstanceUID: uid,
            ...(r.AccessionNumber ? { AccessionNumber: r.AccessionNumber } : {}),
            similarity: studyCosine(v, text),
            priority: r.priority,
            receivedAt: r.receivedAt,
          });
        });
      }
      ranked.sort((a, b) => b.similarity - a.similarity || b.receivedAt - a.receivedAt);
      const items = ranked.slice(offset, offset + limit);
      // The search text is free text a user typed: its length is audited, never its words.
      await app.audit(request, 'search', { studies: items.map((i) => i.StudyInstanceUID), count: items.length, textLength: q.length });
      return { total: ranked.length, offset, limit, items };
    },
  );
}
