// The report journal on a real temp folder: entries come back in order, a torn last line (a crash mid-write) is
// skipped and counted, files are 0600 in a 0700 folder, and pruning keeps whole days, today's always.
import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createJournal } from './journal';

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
