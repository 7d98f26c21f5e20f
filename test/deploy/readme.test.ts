// The README's commands, run verbatim. Every line of its ```sh blocks is either run here exactly as written, or named
// below with the reason it is not. The synth command C-STOREs to NEUROTRIAGE@127.0.0.1:11112, a fixed port: it runs
// inside a private network namespace (unshare -rn, only loopback) with a real DCMTK storescp as NEUROTRIAGE there,
// in a scratch copy of the sources (npm run synth builds, and writes var/cohort, in the folder it runs in).
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { ROOT } from './manifests';

/** Commands this test does not run, and why. */
const NOT_RUN: Record<string, string> = {
  'npm run setup && npm start': 'setup is what CI runs first; npm start is the long-running system itself',
  'npm test': 'this test is part of it (and CI runs it)',
  'npm run demo': 'runs npm start (the long-running system) and keeps running until Ctrl-C',
  'echoscu -aet STORESCU -aec NEUROTRIAGE 127.0.0.1 11112': 'needs npm start\'s listener and its loopback allow-list; test/listener/store.test.ts runs DCMTK against the listener',
  'TCP_NODELAY=1 storescu -aec NEUROTRIAGE +sd +r 127.0.0.1 11112 var/cohort/dicom': 'as echoscu; test/start/supervise.test.ts sends studies to npm start with storescu as STORESCU',
};

/** The commands of the README's ```sh blocks, one per line, comments removed. */
export function readmeCommands(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh\n([\s\S]*?)^```/gm)]
    .flatMap((m) => m[1].split('\n'))
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

const commands = readmeCommands(readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
const toRun = commands.filter((c) => !(c in NOT_RUN));

const walk = (dir: string): string[] =>
  readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });

test('the README\'s commands are the ones this test knows: each is run below or excluded with a reason', () => {
  expect(commands.length).toBeGreaterThanOrEqual(4);
  for (const c of Object.keys(NOT_RUN)) expect(commands).toContain(c);
  expect(toRun).toEqual([expect.stringMatching(/^npm run synth -- /)]);
});

describe.each(toRun)('verbatim: %s', (command) => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(path.join(tmpdir(), 'nt-readme-'));
    // A scratch copy: sources and build settings copied, node_modules linked (npm run builds into ./dist here).
    for (const f of ['package.json', 'tsconfig.json', 'tsconfig.build.json']) copyFileSync(path.join(ROOT, f), path.join(work, f));
    for (const d of ['services', 'shared', 'tools', 'scripts', 'bench', 'test']) cpSync(path.join(ROOT, d), path.join(work, d), { recursive: true });
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(work, 'node_modules'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  test('runs as written and does what the README says', async () => {
    const rx = path.join(work, 'received');
    const script = [
      'set -e',
      'ip link set lo up',
      `mkdir -p "${rx}"`,
      `storescp --aetitle NEUROTRIAGE --output-directory "${rx}" +xa 11112 & scp=$!`,
      'for i in $(seq 1 100); do echoscu -aec NEUROTRIAGE 127.0.0.1 11112 2>/dev/null && break; sleep 0.1; done',
      'set +e',
      command,
      'rc=$?',
      'kill $scp; wait $scp 2>/dev/null',
      'exit $rc',
    ].join('\n');
    const run = await new Promise<{ code: number; out: string }>((resolve) => {
      const child = spawn('unshare', ['-rn', 'bash', '-c', script], { cwd: work, env: { ...process.env, TCP_NODELAY: '1' } });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-8000)));
      child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-8000)));
      child.on('close', (code) => resolve({ code: code ?? 1, out }));
    });
    expect({ code: run.code, out: run.code === 0 ? '' : run.out }).toEqual({ code: 0, out: '' });
    // 8 studies written with their preview, and every instance of them stored by the SCP.
    const cohort = path.join(work, 'var/cohort');
    const summary = JSON.parse(readFileSync(path.join(cohort, 'cohort.json'), 'utf8')) as { counts: { studies: number; instances: number } };
    expect(summary.counts.studies).toBe(8);
    expect(run.out).toMatch(new RegExp(`sent ${summary.counts.instances} instances, 0 refused`));
    expect(walk(rx)).toHaveLength(summary.counts.instances);
    const png = PNG.sync.read(readFileSync(path.join(cohort, 'preview.png')));
    expect(png.height).toBeGreaterThan(8 * 100);
    expect(existsSync(path.join(work, 'dist/tools/synth/cli.js'))).toBe(true);
  }, 600_000);
});
