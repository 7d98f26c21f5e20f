// One study: its status through its life and result (GET), ad-hoc scoring of any sentence against its stored
// image vectors (POST …/score), the draft-report check (POST …/report-check) and, for administrators, scoring it
// again from its stored instances (POST …/rescore). Each read is audited.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Redis } from 'ioredis';
import type { Sequence } from '../../../shared/model-manifest';
import { readQuerySet } from '../../../shared/queries';
import { scoredSentences } from '../../../shared/models/scoring';
import type { StudyResult } from '../../../shared/results';
import type { StudyStatus } from '../../../shared/studies';
import { loadedModel, type ModelStatus } from '../app';
import { checkText } from '../../../shared/language/check';
import { assertUsable, mentionSimilarity, misreadWarning } from '../language';
import { assertFreeText, sameSentence } from '../free-text';
import { HttpProblem } from '../plugins/problems';
import { checkReport, type EmbedText } from '../report-check';
import { RescoreResponse, ReportCheckBody, ReportCheckResponse, ScoreBody, ScoreResponse, StudiesQuery, StudiesResponse, StudyResponse, UidParams, problems } from '../schemas';
import type { Rescorer } from '../../../shared/rescore';
import { UnreadableResultError, type StudyStore } from '../store';
import { DimensionMismatchError, cosine, studyCosine, type StudyVectors } from '../vectors';

export interface StudyRouteOptions {
  store: StudyStore;
  redis: Redis;
  rescorer: Rescorer;
  embed: EmbedText;
  modelStatus: () => ModelStatus;
  /** API_REPORT_MENTION_SIMILARITY when the site set it (else the bundle's value, else 0.6). */
  mentionSimilarity?: number;
}

/** Vectors from one model bundle mean nothing to another's text encoder: refuse rather than answer noise. */
export function assertSameModel(result: StudyResult, model: ModelStatus): void {
  if (!model.loaded) throw new HttpProblem(503, `the text encoder is not loaded (${model.detail ?? 'starting'}); try again shortly`);
  if (result.model.bundleId !== model.bundleId || result.model.version !== model.version) {
    throw new HttpProblem(
      409,
      `study ${result.StudyInstanceUID} was scored with model ${result.model.bundleId} ${result.model.version} but this API runs ${model.bundleId} ${model.version}; score the study again first (POST /api/v1/studies/${result.StudyInstanceUID}/rescore, an administrator's)`,
    );
  }
}

export async function studyRoutes(fastify: FastifyInstance, opts: StudyRouteOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  /**
   * The study's stored result. One that cannot be read is a 500 that says so and what to do (it was a bare 500 "quote
   * request id"); the problems plugin logs its detail, which names the UID, never the stored text.
   */
  async function storedResult(uid: string): Promise<StudyResult | null> {
    try {
      return await opts.store.result(uid);
    } catch (err) {
      if (!(err instanceof UnreadableResultError)) throw err;
      throw new HttpProblem(
        500,
        `${err.message} (not JSON, or not in the format this API reads); score the study again (POST /api/v1/studies/${uid}/rescore, or "Score again" on the worklist page)`,
      );
    }
  }

  async function scoredStudy(uid: string): Promise<{ result: StudyResult; vectors: StudyVectors }> {
    const [result, state] = await Promise.all([storedResult(uid), opts.store.state(uid)]);
    if (!result) {
      if (!state) throw new HttpProblem(404, `no study ${uid} has been received`);
      throw new HttpProblem(409, `study ${uid} is ${state.status ?? 'not scored'}; it can be used once it is scored`);
    }
    assertSameModel(result, opts.modelStatus());
    const vectors = await opts.store.vectors(uid);
    if (!vectors) throw new HttpProblem(409, `study ${uid} has a result but no stored image vectors; score it again (POST /api/v1/studies/${uid}/rescore, an administrator's)`);
    return { result, vectors };
  }

  app.get(
    '/api/v1/studies',
    {
      schema: {
        tags: ['studies'],
        summary: 'Studies by status, newest first: e.g. the ones that could not be triaged (failed, unsupported)',
        querystring: StudiesQuery, response: { 200: StudiesResponse, ...problems },
      },
    },
    async (request) => {
      const items = await opts.store.byStatus(request.query.status.split(',') as StudyStatus[], request.query.limit);
      await app.audit(request, 'studies.read', { studies: items.map((i) => i.StudyInstanceUID), count: items.length });
      return { items };
    },
  );

  app.get(
    '/api/v1/studies/:StudyInstanceUID',
    { schema: { tags: ['studies'], summary: 'Status through its life, and the result when scored', params: UidParams, response: { 200: StudyResponse, ...problems } } },
    async (request) => {
      const uid = request.params.StudyInstanceUID;
      const [state, result] = await Promise.all([opts.store.state(uid), storedResult(uid)]);
      if (!state && !result) throw new HttpProblem(404, `no study ${uid} has been received`);
      await app.audit(request, 'study.read', { StudyInstanceUID: uid });
      return {
        StudyInstanceUID: uid,
        // A result without a study hash means the hash expired; the result itself proves it was scored.
        status: state?.status ?? (result ? 'scored' : null),
        progress: state?.numbers ?? {},
        reason: state?.reason ?? null,
        result,
      };
    },
  );

  app.post(
    '/api/v1/studies/:StudyInstanceUID/score',
    {
      schema: {
        tags: ['studies'],
        summary: 'Score any sentence against the stored image vectors of a scored study',
        params: UidParams, body: ScoreBody, response: { 200: ScoreResponse, 409: problems[404], ...problems },
      },
    },
    async (request) => {
      const uid = request.params.StudyInstanceUID;
      assertFreeText([{ field: 'body/text', value: request.body.text }, { field: 'body/negativeText', value: request.body.negativeText }]);
      // As for a saved query (query-service.ts): a contrast sentence equal to the text scores 0 on every study.
      if (request.body.negativeText !== undefined && sameSentence(request.body.negativeText, request.body.text)) {
        throw HttpProblem.forFields(400, [{ field: 'body/negativeText', message: 'must differ from body/text: the score would always be 0' }]);
      }
      const { result, vectors } = await scoredStudy(uid);
      // The same language check as search and saved queries: a text the model cannot read has no meaningful score.
      // Each distinct sentence is embedded once, for the check and for the score.
      const model = loadedModel(opts.modelStatus());
      const typed = [{ field: 'body/text', text: request.body.text }, ...(request.body.negativeText ? [{ field: 'body/negativeText', text: request.body.negativeText }] : [])];
      const { positive, contrast } = scoredSentences(request.body);
      const sentences = [...new Set([...typed.map((x) => x.text), positive, ...(contrast ? [contrast] : [])])];
      const embedded = await opts.embed(sentences, request.user?.name);
      const vectorOf = (s: string) => embedded[sentences.indexOf(s)];
      const checks = typed.map((x) => checkText(x.text, model.language, vectorOf(x.text)));
      assertUsable(checks.map((check, i) => ({ field: typed[i].field, check })));
      const t = vectorOf(positive);
      const n = contrast ? vectorOf(contrast) : undefined;
      let similarity: number;
      const bySequence: Partial<Record<Sequence, number>> = {};
      try {
        const how = opts.modelStatus().combination;
        similarity = studyCosine(vectors, t, how) - (n ? studyCosine(vectors, n, how) : 0);
        for (const [seq, v] of Object.entries(vectors.bySequence) as [Sequence, Float32Array][]) bySequence[seq] = cosine(v, t) - (n ? cosine(v, n) : 0);
      } catch (err) {
        if (err instanceof DimensionMismatchError) throw new HttpProblem(409, err.message);
        throw err;
      }
      await app.audit(request, 'study.score', { StudyInstanceUID: uid });
      return { StudyInstanceUID: uid, text: request.body.text, similarity, bySequence, model: result.model, language: checks[0], warning: misreadWarning(checks[0]) };
    },
  );

  app.post(
    '/api/v1/studies/:StudyInstanceUID/report-check',
    {
      schema: {
        tags: ['studies'],
        summary: 'Compare a draft report with what the images suggest',
        description: 'See docs/api.md "Report check" for the rule.',
        params: UidParams, body: ReportCheckBody, response: { 200: ReportCheckResponse, 409: problems[404], ...problems },
      },
    },
    async (request) => {
      const uid = request.params.StudyInstanceUID;
      // A report with no letter or digit (white space, punctuation, zero-width spaces) has nothing to check.
      assertFreeText([{ field: 'body/report', value: request.body.report, needsText: true }]);
      const { result, vectors } = await scoredStudy(uid);
      const model = loadedModel(opts.modelStatus());
      const { queries } = await readQuerySet(opts.redis, model.manifest.queries);
      try {
        const check = await checkReport({
          report: request.body.report,
          image: (text) => studyCosine(vectors, text, model.combination),
          findings: result.findings,
          queries,
          mentionSimilarity: mentionSimilarity(opts.mentionSimilarity, model.language),
          normalText: model.language.normalText,
          embed: (texts) => opts.embed(texts, request.user?.name),
        });
        await app.audit(request, 'study.report-check', { StudyInstanceUID: uid, count: check.sentences.length, textLength: request.body.report.length });
        return { StudyInstanceUID: uid, ...check };
      } catch (err) {
        if (err instanceof DimensionMismatchError) throw new HttpProblem(409, err.message);
        throw err;
      }
    },
  );

  app.post(
    '/api/v1/studies/:StudyInstanceUID/rescore',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['studies'],
        summary: 'Score a study again from its stored instances (administrators)',
        description: 'After the cause of a failure is fixed, for a stored result that cannot be read, or for a study scored by an earlier model bundle. See docs/api.md "Scoring a study again".',
        params: UidParams, response: { 202: RescoreResponse, 409: problems[404], 410: problems[404], ...problems },
      },
    },
    async (request, reply) => {
      const uid = request.params.StudyInstanceUID;
      const out = await opts.rescorer.rescore(uid);
      const resend = 'send the study again from the PACS, which stores and scores it again';
      switch (out.outcome) {
        case 'not-received':
          throw new HttpProblem(404, `no study ${uid} has been received`);
        case 'no-instances':
          throw new HttpProblem(409, `study ${uid} has no stored instances to score (every one was refused at intake, or their records are gone); ${resend}`);
        case 'purging':
          throw new HttpProblem(409, `retention is deleting the stored instances of study ${uid} now; ${resend}`);
        case 'purged':
          throw new HttpProblem(410, `the instances of study ${uid} are no longer stored: retention deleted them on ${new Date(out.at).toISOString()} (RETENTION_DAYS); ${resend}`);
        case 'already-queued':
          throw new HttpProblem(409, `study ${uid} already has a job (${out.jobId}, study status ${out.status ?? 'unknown'}): it is scored when that job runs`);
      }
      await app.audit(request, 'study.rescore', { StudyInstanceUID: uid, outcome: out.previousStatus ?? 'none' });
      request.log.info({ StudyInstanceUID: uid, jobId: out.jobId, previousStatus: out.previousStatus }, 'study queued to be scored again');
      return reply.code(202).send({ StudyInstanceUID: uid, status: 'queued' as const, jobId: out.jobId, previousStatus: out.previousStatus });
    },
  );
}
