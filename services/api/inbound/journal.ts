// The report feed's write-ahead journal: each accepted report is appended to a JSON-lines file under
// DATA_DIR/reports/journal and fdatasync'ed before it is written to Redis, and only then acknowledged. Redis runs
// with appendfsync everysec (docker-compose, k8s, npm start), so a crash can lose its last second of writes; at
// start the API replays the journal through the intake, whose message-id check makes that a no-op for everything
// Redis still has. One file per UTC day and process (replicas share the volume but never a file), mode 0600 in a
// 0700 folder: the lines hold report text. Files older than REPORTS_JOURNAL_DAYS are deleted.
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { StoredReport } from '../../../shared/reports';

export interface JournalEntry {
  /** The intake's message key (sha256 hex): what makes a replay idempotent. */
  key: string;
  report: StoredReport;
}

export interface Journal {
  /** Resolves once the entry is on disk (data and, for a new file, the folder entry). */
  append(entry: JournalEntry): Promise<void>;
  /** Every readable entry of every file, oldest file first; a torn last line (crash mid-write) is skipped and counted. */
  entries(onBadLine?: () => void): AsyncGenerator<JournalEntry>;
  /** Deletes files of days before the retention window; returns how many. */
  prune(): Promise<number>;
  close(): Promise<void>;
}

export interface JournalOptions {
  dir: string;
  /** Days kept (whole UTC days, the current one included). */
  days: number;
  clock?: () => number;
  /** Distinguishes processes sharing the folder; default hostname-pid. */
  instance?: string;
}

const FILE = /^(\d{4}-\d{2}-\d{2})\.[A-Za-z0-9._-]+\.jsonl$/;

const dayOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function createJournal(options: JournalOptions): Journal {
  const clock = options.clock ?? Date.now;
  const instance = (options.instance ?? `${hostname()}-${process.pid}`).replace(/[^A-Za-z0-9._-]/g, '_');
  let current: { day: string; handle: FileHandle } | null = null;
  let chain: Promise<void> = Promise.resolve();
  let ready: Promise<void> | null = null;
  /** After a failed write the file may end in a partial line: the next entry starts on a line of its own. */
  let torn = false;
  // A failed mkdir (a read-only or full volume) is not kept: the next append tries again, or it would fail forever.
  const ensureDir = () =>
    (ready ??= mkdir(options.dir, { recursive: true, mode: 0o700 }).then(
      () => undefined,
      (err: unknown) => {
        ready = null;
        throw err;
      },
    ));

  const handleFor = async (day: string): Promise<FileHandle> => {
    if (current?.day === day) return current.handle;
    await current?.handle.close();
    current = null;
    await ensureDir();
    const handle = await open(path.join(options.dir, `${day}.${instance}.jsonl`), 'a', 0o600);
    try {
      // The new file's folder entry must be durable too, or a crash could keep the data but lose the name.
      await fsyncDir(options.dir);
    } catch (err) {
      // Not kept as `current`: the next append opens the file again, so this handle is closed here.
      await handle.close().catch(() => undefined);
      throw err;
    }
    current = { day, handle };
    return handle;
  };

  const serial = <T>(step: () => Promise<T>): Promise<T> => {
    const next = chain.then(step);
    chain = next.then(() => undefined, () => undefined);
    return next;
  };

  return {
    append(entry) {
      const line = `${JSON.stringify(entry)}\n`;
      return serial(async () => {
        const handle = await handleFor(dayOf(clock()));
        try {
          await handle.appendFile(torn ? `\n${line}` : line, 'utf8');
          await handle.datasync();
          torn = false;
        } catch (err) {
          // A failed write may have left a partial line (skipped on reading); the next append opens the file again.
          torn = true;
          await handle.close().catch(() => undefined);
          current = null;
          throw err;
        }
      });
    },

    async *entries(onBadLine) {
      let names: string[];
      try {
        names = (await readdir(options.dir)).filter((n) => FILE.test(n)).sort();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for (const name of names) {
        const input = createReadStream(path.join(options.dir, name), 'utf8');
        const lines = createInterface({ input, crlfDelay: Infinity });
        try {
          for await (const line of lines) {
            if (line.trim() === '') continue;
            let entry: JournalEntry;
            try {
              entry = JSON.parse(line) as JournalEntry;
            } catch {
              onBadLine?.();
              continue;
            }
            if (typeof entry?.key === 'string' && typeof entry.report?.AccessionNumber === 'string') yield entry;
            else onBadLine?.();
          }
        } finally {
          // A reader that stops early (the replay's Redis call failed, and it is retried) leaves readline's input
          // paused short of its end, which is the only thing that would close the file: close it here.
          lines.close();
          input.destroy();
        }
      }
    },

    async prune() {
      // Whole days, today included: a fraction of a day still keeps today's file.
      const oldest = dayOf(clock() - (Math.max(1, Math.ceil(options.days)) - 1) * 86_400_000);
      let names: string[];
      try {
        names = await readdir(options.dir);
      } catch {
        return 0;
      }
      let removed = 0;
      for (const name of names) {
        const m = FILE.exec(name);
        if (m && m[1] < oldest) {
          await rm(path.join(options.dir, name), { force: true });
          removed++;
        }
      }
      return removed;
    },

    close() {
      return serial(async () => {
        await current?.handle.close();
        current = null;
      });
    },
  };
}
