// Radiologists' reports of past studies over HTTP, with the same intake as the HL7 feed (hold, match, dedupe,
// journal before the answer): POST /api/v1/reports (reporter), GET /api/v1/studies/:uid/report (reader), and
// for admins the held reports and the rejected HL7 messages kept for replay (list, read, replay, delete).
// Report text is PHI-bearing free text: every read is audited, the text never reaches a log or an audit line.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Redis } from 'ioredis';
import { c1AsWindows1252 } from '../../../shared/hl7-text';
import { readReport, type StoredReport } from '../../../shared/reports';
import { keys } from '../../../shared/studies';
import { apiMessageKey, type ReportInbound } from '../inbound';
import { hasControlCharacters } from '../inbound/oru';
import { assertFreeText, hasText } from '../free-text';
import { HttpProblem } from '../plugins/problems';
import {
  HeldReportsResponse, RejectedIdParams, RejectedListQuery, RejectedListResponse, RejectedMessageResponse, ReplayBody,
  HeldQuery, ReplayResponse, ReportBody, ReportCreatedResponse, StoredReportSchema, UidParams, problems,
} from '../schemas';

export interface ReportRouteOptions {
  redis: Redis;
  reports: ReportInbound;
  clock: () => number;
}

const STATUS_OF = { matched: 201, held: 202, duplicate: 200, superseded: 200 } as const;

export async function reportRoutes(fastify: FastifyInstance, opts: ReportRouteOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const admin = { role: 'admin' as const };

  app.post(
    '/api/v1/reports',
    {
      config: { role: 'reporter' },
      schema: {
        tags: ['reports'],
        summary: 'File a radiologist\'s report of a past study by its accession number (role reporter or above)',
        description:
          '201 filed under the received studies with this accession number; 202 held until such a study is received; ' +
          '200 a duplicate (same reportId, or same accession, status and text) or superseded (a final report already filed ' +
          'outranks this preliminary one). Answered after the report is written durably. See docs/hl7-interface.md.',
        body: ReportBody,
        response: { 200: ReportCreatedResponse, 201: ReportCreatedResponse, 202: ReportCreatedResponse, ...problems },
      },
    },
    async (request, reply) => {
      const { reportId } = request.body;
      // C1 code points are read as the windows-1252 characters of those bytes, as the HL7 feed reads them (oru.ts
      // fieldText): a client that read a Windows RIS's quotes and dashes as ISO 8859-1 sends "2\u00963 mm" for "2–3 mm".
      const text = c1AsWindows1252(request.body.text);
      const AccessionNumber = request.body.AccessionNumber.trim();
      const status = request.body.status ?? 'F';
      if (AccessionNumber === '') throw new HttpProblem(400, 'body/AccessionNumber holds only white space');
      if (hasControlCharacters(AccessionNumber)) throw new HttpProblem(400, 'body/AccessionNumber holds a control character (a line break or tab?): send it as the RIS and the images carry it');
      // Zero-width spaces and the like (which trim() keeps): no study carries such an accession number, so the report
      // would be held until it expired.
      if (!hasText(AccessionNumber)) throw new HttpProblem(400, 'body/AccessionNumber has no letter or digit: only white space, punctuation or invisible characters (such as zero-width spaces)');
      if (text.trim() === '') throw new HttpProblem(400, 'body/text holds only white space: there is no report to store');
      // NUL and other control characters, or nothing but zero-width spaces and punctuation: no report either.
      assertFreeText([{ field: 'body/text', value: text, needsText: true }]);
      opts.reports.metrics.received.inc({ source: 'api' });
      const report: StoredReport = { AccessionNumber, text, status, receivedAt: opts.clock(), source: 'api' };
      let result;
      try {
        result = await opts.reports.intake.ingest(report, apiMessageKey(report, reportId));
      } catch (err) {
        request.log.error({ err: (err as Error).message }, 'report not stored');
        throw new HttpProblem(503, 'the report could not be written durably right now; nothing was stored, send it again', { 'Retry-After': '5' });
      }
      await app.audit(request, 'report.create', { studies: result.StudyInstanceUIDs, outcome: result.outcome, textLength: text.length });
      if (result.outcome === 'matched') reply.header('Location', `/api/v1/studies/${result.StudyInstanceUIDs[0]}/report`);
      reply.code(STATUS_OF[result.outcome]);
      return { outcome: result.outcome, AccessionNumber, StudyInstanceUIDs: result.StudyInstanceUIDs };
    },
  );

  app.get(
    '/api/v1/studies/:StudyInstanceUID/report',
    {
      schema: {
        tags: ['reports'],
        summary: 'The radiologist\'s report filed for a study (the latest final or corrected one, else the preliminary)',
        params: UidParams, response: { 200: StoredReportSchema, ...problems },
      },
    },
    async (request) => {
      const uid = request.params.StudyInstanceUID;
      const report = await readReport(opts.redis, uid);
      if (!report) {
        const received = (await opts.redis.exists(keys.study(uid))) === 1;
        throw new HttpProblem(404, received ? `study ${uid} has no report yet` : `no study ${uid} has been received`);
      }
      await app.audit(request, 'study.report.read', { StudyInstanceUID: uid, textLength: report.text.length });
      return report;
    },
  );

  app.get(
    '/api/v1/reports/held',
    { config: admin, schema: { tags: ['reports'], summary: 'Reports waiting for their study, oldest first (admin)', querystring: HeldQuery, response: { 200: HeldReportsResponse, ...problems } } },
    async (request) => {
      const res = await opts.reports.intake.held(request.query.limit);
      await app.audit(request, 'reports.held.read', { count: res.items.length });
      return res;
    },
  );

  app.get(
    '/api/v1/reports/rejected',
    {
      config: admin,
      schema: {
        tags: ['reports'], summary: 'Report messages answered AE/AR, and held reports whose study never came, kept for replay (admin)',
        querystring: RejectedListQuery, response: { 200: RejectedListResponse, ...problems },
      },
    },
    async (request) => {
      const res = await opts.reports.rejected.list(request.query.limit, request.query.offset);
      await app.audit(request, 'reports.rejected.read', { count: res.items.length });
      return res;
    },
  );

  app.get(
    '/api/v1/reports/rejected/:id',
    {
      config: admin,
      schema: { tags: ['reports'], summary: 'One kept message with its content, to correct it (admin)', params: RejectedIdParams, response: { 200: RejectedMessageResponse, ...problems } },
    },
    async (request) => {
      const kept = await opts.reports.rejected.get(request.params.id);
      if (!kept) throw new HttpProblem(404, `no rejected report message ${request.params.id}`);
      await app.audit(request, 'report.rejected.read', { rejectedId: request.params.id });
      const { entry, payload } = kept;
      return entry.kind === 'hl7'
        ? { ...entry, message: payload.toString('utf8') }
        : { ...entry, report: JSON.parse(payload.toString('utf8')) as StoredReport };
    },
  );

  app.post(
    '/api/v1/reports/rejected/:id/replay',
    {
      config: admin,
      schema: {
        tags: ['reports'],
        summary: 'Run a kept message again, as kept or corrected (admin)',
        description: 'After fixing the cause (settings, or a corrected message in the body). 200 when stored (it leaves the rejected list); 422 with the reason when it is still rejected (it stays).',
        params: RejectedIdParams, body: ReplayBody, response: { 200: ReplayResponse, 422: problems[404], ...problems },
      },
      // A replay as kept needs no body at all.
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request) => {
      const id = request.params.id;
      let result;
      try {
        result = await opts.reports.feed.replay(id, request.body?.message);
      } catch (err) {
        request.log.error({ err: (err as Error).message, rejectedId: id }, 'replay not stored');
        throw new HttpProblem(503, 'the report could not be written durably right now; the message stays kept, replay it again', { 'Retry-After': '5' });
      }
      if (!result) throw new HttpProblem(404, `no rejected report message ${id}`);
      await app.audit(request, 'report.rejected.replay', { rejectedId: id, outcome: result.ok ? result.outcome.reports.map((r) => r.outcome).join(',') : result.outcome.reason });
      if (!result.ok) throw new HttpProblem(422, `still rejected (${result.outcome.reason}): ${result.outcome.detail}; the message stays kept as ${id}`);
      return {
        ack: result.outcome.ack,
        detail: result.outcome.detail,
        reports: result.outcome.reports.map((r) => ({ outcome: r.outcome, AccessionNumber: r.AccessionNumber, StudyInstanceUIDs: r.StudyInstanceUIDs })),
      };
    },
  );

  app.delete(
    '/api/v1/reports/rejected/:id',
    { config: admin, schema: { tags: ['reports'], summary: 'Discard a kept message for good (admin; audited)', params: RejectedIdParams, response: { 204: { type: 'null' }, ...problems } } },
    async (request, reply) => {
      if (!(await opts.reports.rejected.remove(request.params.id))) throw new HttpProblem(404, `no rejected report message ${request.params.id}`);
      await app.audit(request, 'report.rejected.delete', { rejectedId: request.params.id });
      reply.code(204);
    },
  );
}
