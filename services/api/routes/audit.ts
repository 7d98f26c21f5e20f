// Audit log export for the hospital's information-governance team: admins download the entries of a time window
// as JSON lines (the file's own format), e.g. for a SIEM or a subject access review. The export is audited too.
import { createReadStream, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { HttpProblem } from '../plugins/problems';
import { problems } from '../schemas';

export const AuditQuery = Type.Object(
  {
    from: Type.Optional(Type.String({ format: 'date-time', description: 'first entry time, inclusive (ISO 8601)' })),
    to: Type.Optional(Type.String({ format: 'date-time', description: 'last entry time, exclusive (ISO 8601)' })),
  },
  { additionalProperties: false },
);

/** Streams the entries with from <= at < to; entries are ISO timestamps in UTC, so they compare as strings. */
async function* entriesBetween(file: string, from: number, to: number): AsyncGenerator<string> {
  if (!existsSync(file)) return;
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line) continue;
    let at: number;
    try {
      at = Date.parse((JSON.parse(line) as { at?: string }).at ?? '');
    } catch {
      continue; // a torn last line after a crash: skip it, keep the rest
    }
    if (at >= from && at < to) yield `${line}\n`;
  }
}

export async function auditRoutes(fastify: FastifyInstance, opts: { file: string }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/api/v1/audit',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['audit'],
        summary: 'Export audit entries of a time window as JSON lines (admin)',
        querystring: AuditQuery,
        produces: ['application/x-ndjson'],
        response: { 200: Type.String({ description: 'one audit entry per line (application/x-ndjson)' }), ...problems },
      },
    },
    async (request, reply) => {
      const from = request.query.from ? Date.parse(request.query.from) : 0;
      const to = request.query.to ? Date.parse(request.query.to) : Number.MAX_SAFE_INTEGER;
      if (from >= to) throw new HttpProblem(400, 'querystring/from must be earlier than querystring/to');
      await app.audit(request, 'audit.export');
      // A stream goes out as it is, not through the 200 schema's serialiser (which only documents the type).
      const raw: FastifyReply = reply;
      return raw.type('application/x-ndjson').send(Readable.from(entriesBetween(opts.file, from, to)));
    },
  );
}
