// GET /api/v1/search?q=: past studies ranked by the search score (shared/models/search.ts: the text scored like a
// triage query whose contrast sentence is the bundle's normal-study sentence), with how well the model knows the
// text (shared/language/check.ts). Text the model does not know gets a warning and no list: a ranking by a
// sentence the model cannot read would look meaningful and is not. Brute force over every stored vector: at a
// site's scale (tens of thousands of studies, a few hundred floats each) that is tens of milliseconds and needs no
// index to keep in step; an ANN index is the step after that.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { scoredSentences } from '../../../shared/models/scoring';
import { searchScore } from '../../../shared/models/search';
import { loadedModel, type ModelStatus } from '../app';
import { checkText } from '../../../shared/language/check';
import type { EmbedText } from '../report-check';
import { misreadWarning, noResultsWarning } from '../language';
import { assertFreeText } from '../free-text';
import { SearchQuery, SearchResponse, problems } from '../schemas';
import { UNREADABLE } from '../../../shared/result-schema';
import type { StudyStore } from '../store';
import { cosine, studyCosine } from '../vectors';

/** A search text at least this close (cosine) to the normal-study sentence is warned about: it ranks nothing. */
export const CONTRAST_SIMILARITY = 0.9;

type Item = { StudyInstanceUID: string; AccessionNumber?: string; score: number; similarity: number; priority: 'STAT' | 'URGENT' | 'ROUTINE'; receivedAt: number };

export async function searchRoutes(fastify: FastifyInstance, opts: { store: StudyStore; embed: EmbedText; modelStatus: () => ModelStatus }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/api/v1/search',
    { schema: { tags: ['search'], summary: 'Past studies ranked by how much more they look like a description than like a normal study', querystring: SearchQuery, response: { 200: SearchResponse, ...problems } } },
    async (request) => {
      const { q, limit, offset } = request.query;
      assertFreeText([{ field: 'querystring/q', value: q }]);
      const model = loadedModel(opts.modelStatus());
      const normal = model.language.normalText;
      // "no haemorrhage" searches for the studies without one (shared/models/scoring.ts scoredSentences).
      const { positive, contrast } = scoredSentences({ text: q, ...(normal ? { negativeText: normal } : {}) });
      // The typed text is embedded once: it is the positive side unless it states absence.
      const denies = positive !== q;
      const vectors = await opts.embed([q, ...(denies ? [positive] : []), ...(contrast ? [contrast] : [])], request.user?.name);
      const [typed, text, normalVector] = denies ? vectors : [vectors[0], vectors[0], vectors[1]];
      const language = checkText(q, model.language, typed);
      if (language.verdict === 'refused') {
        await app.audit(request, 'search', { studies: [], count: 0, textLength: q.length });
        return { total: 0, offset, limit, language, items: [], warning: noResultsWarning(language) };
      }
      const ranked: Item[] = [];
      for await (const uids of opts.store.scoredUids()) {
        const [results, vectors] = await Promise.all([opts.store.results(uids), opts.store.vectorsMany(uids)]);
        uids.forEach((uid, i) => {
          const r = results[i];
          const v = vectors[i];
          // Studies scored by another model bundle live in another embedding space: left out, not mis-ranked.
          // An unreadable stored result is left out too (GET of the study says so).
          if (!r || r === UNREADABLE || !v || r.model.bundleId !== model.bundleId || r.model.version !== model.version) return;
          const image = v.combined ?? Object.values(v.bySequence)[0];
          if (!image || image.length !== text.length) return;
          const score = v.combined ? searchScore(v.combined, text, normalVector ?? null) : studyCosine(v, text) - (normalVector ? studyCosine(v, normalVector) : 0);
          const similarity = studyCosine(v, text);
          // A study stored with non-finite vectors (a damaged one, before the worker refused them) cannot be ranked.
          if (!Number.isFinite(score) || !Number.isFinite(similarity)) return;
          ranked.push({
            StudyInstanceUID: uid,
            ...(r.AccessionNumber ? { AccessionNumber: r.AccessionNumber } : {}),
            score,
            similarity,
            priority: r.priority,
            receivedAt: r.receivedAt,
          });
        });
      }
      ranked.sort((a, b) => b.score - a.score || b.receivedAt - a.receivedAt);
      const items = ranked.slice(offset, offset + limit);
      // The search text is free text a user typed: its length is audited, never its words.
      await app.audit(request, 'search', { studies: items.map((i) => i.StudyInstanceUID), count: items.length, textLength: q.length });
      const misread = misreadWarning(language);
      const warnings = misread ? [misread] : [];
      // Searching for the contrast sentence itself ranks by cos(text) - cos(normal), about 0 for every study: the
      // order would mean nothing, so say so (a normal study is better found by its absent findings).
      // (A text that states absence, as "normal ..." may, has the normal-study sentence as its positive side.)
      const normalVec = !normal ? undefined : contrast === normal ? normalVector : positive === normal ? text : undefined;
      const nearNormal = normalVec ? cosine(typed, normalVec) : -1;
      if (nearNormal >= CONTRAST_SIMILARITY) {
        warnings.push(`This text is (nearly) the normal-study sentence every search is measured against (similarity ${nearNormal.toFixed(2)}): every score is about 0 and the order means little. Describe a finding, or search "no ..." for studies without it.`);
      }
      const warning = warnings.length > 0 ? warnings.join(' ') : null;
      return { total: ranked.length, offset, limit, language, warning, items };
    },
  );
}
