// `npm run bench:synth`: how fast the synthetic cohort generator makes studies (studies/s, MB and instances per
// study, default protocol and --fast), and how fast the PACS simulator pushes them by C-STORE: our in-process
// dcmjs-dimse sender (TCP_NODELAY on its socket) against DCMTK storescu (TCP_NODELAY=1), both into a DCMTK
// storescp. storescp cannot bind loopback only, so storescp and both senders run inside a private network
// namespace (`unshare -rn`, loopback up) where nothing else can reach it.
// Environment: BENCH_STUDIES (default 24), BENCH_FAST_STUDIES (default 40), BENCH_SEND_STUDIES (default 6),
// BENCH_WORKERS (default: cores).
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { writeCohort } from '../tools/synth/cohort';
import { createStoreSender, withConcurrency } from '../tools/synth/send';
import { DEFAULT_OPTIONS, type DicomFile } from '../tools/synth/types';

const STUDIES = Number(process.env.BENCH_STUDIES ?? 24);
const FAST_STUDIES = Number(process.env.BENCH_FAST_STUDIES ?? 40);
const SEND_STUDIES = Number(process.env.BENCH_SEND_STUDIES ?? 6);
const WORKERS = Number(process.env.BENCH_WORKERS ?? availableParallelism());

const walk = (dir: string): string[] =>
  readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });

/** Child mode, inside the namespace: send every study folder under <dir>/dicom with our sender, print seconds. */
async function sendChild(dir: string, port: number, concurrency: number): Promise<void> {
  const root = path.join(dir, 'dicom');
  const studies = readdirSync(root).map((study) =>
    walk(path.join(root, study)).map((p): DicomFile => ({ path: p, SeriesInstanceUID: '', SOPInstanceUID: '', data: readFileSync(p) })),
  );
  const sender = createStoreSender({ calledAe: 'NT_BENCH', host: '127.0.0.1', port });
  const t0 = process.hrtime.bigint();
  let failed = 0;
  await withConcurrency(studies, concurrency, async (files) => {
    failed += (await sender.sendStudy(files)).failed;
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(JSON.stringify({ seconds, failed }) + '\n');
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

async function main(): Promise<void> {
  if (process.argv[2] === '--send-child') {
    await sendChild(process.argv[3]!, Number(process.argv[4]), Number(process.argv[5]));
    return;
  }
  const base = mkdtempSync(path.join(tmpdir(), 'nt-bench-synth-'));
  const lines: string[] = [];
  const say = (l: string): void => {
    console.log(l);
    lines.push(l);
  };
  try {
    say(`machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${WORKERS} worker threads`);
    const runs: Array<[string, number, boolean, number | undefined]> = [
      ['default protocol', STUDIES, false, undefined],
      ['--matrix 128', STUDIES, false, 128],
      ['--fast (64x64, 12 slices)', FAST_STUDIES, true, undefined],
    ];
    for (const [label, n, fast, matrix] of runs) {
      const out = path.join(base, `${fast}-${matrix ?? 0}`);
      const s = await writeCohort({ n, seed: 1, out, options: { ...DEFAULT_OPTIONS, fast, matrix }, workers: WORKERS, previewCount: 0, sendConcurrency: 1 });
      await rm(out, { recursive: true, force: true });
      const c = s.counts;
      say(`generate ${label}: ${n} studies in ${s.seconds.toFixed(1)} s = ${(n / s.seconds).toFixed(2)} studies/s; ${(c.bytes / n / 1e6).toFixed(1)} MB/study, ${(c.instances / n).toFixed(0)} instances/study, ${(c.series / n).toFixed(1)} series/study; 500 studies ~ ${((500 / (n / s.seconds)) / 60).toFixed(1)} min`);
    }

    const sendDir = path.join(base, 'send');
    const s = await writeCohort({ n: SEND_STUDIES, seed: 2, out: sendDir, options: DEFAULT_OPTIONS, workers: WORKERS, previewCount: 0, sendConcurrency: 1 });
    const files = walk(path.join(sendDir, 'dicom'));
    const mb = s.counts.bytes / 1e6;
    const script = [
      'set -e',
      'ip link set lo up',
      'mkdir -p "$1/rx1" "$1/rx2" "$1/rx3"',
      'start_scp() { storescp --aetitle NT_BENCH --output-directory "$1" +xa 11112 & scp=$!; for i in $(seq 1 50); do echoscu -aec NT_BENCH 127.0.0.1 11112 2>/dev/null && break; sleep 0.1; done; }',
      'stop_scp() { kill $scp; wait $scp 2>/dev/null || true; }',
      'start_scp "$1/rx1"',
      'node "$2" --send-child "$1/send" 11112 1',
      'stop_scp',
      'start_scp "$1/rx2"',
      'node "$2" --send-child "$1/send" 11112 2',
      'stop_scp',
      'start_scp "$1/rx3"',
      't0=$(date +%s.%N); storescu -aec NT_BENCH -aet NT_SYNTH +sd +r 127.0.0.1 11112 "$1/send/dicom"; t1=$(date +%s.%N)',
      'stop_scp',
      'awk -v a="$t0" -v b="$t1" \'BEGIN { printf "{\\"storescu\\": %.6f}\\n", b - a }\'',
    ].join('\n');
    const r = await run('unshare', ['-rn', 'bash', '-c', script, 'bench', base, __filename], { ...process.env, TCP_NODELAY: '1' });
    if (r.code !== 0) throw new Error(`send benchmark failed: ${r.stderr.slice(-500)}`);
    const results = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { seconds?: number; storescu?: number });
    const [one, two, scu] = [results[0]!.seconds!, results[1]!.seconds!, results[2]!.storescu!];
    const received = [1, 2, 3].map((k) => walk(path.join(base, `rx${k}`)).length);
    const fmt = (label: string, sec: number, got: number): string =>
      `send ${label}: ${files.length} instances (${mb.toFixed(0)} MB, ${SEND_STUDIES} studies) in ${sec.toFixed(2)} s = ${(files.length / sec).toFixed(0)} instances/s, ${(mb / sec).toFixed(0)} MB/s; received ${got}`;
    say(fmt('dcmjs-dimse Client, 1 association at a time', one, received[0]!));
    say(fmt('dcmjs-dimse Client, 2 associations', two, received[1]!));
    say(fmt('DCMTK storescu, 1 association', scu, received[2]!));
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
  console.log(`\ncommand: npm run bench:synth (BENCH_STUDIES=${STUDIES} BENCH_FAST_STUDIES=${FAST_STUDIES} BENCH_SEND_STUDIES=${SEND_STUDIES})`);
}

main().catch((e: Error) => {
  console.error(`bench:synth: ${e.message}`);
  process.exit(1);
});
