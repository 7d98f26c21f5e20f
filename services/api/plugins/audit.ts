// Append-only audit log (JSON lines): who read which study, who changed which query. User names come from the
// token table; entries hold UIDs, query ids and counts, never patient data or the free text a user typed.
// Each entry is written before the response leaves, so an unwritable log refuses the request (fail closed).
import { mkdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

export type AuditAction =
  | 'worklist.read' | 'studies.read' | 'study.read' | 'study.score' | 'study.report-check' | 'search'
  | 'events.subscribe' | 'queries.read' | 'query.create' | 'query.update' | 'query.delete' | 'audit.export';

export interface AuditEntry {
  at: string;
  user: string;
  role: string;
  action: AuditAction;
  requestId: string;
  ip: string;
  StudyInstanceUID?: string;
  studies?: string[];
  queryId?: string;
  queryVersion?: number;
  count?: number;
  /** Length of free text a user sent (search, report); the text itself is never logged. */
  textLength?: number;
}

export interface AuditLog {
  write(entry: AuditEntry): Promise<void>;
  /** Closes the file after the writes already queued; the next write opens the path again (logrotate, SIGHUP). */
  reopen(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens the file with O_APPEND (mode 0640) on first write; writes, reopen and close are serialised on one chain,
 * so lines never interleave and none is written to a file being closed. A failed open is retried by the next write.
 */
export function createFileAuditLog(file: string): AuditLog {
  mkdirSync(path.dirname(file), { recursive: true });
  let handle: Promise<FileHandle> | null = null;
  let chain: Promise<void> = Promise.resolve();
  const enqueue = (step: () => Promise<void>): Promise<void> => {
    const next = chain.then(step);
    chain = next.catch(() => undefined);
    return next;
  };
  const closeHandle = async () => {
    const h = handle;
    handle = null;
    if (h) await (await h).close();
  };
  return {
    write(entry) {
      const line = `${JSON.stringify(entry)}\n`;
      return enqueue(async () => {
        handle ??= open(file, 'a', 0o640);
        try {
          await (await handle).appendFile(line, 'utf8');
        } catch (err) {
          await closeHandle().catch(() => undefined);
          throw err;
        }
      });
    },
    reopen: () => enqueue(closeHandle),
    close: () => enqueue(closeHandle),
  };
}

declare module 'fastify' {
  interface FastifyInstance {
    audit(request: FastifyRequest, action: AuditAction, fields?: Partial<AuditEntry>): Promise<void>;
    /** After logrotate moved the file: the next entry goes to a new file at the configured path. */
    reopenAuditLog(): Promise<void>;
  }
}

export const auditPlugin = fp(async function audit(app: FastifyInstance, opts: { log: AuditLog; clock: () => number }) {
  app.decorate('reopenAuditLog', () => opts.log.reopen());
  app.decorate('audit', async (request: FastifyRequest, action: AuditAction, fields: Partial<AuditEntry> = {}) => {
    const user = request.user;
    await opts.log.write({
      at: new Date(opts.clock()).toISOString(),
      user: user?.name ?? 'anonymous',
      role: user?.role ?? 'none',
      action,
      requestId: request.id,
      ip: request.ip,
      ...fields,
    });
  });
  app.addHook('onClose', async () => opts.log.close());
});
