// Which of a study's reports is kept (supersedes): the rank of its status first, then the reports' own times, then
// the order received.
import { reportTimeOrder, supersedes, type ReportTime, type StoredReport } from './reports';

const at = (iso: string, ms = 1000): ReportTime => ({ from: Date.parse(iso), to: Date.parse(iso) + ms, field: 'OBR-22' });
const report = (status: StoredReport['status'], receivedAt: number, reportTime?: ReportTime): StoredReport => ({
  AccessionNumber: 'A', text: `${status} ${receivedAt}`, status, receivedAt, source: 'hl7', ...(reportTime ? { reportTime } : {}),
});

test('the rank decides whatever the times: P < F < C = X', () => {
  const late = at('2026-01-05T12:00:00Z');
  const early = at('2026-01-01T12:00:00Z');
  expect(supersedes(report('C', 1, early), report('F', 2, late))).toBe(true);
  expect(supersedes(report('F', 2, late), report('C', 1, early))).toBe(false);
  expect(supersedes(report('P', 3, late), report('F', 1, early))).toBe(false);
  expect(supersedes(report('X', 1, early), report('F', 2, late))).toBe(true);
  expect(supersedes(report('F', 1), null)).toBe(true);
});

test('of one rank, the newer by its own time, whichever came last; without a time, or times that do not tell, the later received', () => {
  const older = report('C', 2, at('2026-01-05T09:00:00Z'));
  const newer = report('C', 1, at('2026-01-05T10:00:00Z'));
  // The older correction received after the newer (replayed from the rejected store): it does not replace it.
  expect(supersedes(older, newer)).toBe(false);
  expect(supersedes(newer, older)).toBe(true);
  // A cancellation and a correction are one rank: their times order them too.
  expect(supersedes(report('X', 2, at('2026-01-05T09:00:00Z')), newer)).toBe(false);
  // No time on either one: received last wins, as before.
  expect(supersedes(report('C', 2), newer)).toBe(true);
  expect(supersedes(older, report('C', 3))).toBe(false);
  expect(supersedes(report('C', 3), older)).toBe(true);
  // Equal times, or a time to the day on the day of the other: received last wins.
  expect(supersedes(report('C', 2, at('2026-01-05T10:00:00Z')), newer)).toBe(true);
  expect(supersedes(report('C', 2, at('2026-01-05T00:00:00Z', 86_400_000)), newer)).toBe(true);
  expect(supersedes(report('C', 0, at('2026-01-05T00:00:00Z', 86_400_000)), newer)).toBe(false);
});

test('reportTimeOrder: only spans that do not overlap order; a time that is not a span orders nothing', () => {
  expect(reportTimeOrder(at('2026-01-05T10:00:01Z'), at('2026-01-05T10:00:00Z'))).toBe(1);
  expect(reportTimeOrder(at('2026-01-05T10:00:00Z'), at('2026-01-05T10:00:01Z'))).toBe(-1);
  expect(reportTimeOrder(at('2026-01-05T10:00:00Z', 2000), at('2026-01-05T10:00:01Z'))).toBe(0);
  expect(reportTimeOrder(undefined, at('2026-01-05T10:00:00Z'))).toBe(0);
  expect(reportTimeOrder({ from: Number.NaN, to: 1, field: 'MSH-7' }, at('2026-01-05T10:00:00Z'))).toBe(0);
  expect(reportTimeOrder({ from: 5, to: 5, field: 'MSH-7' }, { from: 1, to: 2, field: 'MSH-7' })).toBe(0);
});
