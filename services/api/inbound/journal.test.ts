// The report journal on a real temp folder: entries come back in order, a torn last line (a crash mid-write) is
// skipped and counted, files are 0600 in a 0700 folder, and pruning keeps whole days, today's always.
import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createJournal } from './journal';
import { openFilesUnder } from '../../../test/helpers/open-files';

const DAY = 86_400_000;
const report = (n: number) => ({ AccessionNumber: `A${n}`, text: `t${n}`, status: 'F' as const, receivedAt: n, source: 'hl7' as const });

test('appends durably, reads back, skips a torn line, prunes whole days', async () => {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'nt-journal-')), 'journal');
  let now = Date.UTC(2026, 0, 1, 12);
  const journal = createJournal({ dir, days: 2, clock: () => now, instance: 'host-1' });
  try {
    await journal.append({ key: 'k1', report: report(1) });
    now += DAY;
    await journal.append({ key: 'k2', report: report(2) });
    now += DAY;
    await journal.append({ key: 'k3', report: report(3) });
    expect(readdirSync(dir).sort()).toEqual(['2026-01-01.host-1.jsonl', '2026-01-02.host-1.jsonl', '2026-01-03.host-1.jsonl']);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(dir, '2026-01-03.host-1.jsonl')).mode & 0o777).toBe(0o600);
    appendFileSync(path.join(dir, '2026-01-03.host-1.jsonl'), '{"key":"k4","report":{"Acc');
    let bad = 0;
    const keys: string[] = [];
    for await (const e of journal.entries(() => bad++)) keys.push(e.key);
    expect([keys, bad]).toEqual([['k1', 'k2', 'k3'], 1]);
    expect(await journal.prune()).toBe(1);
    expect(readdirSync(dir).sort()).toEqual(['2026-01-02.host-1.jsonl', '2026-01-03.host-1.jsonl']);
    const short = createJournal({ dir, days: 0.25, clock: () => now, instance: 'host-1' });
    expect(await short.prune()).toBe(1);
    expect(readdirSync(dir)).toEqual(['2026-01-03.host-1.jsonl']);
  } finally {
    await journal.close();
    rmSync(path.dirname(dir), { recursive: true, force: true });
  }
});

test('a replay that stops part way through a file (Redis not answering) closes the file it was reading', async () => {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'nt-journal-')), 'journal');
  const journal = createJournal({ dir, days: 2, clock: () => Date.UTC(2026, 0, 1, 12), instance: 'host-1' });
  try {
    // A busy day's file: a few thousand reports, more than the replay reads before its first Redis round trip.
    await journal.append({ key: 'first', report: report(0) });
    appendFileSync(path.join(dir, '2026-01-01.host-1.jsonl'), Array.from({ length: 3000 }, (_, i) => `${JSON.stringify({ key: `k${i}`, report: report(i) })}\n`).join(''));
    await journal.close();
    const before = openFilesUnder(dir);
    // The feed retries its replay every few seconds while Redis is down: like replayJournal(), each try reads a
    // batch of 500 entries, and its Redis round trip for them fails.
    for (let attempt = 0; attempt < 10; attempt++) {
      await expect((async () => {
        let n = 0;
        for await (const entry of journal.entries()) {
          if (++n < 500) continue;
          await new Promise((r) => setTimeout(r, 20));
          throw new Error(`redis down at ${entry.key}`);
        }
      })()).rejects.toThrow('redis down at k498');
    }
    // Each abandoned read's file closes a turn or two later (a close goes through the thread pool): wait for that,
    // with a deadline, rather than a fixed pause a loaded machine can outlast.
    for (const deadline = Date.now() + 5000; openFilesUnder(dir) !== before && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 20));
    expect(openFilesUnder(dir)).toBe(before);
  } finally {
    await journal.close();
    rmSync(path.dirname(dir), { recursive: true, force: true });
  }
});

test('a new day file whose folder cannot be fsynced is closed again, not left open for each retried append', async () => {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'nt-journal-')), 'journal');
  const journal = createJournal({ dir, days: 2, clock: () => Date.UTC(2026, 0, 1, 12), instance: 'host-1' });
  // The folder's fsync fails (EIO; or a file system that refuses fsync on a directory): opening the folder for
  // it fails here, after the day file itself was opened.
  const realOpen = fsp.open;
  const spy = jest.spyOn(fsp, 'open').mockImplementation(((file: string, flags?: string, mode?: number) =>
    file === dir && flags === 'r' ? Promise.reject(Object.assign(new Error('EIO: i/o error, open'), { code: 'EIO' })) : realOpen(file, flags, mode)) as typeof fsp.open);
  try {
    const before = openFilesUnder(dir);
    for (let i = 0; i < 10; i++) await expect(journal.append({ key: `k${i}`, report: report(i) })).rejects.toThrow('EIO');
    expect(openFilesUnder(dir)).toBe(before);
  } finally {
    spy.mockRestore();
    await journal.close();
    rmSync(path.dirname(dir), { recursive: true, force: true });
  }
});
