// The loader process pool: a loader that aborts, balloons or spins fails only its own study, permanently and with a
// reason, and is replaced; studies loading beside it are not affected; the real loader ignores a terminal's SIGINT
// and hands volumes back as Float32Array; close() leaves no process behind.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PermanentStudyError } from '../../services/worker/errors';
import { createProcessLoader, LOADER_RESPAWN_MIN_MS } from '../../services/worker/load-pool';
import { DEFAULT_PREPROCESSING } from '../../shared/imaging/spec';
import { requireBuild, waitFor } from './helpers';
import { synthStudy } from './studies';

const FIXTURE = path.join(__dirname, 'fixtures', 'misbehaving-loader.js');
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function failure(p: Promise<unknown>): Promise<PermanentStudyError> {
  const err = await p.then(() => new Error('loaded'), (e: unknown) => e);
  expect(err).toBeInstanceOf(PermanentStudyError);
  return err as PermanentStudyError;
}

describe('a loader that cannot start', () => {
  it('is replaced after a doubling wait, not in a tight loop; its studies wait, and close() stops the retries', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nt-broken-loader-'));
    const starts = path.join(tmpdir(), `nt-broken-loader-${process.pid}.starts`);
    rmSync(starts, { force: true });
    const waits: number[] = [];
    const loader = createProcessLoader({
      processes: 1, preprocessing: DEFAULT_PREPROCESSING, sequences: ['T2'], maxRssMb: 512, timeoutMs: 10_000,
      entry: path.join(__dirname, 'fixtures', 'broken-loader.js'),
      onLoaderCannotStart: (e) => waits.push(e.delayMs),
    });
    try {
      const pending = loader.load(path.join(dir, 'study'));
      await waitFor('three failed starts', async () => (waits.length >= 3 ? true : undefined), 10_000);
      expect(waits.slice(0, 3)).toEqual([LOADER_RESPAWN_MIN_MS, 2 * LOADER_RESPAWN_MIN_MS, 4 * LOADER_RESPAWN_MIN_MS]);
      // Started once more than it failed so far, at most: no process was forked while the waits ran.
      const forked = () => (existsSync(starts) ? readFileSync(starts, 'utf8').trim().split('\n').length : 0);
      expect(forked()).toBeLessThanOrEqual(waits.length + 1);
      // The study handed to a loader that could not start was not failed for it: it waits, until close().
      await loader.close();
      await expect(pending).rejects.toThrow('the worker is stopping');
      const after = forked();
      await new Promise((r) => setTimeout(r, 4 * LOADER_RESPAWN_MIN_MS));
      expect(forked()).toBe(after);
    } finally {
      await loader.close();
      rmSync(dir, { recursive: true, force: true });
      rmSync(starts, { force: true });
    }
  }, 30_000);
});

describe('loader processes contain what a bad file does', () => {
  it('an abort or a memory overrun fails its own study only; the loader is replaced', async () => {
    const loader = createProcessLoader({ processes: 2, maxRssMb: 200, timeoutMs: 60_000, preprocessing: DEFAULT_PREPROCESSING, sequences: ['T2'], entry: FIXTURE });
    try {
      const before = loader.pids();
      expect(before).toHaveLength(2);
      const [aborted, fine] = await Promise.all([failure(loader.load('/x/abort')), loader.load('/x/fine')]);
      expect(aborted.reason).toBe('load-crashed');
      expect(aborted.message).toMatch(/SIGABRT/);
      expect(fine.StudyInstanceUID).toBe('fine');

      const big = await failure(loader.load('/x/balloon'));
      expect(big.reason).toBe('too-large');
      expect(big.message).toMatch(/more than 200 MB/);

      // Replaced each time: two live loaders, and studies load again.
      await waitFor('two live loaders', async () => loader.pids().length === 2 && loader.pids().every(alive), 30_000);
      expect(loader.pids().some((p) => before.includes(p))).toBe(false);
      expect((await loader.load('/x/after')).StudyInstanceUID).toBe('after');
    } finally {
      const pids = loader.pids();
      await loader.close();
      expect(pids.filter(alive)).toEqual([]);
    }
  }, 120_000);

  it('a study that never finishes loading is stopped at the time limit', async () => {
    const loader = createProcessLoader({ processes: 1, maxRssMb: 200, timeoutMs: 2000, preprocessing: DEFAULT_PREPROCESSING, sequences: ['T2'], entry: FIXTURE });
    try {
      const slow = await failure(loader.load('/x/spin'));
      expect(slow.reason).toBe('load-timeout');
      expect(slow.message).toMatch(/longer than 2 s/);
    } finally {
      await loader.close();
    }
  }, 60_000);

  describe('the real loader', () => {
    let dir: string;
    beforeAll(() => {
      requireBuild();
      dir = mkdtempSync(path.join(tmpdir(), 'nt-load-pool-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('survives SIGINT to its process group, hands volumes back as Float32Array, and fails a damaged study permanently', async () => {
      const study = synthStudy(21, 1, { fast: true });
      const good = path.join(dir, 'good');
      for (const f of study.files) {
        mkdirSync(path.join(good, f.SeriesInstanceUID), { recursive: true });
        writeFileSync(path.join(good, f.SeriesInstanceUID, `${f.SOPInstanceUID}.dcm`), f.data);
      }
      const bad = path.join(dir, 'bad');
      mkdirSync(path.join(bad, '1.2.3'), { recursive: true });
      writeFileSync(path.join(bad, '1.2.3', '1.2.3.4.dcm'), study.files[0].data.slice(0, 400));
      const loader = createProcessLoader({ processes: 1, maxRssMb: 640, timeoutMs: 60_000, preprocessing: DEFAULT_PREPROCESSING, sequences: ['T2', 'FLAIR', 'DWI', 'ADC'] });
      try {
        const [pid] = loader.pids();
        const loaded = await loader.load(good);
        process.kill(pid, 'SIGINT'); // what Ctrl-C sends every process of the terminal's group
        expect((await loader.load(good)).StudyInstanceUID).toBe(study.StudyInstanceUID);
        expect(loader.pids()).toEqual([pid]);
        expect(loaded.StudyInstanceUID).toBe(study.StudyInstanceUID);
        expect(loaded.volumes.T2).toBeInstanceOf(Float32Array);
        expect(loaded.volumes.T2!.length).toBe(48 * 64 * 64);
        expect(loaded.completeness).toBe(1);
        const err = await failure(loader.load(bad));
        expect(err.reason).toBe('corrupt');
        expect(loader.pids()).toEqual([pid]); // a clean failure, not a crash
      } finally {
        await loader.close();
      }
    }, 120_000);
  });
});
