// Append-only audit log (JSON lines): who read which study, who changed which query. User names come from the
// token table; entries hold UIDs, query ids and counts, never patient data or the free text a user typed.
// Each entry is written before the response leaves, so an unwritable log refuses the request (fail closed).
// Every API process appends to its own file (the configured name with the host name in it): replicas on a shared
// volume never append to one file, which O_APPEND does not make safe across NFS clients. The export
// (routes/audit.ts) reads them all, rotated ones included (auditFiles).
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { open, readdir, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

export type AuditAction =
  | 'worklist.read' | 'studies.read' | 'study.read' | 'study.score' | 'study.report-check' | 'study.rescore' | 'search'
  | 'events.subscribe' | 'queries.read' | 'query.create' | 'query.update' | 'query.restore' | 'query.delete' | 'query.calibrate' | 'text-check'
  | 'decision.read' | 'audit.export'
  | 'report.create' | 'study.report.read' | 'reports.held.read' | 'reports.rejected.read' | 'report.rejected.read'
  | 'report.rejected.replay' | 'report.rejected.delete'
  | 'study.image' | 'study.slices'
  | 'access.denied';

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
  /** A rejected report message's id (its content is never logged). */
  rejectedId?: string;
  /**
   * What the report intake did: matched, held, duplicate, superseded, or the rejection reason code; for
   * access.denied why: no-token, invalid-token (401) or role (403); for query.delete what it did: deleted,
   * disabled (a bundle default turned off) or restored-default; for study.rescore the study's status before it.
   */
  outcome?: string;
  /** access.denied: the method and route template refused (never the URL with its query string). */
  route?: string;
}

export interface AuditLog {
  write(entry: AuditEntry): Promise<void>;
  /** Closes the file after the writes already queued; the next write opens the path again (logrotate, SIGHUP). */
  reopen(): Promise<void>;
  close(): Promise<void>;
}

/** Host names become part of a file name: keep letters, digits, '.', '_' and '-'. */
function fileSafe(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '') || 'api';
}

/**
 * This process's audit file: API_AUDIT_LOG_FILE with the instance name (the host name: a pod name in Kubernetes,
 * the container id in compose) before its extension, e.g. audit/api-audit.jsonl -> audit/api-audit.<host>.jsonl.
 */
export function auditFileFor(configured: string, instance: string = hostname()): string {
  const ext = path.extname(configured);
  return path.join(path.dirname(configured), `${path.basename(configured, ext)}.${fileSafe(instance)}${ext}`);
}

/**
 * Every audit file of every instance beside the configured name, current and rotated (logrotate's .1, .2.gz,
 * -20261201 suffixes), and the single file of versions before per-instance files. Absolute paths, sorted.
 */
export async function auditFiles(configured: string): Promise<string[]> {
  const dir = path.dirname(configured);
  const ext = path.extname(configured);
  const stem = path.basename(configured, ext);
  const escape = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`^${escape(stem)}(\\.[A-Za-z0-9_-][A-Za-z0-9._-]*)?${escape(ext)}([.-][A-Za-z0-9._-]+)?$`);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names.filter((n) => pattern.test(n)).sort().map((n) => path.join(dir, n));
}

/**
 * Opens the file with O_APPEND (mode 0640) on first write; writes, reopen and close are serialised on one chain,
 * so lines never interleave and none is written to a file being closed. A failed open is retried by the next write.
 */
export function createFileAuditLog(file: string): AuditLog {
  // Checked now, at start: a place the API cannot append to would otherwise fail every audited request.
  mkdirSync(path.dirname(file), { recursive: true });
  closeSync(openSync(file, 'a', 0o640));
  let handle: Promise<FileHandle> | null = null;
  /**
   * After a failed write the file may end in a partial line (a full disk cuts a write short): the next entry starts
   * on a line of its own, or it would be glued to that fragment and the export, which skips a line it cannot read,
   * would lose an entry whose request was answered.
   */
  let torn = false;
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
          await (await handle).appendFile(torn ? `\n${line}` : line, 'utf8');
          torn = false;
        } catch (err) {
          torn = true;
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
  // metricsPlugin is registered first when the app has metrics (app.ts); count only entries actually written.
  const written = app.hasDecorator('metrics') ? () => app.metrics.auditWrites.inc() : () => undefined;
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
    written();
  });
  app.addHook('onClose', async () => opts.log.close());
});
