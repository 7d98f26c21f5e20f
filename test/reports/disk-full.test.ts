// The report feed on a disk that fills up, on a real (small, private tmpfs) DATA_DIR: a report that cannot be
// journalled is answered AR over MLLP and 503/5xx over HTTP, never acknowledged; a bad message that cannot be kept
// in the rejected store leaves no temp file behind (nothing counts those bytes, and nothing would ever remove
// them); once space returns both are stored again.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { buildOru } from '../../tools/synth/send-reports';
import { startRedis } from '../helpers/redis';
import { startSmallFs, type SmallFs } from '../helpers/small-fs';
import { REPORTER, msa, send, startFeed, type Feed } from './helpers';

let fs: SmallFs;
let feed: Feed;
beforeAll(async () => {
  fs = await startSmallFs(1024);
  feed = await startFeed({}, { redis: await startRedis(), dataDir: fs.dir });
});
afterAll(async () => {
  await feed?.stop();
  await feed?.redis.stop();
  await fs?.stop();
});

/** A report of a few KB: more than the journal file's last block can take. */
const oru = (controlId: string, sendingFacility = 'NT_SYNTH') =>
  buildOru({ AccessionNumber: `ACC-${controlId}`, text: `normal brain ${'y'.repeat(6000)}` }, { now: Date.UTC(2026, 0, 5), controlId, sendingFacility });

const rejectedFiles = () => {
  const dir = path.join(fs.dir, 'reports', 'rejected');
  return existsSync(dir) ? readdirSync(dir) : [];
};

test('with the disk full nothing is acknowledged nor left half-written; with space again both stores work', async () => {
  expect(msa(await send(feed.port, oru('DF-1')), 1)).toBe('AA');
  fs.fill();

  const report = await send(feed.port, oru('DF-2'));
  expect([msa(report, 1), msa(report, 3)]).toEqual(['AR', 'temporarily unable to store the report; resend later']);
  const posted = await feed.app.inject({ method: 'POST', url: '/api/v1/reports', headers: REPORTER, payload: { AccessionNumber: 'ACC-DF-P', text: `normal brain ${'z'.repeat(6000)}` } });
  expect(posted.statusCode).toBe(503);
  expect(posted.headers['retry-after']).toBe('5');
  expect(posted.body).not.toContain('normal brain');
  // A facility that is not allowed: the message would be kept for an admin, but there is no room.
  const stranger = await send(feed.port, oru('DF-3', 'ELSEWHERE'));
  expect([msa(stranger, 1), msa(stranger, 3)]).toEqual(['AR', 'temporarily unable to store the report; resend later']);
  expect(rejectedFiles()).toEqual([]);
  expect(await feed.inbound.rejected.count()).toBe(0);

  fs.drain();
  expect(msa(await send(feed.port, oru('DF-2')), 1)).toBe('AA');
  expect((await feed.app.inject({ method: 'POST', url: '/api/v1/reports', headers: REPORTER, payload: { AccessionNumber: 'ACC-DF-P', text: 'normal brain' } })).statusCode).toBe(202);
  const kept = await send(feed.port, oru('DF-3', 'ELSEWHERE'));
  expect(msa(kept, 3)).toMatch(/kept as \S+\)/);
  expect(rejectedFiles()).toHaveLength(1);
});

describe('a feed whose first report comes while DATA_DIR/reports cannot be written', () => {
  let fs2: SmallFs;
  let fresh: Feed;
  beforeAll(async () => {
    fs2 = await startSmallFs(1024);
    fresh = await startFeed({}, { redis: await startRedis(), dataDir: fs2.dir });
  });
  afterAll(async () => {
    await fresh?.stop();
    await fresh?.redis.stop();
    await fs2?.stop();
  });

  test('its folders could not be created then: once they can, the journal and the rejected store work again', async () => {
    // A tmpfs folder takes no blocks, so a full disk does not stop mkdir; a read-only one does (EROFS).
    mkdirSync(path.join(fs2.dir, 'reports'));
    await fs2.readOnly('reports', true);
    try {
      expect(msa(await send(fresh.port, oru('DF-10')), 1)).toBe('AR');
      expect(msa(await send(fresh.port, oru('DF-11', 'ELSEWHERE')), 3)).toBe('temporarily unable to store the report; resend later');
    } finally {
      await fs2.readOnly('reports', false);
    }
    const report = await send(fresh.port, oru('DF-10'));
    expect([msa(report, 1), msa(report, 3)]).toEqual(['AA', '1 report(s): held']);
    expect(msa(await send(fresh.port, oru('DF-11', 'ELSEWHERE')), 3)).toMatch(/kept as \S+\)/);
  });
});
