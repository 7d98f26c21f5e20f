// Audit log export for the hospital's information-governance team: admins download the entries of a time window
// as JSON lines (the file's own format), e.g. for a SIEM or a subject access review. The export is audited too.
// It reads every API instance's file, rotated and compressed ones included, merged in time order.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { auditFiles } from '../plugins/audit';
import { HttpProblem } from '../plugins/problems';
import { problems } from '../schemas';

export const AuditQuery = Type.Object(
  {
    from: Type.Optional(Type.String({ format: 'date-time', description: 'first entry time, inclusive (ISO 8601)' })),
    to: Type.Optional(Type.String({ format: 'date-time', description: 'last entry time, exclusive (ISO 8601)' })),
  },
  { additionalProperties: false },
);

const MTIME_SLACK_MS = 24 * 3600 * 1000;

interface Entry {
  at: number;
  line: string;
}

/**
 * One file's entries with from <= at < to, in file order; .gz (rotated and compressed) files are unzipped. A file
 * that logrotate moved away between the listing and the open has nothing to give.
 */
async function* entriesOf(file: string, from: number, to: number): AsyncGenerator<Entry> {
  const raw = createReadStream(file);
  const opened = await new Promise<boolean>((resolve, reject) => {
    raw.once('open', () => resolve(true));
    raw.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? resolve(false) : reject(err)));
  });
  if (!opened) return;
  const input = file.endsWith('.gz') ? raw.pipe(createGunzip()) : raw;
  const lines = createInterface({ input, crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      if (!line) continue;
      let at: number;
      try {
        at = Date.parse((JSON.parse(line) as { at?: string }).at ?? '');
      } catch {
        continue; // a torn last line after a crash: skip it, keep the rest
      }
      if (at >= from && at < to) yield { at, line };
    }
  } finally {
    raw.destroy();
  }
}

/**
 * The entries of every instance's files (current and rotated) as one stream ordered by time: each file is in
 * time order already (one process appends it), so a k-way merge of their heads is enough, whatever the count.
 */
async function* entriesBetween(configured: string, from: number, to: number): AsyncGenerator<string> {
  // A file last written a day or more before `from` holds nothing from the window, so months of rotated files are
  // not opened. The day of slack covers coarse file timestamps and an NFS server's clock against the API hosts'.
  const files: string[] = [];
  for (const f of await auditFiles(configured)) {
    const s = await stat(f).catch(() => undefined);
    if (s && s.mtimeMs >= from - MTIME_SLACK_MS) files.push(f);
  }
  const sources = files.map((f) => entriesOf(f, from, to));
  try {
    const heads: (Entry | undefined)[] = await Promise.all(sources.map(async (s) => (await s.next()).value ?? undefined));
    for (;;) {
      let min = -1;
      heads.forEach((h, i) => {
        if (h && (min < 0 || h.at < heads[min]!.at)) min = i;
      });
      if (min < 0) return;
      yield `${heads[min]!.line}\n`;
      heads[min] = (await sources[min].next()).value ?? undefined;
    }
  } finally {
    // An export the client stopped reading (or one file's error) ends this generator early: each file's own
    // generator must be ended too, or its read stream stays open, paused by readline part way through.
    await Promise.allSettled(sources.map((s) => s.return(undefined)));
  }
}

export async function auditRoutes(fastify: FastifyInstance, opts: { /** API_AUDIT_LOG_FILE, absolute: the files beside it are read. */ file: string }): Promise<void> {
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
      // No `from`: from the beginning, so a `to` before 1970 is an empty window, not "from must be earlier than to"
      // about a from the client never sent.
      const from = request.query.from ? Date.parse(request.query.from) : Number.MIN_SAFE_INTEGER;
      const to = request.query.to ? Date.parse(request.query.to) : Number.MAX_SAFE_INTEGER;
      // The date-time format lets a leap second through (23:59:60Z) that Date.parse cannot read: NaN would compare
      // false with every entry and export nothing, as if the window were empty.
      for (const [field, at] of [['from', from], ['to', to]] as const) {
        if (Number.isNaN(at)) throw new HttpProblem(400, `querystring/${field} is a time this API cannot read (a leap second, :60?): send 23:59:59 or the next second`);
      }
      if (from >= to) throw new HttpProblem(400, 'querystring/from must be earlier than querystring/to');
      await app.audit(request, 'audit.export');
      // A stream goes out as it is, not through the 200 schema's serialiser (which only documents the type).
      const raw: FastifyReply = reply;
      return raw.type('application/x-ndjson').send(Readable.from(entriesBetween(opts.file, from, to)));
    },
  );
}
