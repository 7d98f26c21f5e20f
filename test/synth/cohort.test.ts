// The cohort writer and the PACS simulator end to end: files laid out as documented, reports/labels/cohort.json
// and preview written; studies pushed by C-STORE to a real DCMTK storescp arrive complete, private b-values
// included.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { writeCohort } from '../../tools/synth/cohort';
import { createStoreSender, parseTarget } from '../../tools/synth/send';
import { DEFAULT_OPTIONS, FINDING_TYPES, type StudyLabels } from '../../tools/synth/types';

const walk = (dir: string): string[] =>
  readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });

/** A port the OS says is free right now (storescp takes a port number, not 0). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function startStorescp(dir: string): Promise<{ port: number; proc: ChildProcess }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const proc = spawn('storescp', ['--aetitle', 'NT_TEST', '--output-directory', dir, '+xa', String(port)], {
      env: { ...process.env, TCP_NODELAY: '1' },
      stdio: 'ignore',
    });
    // ready when it accepts a TCP connection
    const ok = await new Promise<boolean>((resolve) => {
      const started = Date.now();
      const tryConnect = (): void => {
        const sock = connect(port, '127.0.0.1');
        sock.on('connect', () => {
          sock.destroy();
          resolve(true);
        });
        sock.on('error', () => (Date.now() - started > 5000 ? resolve(false) : setTimeout(tryConnect, 100)));
      };
      tryConnect();
    });
    if (ok) return { port, proc };
    proc.kill();
  }
  throw new Error('storescp did not start');
}

describe('cohort writer and C-STORE sender', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'nt-cohort-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('writes dicom/<study>/<series>/<sop>.dcm, reports.jsonl, labels.jsonl, cohort.json and a preview', async () => {
    const out = path.join(dir, 'cohort');
    const summary = await writeCohort({
      n: 3, seed: 21, out, options: { ...DEFAULT_OPTIONS, fast: true }, workers: 0, previewCount: 3, sendConcurrency: 1,
    });
    const files = walk(path.join(out, 'dicom'));
    expect(files.length).toBe(summary.counts.instances);
    for (const f of files) expect(path.relative(out, f)).toMatch(/^dicom\/2\.25\.\d+\/2\.25\.\d+\/2\.25\.\d+\.dcm$/);
    const reports = readFileSync(path.join(out, 'reports.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { AccessionNumber: string; StudyInstanceUID: string; text: string });
    const labels = readFileSync(path.join(out, 'labels.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as StudyLabels);
    expect(reports).toHaveLength(3);
    expect(labels).toHaveLength(3);
    reports.forEach((r, i) => {
      expect(r.StudyInstanceUID).toBe(labels[i]!.StudyInstanceUID);
      expect(r.AccessionNumber).toBe(labels[i]!.AccessionNumber);
      expect(r.text).toMatch(/FINDINGS:[\s\S]+IMPRESSION:/);
      expect(readdirSync(path.join(out, 'dicom', r.StudyInstanceUID)).length).toBe(labels[i]!.series.length);
      expect(labels[i]!.normal).toBe(labels[i]!.findings.length === 0);
      for (const f of labels[i]!.findings) expect(FINDING_TYPES).toContain(f.type);
    });
    const cohort = JSON.parse(readFileSync(path.join(out, 'cohort.json'), 'utf8'));
    expect(cohort.seed).toBe(21);
    expect(cohort.counts.studies).toBe(3);
    const png = PNG.sync.read(readFileSync(path.join(out, 'preview.png')));
    expect(png.width).toBeGreaterThan(500);
    expect(png.height).toBeGreaterThan(3 * 192);
  });

  test('--send pushes every instance to a DCMTK storescp, private b-value elements included', async () => {
    const rx = path.join(dir, 'received');
    mkdirSync(rx);
    const { port, proc } = await startStorescp(rx);
    try {
      const sender = createStoreSender(parseTarget(`NT_TEST@127.0.0.1:${port}`), 'NT_SYNTH');
      const summary = await writeCohort({
        n: 2, seed: 5, out: undefined, options: { ...DEFAULT_OPTIONS, fast: true }, workers: 0, previewCount: 0, sender, sendConcurrency: 2,
      });
      expect(summary.counts.sendFailures).toBe(0);
      expect(summary.counts.sent).toBe(summary.counts.instances);
      const received = walk(rx);
      expect(received.length).toBe(summary.counts.instances);
      const dumps = execFileSync('dcmdump', ['-q', ...received.slice(0, 60)], { encoding: 'utf8', maxBuffer: 64 << 20 });
      expect(dumps).toContain('=MRImageStorage');
      // DWI instances keep their b-value on the wire: the standard element or the vendor's private one
      expect(dumps).toMatch(/\(0018,9087\)|\(0019,100c\)|\(0043,1039\)|\(2001,1003\)/);
    } finally {
      proc.kill();
    }
  });

  test('parseTarget accepts AE@host:port and refuses anything else', () => {
    expect(parseTarget('NEUROTRIAGE@127.0.0.1:11112')).toEqual({ calledAe: 'NEUROTRIAGE', host: '127.0.0.1', port: 11112 });
    expect(() => parseTarget('127.0.0.1:11112')).toThrow(/AE@host:port/);
  });
});
