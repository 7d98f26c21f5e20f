// The cohort writer and the PACS simulator end to end: files laid out as documented, reports/labels/cohort.json
// and preview written; studies pushed by C-STORE to a real DCMTK storescp arrive complete, private b-values
// included.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { writeCohort } from '../../tools/synth/cohort';
import { bodyOf, impressionOf } from '../../tools/synth/report';
import { parseTarget } from '../../tools/synth/send';
import { DEFAULT_OPTIONS, FINDING_TYPES, type StudyLabels } from '../../tools/synth/types';

const walk = (dir: string): string[] =>
  readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });

/** Runs storescp and the sender together inside a private network namespace (`unshare -rn`, loopback up):
 *  storescp cannot bind loopback only, and there nothing outside the namespace can reach it. */
function sendInNamespace(rx: string, n: number, seed: number): Promise<{ code: number; stdout: string; stderr: string }> {
  const register = path.join(__dirname, 'swc-register.cjs');
  const fixture = path.join(__dirname, 'send-fixture.ts');
  const script = [
    'set -e',
    'ip link set lo up',
    `storescp --aetitle NT_TEST --output-directory "$1" +xa 11112 & scp=$!`,
    // wait until storescp accepts connections (echoscu is DCMTK's verification SCU)
    'for i in $(seq 1 50); do echoscu -aec NT_TEST 127.0.0.1 11112 2>/dev/null && break; sleep 0.1; done',
    `node -r "$2" "$3" 11112 "$4" "$5"; rc=$?`,
    'kill $scp; wait $scp 2>/dev/null || true',
    'exit $rc',
  ].join('\n');
  return new Promise((resolve) => {
    const child = spawn('unshare', ['-rn', 'bash', '-c', script, 'send', rx, register, fixture, String(n), String(seed)], {
      env: { ...process.env, TCP_NODELAY: '1' },
      cwd: path.join(__dirname, '../..'),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
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
      // findings and impression sections, under whichever of their usual headings the report uses
      expect(bodyOf(r.text)).not.toBe('');
      expect(impressionOf(r.text)).not.toBe('');
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
    const r = await sendInNamespace(rx, 2, 5);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    const counts = JSON.parse(r.stdout.trim().split('\n').pop()!) as { instances: number; sent: number; sendFailures: number };
    expect(counts.sendFailures).toBe(0);
    expect(counts.sent).toBe(counts.instances);
    const received = walk(rx);
    expect(received.length).toBe(counts.instances);
    const dumps = execFileSync('dcmdump', ['-q', ...received], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(dumps.match(/=MRImageStorage/g)?.length).toBeGreaterThanOrEqual(received.length);
    // DWI instances keep their b-value on the wire: the standard element and/or the vendor's private one
    expect(dumps).toMatch(/\(0018,9087\) FD 1000|\(0019,100c\) IS \[1000\]|\(0043,1039\) IS \[(1000000)?1000\\|\(2001,1003\) FL 1000/);
  });

  test('parseTarget accepts AE@host:port and refuses anything else', () => {
    expect(parseTarget('NEUROTRIAGE@127.0.0.1:11112')).toEqual({ calledAe: 'NEUROTRIAGE', host: '127.0.0.1', port: 11112 });
    expect(() => parseTarget('127.0.0.1:11112')).toThrow(/AE@host:port/);
  });
});
