// The rejected store is bounded in bytes as well as in messages (REPORTS_REJECTED_MAX_MB): counted alone, 10,000
// messages of up to REPORTS_MLLP_MAX_MESSAGE_KB let any host reaching the MLLP port (a facility not allowed is kept
// too) put 10 GiB on DATA_DIR beside the studies. Real MLLP on loopback, real Redis, real files.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { reportKeys } from '../../shared/reports';
import { buildOru } from '../../tools/synth/send-reports';
import { msa, send, startFeed, type Feed } from './helpers';

let feed: Feed;
beforeAll(async () => {
  feed = await startFeed({ REPORTS_REJECTED_MAX_MB: '1' });
});
afterAll(async () => {
  await feed?.stop();
});

/** About 300 KiB from a facility that is not allowed: answered AR, and kept while there is room. */
const stranger = (controlId: string) =>
  buildOru({ AccessionNumber: `ACC-${controlId}`, text: 'x'.repeat(300 * 1024) }, { now: Date.UTC(2026, 0, 5), controlId, sendingFacility: 'ELSEWHERE' });

function keptBytesOnDisk(): number {
  const dir = path.join(feed.dataDir, 'reports', 'rejected');
  return readdirSync(dir).reduce((n, f) => n + statSync(path.join(dir, f)).size, 0);
}

test('past REPORTS_REJECTED_MAX_MB a bad message is answered AR "resend later" and not kept; removing one makes room', async () => {
  const kept: string[] = [];
  for (let i = 1; i <= 3; i++) {
    const ack = await send(feed.port, stranger(`FAR-${i}`));
    expect(msa(ack, 1)).toBe('AR');
    const id = /kept as (\S+)\)/.exec(msa(ack, 3))?.[1];
    expect(id).toBeDefined();
    kept.push(id!);
  }
  const full = await send(feed.port, stranger('FAR-4'));
  expect([msa(full, 1), msa(full, 3)]).toEqual(['AR', 'temporarily unable to store the report; resend later']);
  expect(await feed.inbound.rejected.count()).toBe(3);
  expect(keptBytesOnDisk()).toBeLessThanOrEqual(1024 * 1024);

  expect(await feed.inbound.rejected.remove(kept[0])).toBe(true);
  const again = await send(feed.port, stranger('FAR-4'));
  expect(msa(again, 3)).toMatch(/kept as \S+\)/);
  expect(await feed.inbound.rejected.count()).toBe(3);
});

test('messages kept before the byte total existed count towards it', async () => {
  await feed.client.del(reportKeys.rejectedBytes());
  const full = await send(feed.port, stranger('FAR-5'));
  expect(msa(full, 3)).toBe('temporarily unable to store the report; resend later');
  expect(Number(await feed.client.get(reportKeys.rejectedBytes()))).toBeGreaterThan(900 * 1024);
});
