// The whole loop, locally, as `npm run synth -- --send ... --reports-to ...` runs it: the synthetic PACS (the real
// CLI, in a child process) C-STOREs each study to the real listener and then sends its report as ORU^R01 over MLLP
// to the report feed. The listener records each study's AccessionNumber in the study hash; when the worker's
// scored event comes (published here as the worker does), every report is filed under its study, text intact.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readReport } from '../../shared/reports';
import { keys } from '../../shared/studies';
import type { StudyReport } from '../../tools/synth/types';
import { startHarness, type Harness } from '../listener/harness';
import { scoreStudy, startFeed, waitFor, type Feed } from './helpers';

let harness: Harness;
let feed: Feed;
let out: string;

beforeAll(async () => {
  harness = await startHarness();
  feed = await startFeed({}, { redis: harness.redis, dataDir: harness.dataDir });
  out = mkdtempSync(path.join(tmpdir(), 'nt-synth-reports-'));
});
afterAll(async () => {
  await feed?.stopFeed();
  await harness?.stop();
  if (out) rmSync(out, { recursive: true, force: true });
});

function runSynth(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const register = path.join(__dirname, '..', 'synth', 'swc-register.cjs');
  const cli = path.join(__dirname, '..', '..', 'tools', 'synth', 'cli.ts');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-r', register, cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

test('npm run synth -- --send ... --reports-to ...: studies in by DICOM, reports in by HL7, filed when scored', async () => {
  const n = 3;
  const { code, stdout, stderr } = await runSynth([
    '--n', String(n), '--seed', '11', '--fast', '--workers', '0', '--out', out,
    '--send', `${harness.ae.calledAe}@127.0.0.1:${harness.ae.port}`, '--calling-ae', harness.ae.callingAe,
    '--reports-to', `127.0.0.1:${feed.port}`,
  ]);
  expect({ code, stderr: code === 0 ? '' : stderr }).toEqual({ code: 0, stderr: '' });
  expect(stdout).toContain(`sent ${n} reports to 127.0.0.1:${feed.port}: ${n} AA`);
  const reports = readFileSync(path.join(out, 'reports.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as StudyReport);
  expect(reports).toHaveLength(n);
  for (const r of reports) {
    // The listener, not the test, wrote this.
    expect(await harness.client.hget(keys.study(r.StudyInstanceUID), 'AccessionNumber')).toBe(r.AccessionNumber);
    await scoreStudy(harness.client, r.StudyInstanceUID);
  }
  for (const r of reports) {
    const stored = await waitFor(() => readReport(harness.client, r.StudyInstanceUID), `the report of ${r.StudyInstanceUID}`);
    expect(stored).toMatchObject({ AccessionNumber: r.AccessionNumber, text: r.text, status: 'F', source: 'hl7' });
  }
  // Sent again (same seed): every report is a duplicate, acknowledged AA, stored once.
  const again = await runSynth(['--n', String(n), '--seed', '11', '--fast', '--workers', '0', '--out', 'none', '--reports-to', `127.0.0.1:${feed.port}`]);
  expect(again.code).toBe(0);
  expect(again.stdout).toContain(`${n} AA`);
  expect(feed.logs.join('\n').match(/"duplicate"/g)?.length).toBe(n);
}, 240_000);
