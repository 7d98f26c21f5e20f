// `npm run volumes -- <dicom root> --out <dir> [--spec manifest.json] [--concurrency N]`: every study folder under
// the root (one folder per study, instances anywhere below it) becomes canonical float32 volumes, through the same
// shared/imaging module the worker uses, so training tensors and served tensors cannot drift. Writes
// <out>/<StudyInstanceUID>/<SEQ>.f32 (raw little-endian float32, C order [D, H, W]) and <out>/index.jsonl (one JSON
// object per study, sorted by StudyInstanceUID). Studies run on worker threads (one per core by default).
// `npm run volumes -- --bench` measures per-study latency (decode and preprocess) on a generated study instead.
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import cliProgress from 'cli-progress';
import type { Preprocessing, Sequence } from '../shared/model-manifest';
import { createPixelDecoder, DEFAULT_PREPROCESSING, loadStudyVolumes, parsePreprocessing, type PixelDecoder, type StudyVolumes } from '../shared/imaging';

export interface IndexRecord {
  StudyInstanceUID: string;
  /** Study folder relative to the root. */
  folder: string;
  /** Per sequence: file relative to the output dir, and which series it came from. */
  sequences: Partial<Record<Sequence, { file: string; SeriesInstanceUID: string; key: string; centreMm: [number, number, number] }>>;
  missing: Sequence[];
  shape: [number, number, number];
  spacing: [number, number, number];
  dtype: 'float32';
  /** Every series with its classification and what happened to it. */
  series: { key: string; sequence: string; used: boolean; reason?: string; rule: string }[];
  unreadableFiles: number;
}

export interface StudyOutcome {
  folder: string;
  record?: IndexRecord;
  /** Why the folder produced no record (no readable DICOM). */
  error?: string;
  timings?: StudyVolumes['timings'];
}

export interface VolumesOptions {
  root: string;
  out: string;
  spec: Preprocessing;
  concurrency: number;
  /** Run studies on worker threads (needs the compiled .js); in-process otherwise. */
  threads: boolean;
  onStudy?: (o: StudyOutcome) => void;
}

export interface VolumesSummary {
  studies: number;
  written: number;
  failed: StudyOutcome[];
  perSequence: Partial<Record<Sequence, number>>;
  seconds: number;
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const out: string[] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p)));
    else if (e.isFile() && !e.name.startsWith('.') && e.name !== 'DICOMDIR') out.push(p);
  }
  return out;
}

/** Study folders: the root's sub-folders; the root itself when it holds files directly and no sub-folders. */
export async function findStudyFolders(root: string): Promise<string[]> {
  const entries = await readdir(root, { withFileTypes: true });
  const dirs = entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => path.join(root, e.name));
  return dirs.length > 0 ? dirs.sort() : [root];
}

/** One study folder -> volumes on disk and its index record. Used in-process and on worker threads. */
export async function processStudy(folder: string, root: string, out: string, spec: Preprocessing, decoder: PixelDecoder): Promise<StudyOutcome> {
  const rel = path.relative(root, folder) || '.';
  const files = await listFiles(folder);
  const res = await loadStudyVolumes(files, spec, { decoder });
  if (!res.StudyInstanceUID) return { folder: rel, error: `no readable DICOM (${res.unreadable.length} unreadable files)` };
  if (!/^[0-9.]{1,64}$/.test(res.StudyInstanceUID)) return { folder: rel, error: 'StudyInstanceUID is not a valid UID' };
  const studyDir = path.join(out, res.StudyInstanceUID);
  await mkdir(studyDir, { recursive: true });
  const sequences: IndexRecord['sequences'] = {};
  for (const [seq, vol] of Object.entries(res.volumes) as [Sequence, Float32Array][]) {
    const file = path.posix.join(res.StudyInstanceUID, `${seq}.f32`);
    // Float32Array memory is little-endian on every platform Node supports (x64, arm64).
    await writeFile(path.join(out, file), new Uint8Array(vol.buffer, vol.byteOffset, vol.byteLength));
    const info = res.volumeInfo[seq]!;
    sequences[seq] = { file, SeriesInstanceUID: info.SeriesInstanceUID, key: info.key, centreMm: info.centreMm.map((v) => Math.round(v * 100) / 100) as [number, number, number] };
  }
  return {
    folder: rel,
    timings: res.timings,
    record: {
      StudyInstanceUID: res.StudyInstanceUID,
      folder: rel,
      sequences,
      missing: res.missing,
      shape: res.shape,
      spacing: res.spacingMm,
      dtype: 'float32',
      series: res.series.map((s) => ({ key: s.key, sequence: s.sequence, used: s.used, ...(s.reason ? { reason: s.reason } : {}), rule: s.rule })),
      unreadableFiles: res.unreadable.length,
    },
  };
}

interface WorkerInit {
  role: 'volumes-worker';
  root: string;
  out: string;
  spec: Preprocessing;
}

function runOnThreads(folders: string[], opts: VolumesOptions, onDone: (o: StudyOutcome) => void): Promise<void> {
  const init: WorkerInit = { role: 'volumes-worker', root: opts.root, out: opts.out, spec: opts.spec };
  const queue = [...folders];
  const workers = Array.from({ length: Math.min(opts.concurrency, folders.length) }, () => new Worker(__filename, { workerData: init }));
  return new Promise((resolve, reject) => {
    let active = workers.length;
    const finished = new Set<Worker>();
    const feed = (w: Worker) => {
      const next = queue.shift();
      if (next === undefined) {
        finished.add(w);
        void w.terminate();
        if (--active === 0) resolve();
        return;
      }
      w.postMessage(next);
    };
    for (const w of workers) {
      w.on('message', (o: StudyOutcome) => {
        onDone(o);
        feed(w);
      });
      w.on('error', (e) => {
        for (const x of workers) void x.terminate();
        reject(e);
      });
      // A thread that dies without an 'error' (e.g. killed for memory) must not leave the run waiting forever.
      w.on('exit', (code) => {
        if (code !== 0 && !finished.has(w)) {
          for (const x of workers) void x.terminate();
          reject(new Error(`a volumes worker thread exited with code ${code}`));
        }
      });
      feed(w);
    }
  });
}

async function runInProcess(folders: string[], opts: VolumesOptions, onDone: (o: StudyOutcome) => void): Promise<void> {
  const decoder = createPixelDecoder();
  const queue = [...folders];
  await Promise.all(
    Array.from({ length: Math.min(opts.concurrency, folders.length) }, async () => {
      for (let f = queue.shift(); f !== undefined; f = queue.shift()) onDone(await processStudy(f, opts.root, opts.out, opts.spec, decoder));
    }),
  );
}

/** Converts every study under opts.root; writes index.jsonl last (atomically) so a reader never sees half of it. */
export async function runVolumes(opts: VolumesOptions): Promise<VolumesSummary> {
  const t0 = performance.now();
  await mkdir(opts.out, { recursive: true });
  const folders = await findStudyFolders(opts.root);
  const records: IndexRecord[] = [];
  const failed: StudyOutcome[] = [];
  const onDone = (o: StudyOutcome) => {
    if (o.record) records.push(o.record);
    else failed.push(o);
    opts.onStudy?.(o);
  };
  if (opts.threads && opts.concurrency > 1 && __filename.endsWith('.js')) await runOnThreads(folders, opts, onDone);
  else await runInProcess(folders, opts, onDone);
  records.sort((a, b) => a.StudyInstanceUID.localeCompare(b.StudyInstanceUID));
  const tmp = path.join(opts.out, `.index.jsonl.${process.pid}`);
  await writeFile(tmp, records.map((r) => JSON.stringify(r)).join('\n') + (records.length ? '\n' : ''));
  await rename(tmp, path.join(opts.out, 'index.jsonl'));
  const perSequence: VolumesSummary['perSequence'] = {};
  for (const r of records) for (const s of Object.keys(r.sequences) as Sequence[]) perSequence[s] = (perSequence[s] ?? 0) + 1;
  return { studies: folders.length, written: records.length, failed, perSequence, seconds: (performance.now() - t0) / 1000 };
}

async function loadSpec(file: string | undefined): Promise<Preprocessing> {
  if (!file) return DEFAULT_PREPROCESSING;
  return parsePreprocessing(JSON.parse(await readFile(file, 'utf8')));
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};

/** Per-study latency on a generated 5-series study (256x256x25 per series), native and JPEG-LS compressed. */
async function bench(runs: number, spec: Preprocessing): Promise<void> {
  const { benchmarkStudy } = await import('../shared/imaging/synthetic');
  const { NativeCodecs, Transcoder, constants } = await import('dcmjs-codecs');
  const native = benchmarkStudy();
  await NativeCodecs.initializeAsync();
  const jpegls = native.map((f) => {
    const t = new Transcoder(f.data.slice().buffer as ArrayBuffer);
    t.transcode(constants.TransferSyntax.JpegLsLossless);
    return { name: f.name, data: new Uint8Array(t.getDicomPart10()) };
  });
  const decoder = createPixelDecoder();
  console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}, load average ${os.loadavg()[0].toFixed(1)}; study: ${native.length} instances, 5 series 256x256x25 (DWI b0+b1000), files already in memory`);
  for (const [label, files] of [['native (explicit VR LE)', native], ['JPEG-LS lossless', jpegls]] as const) {
    const totals: number[] = [];
    const cpu: number[] = [];
    const parse: number[] = [];
    const decode: number[] = [];
    const prep: number[] = [];
    for (let i = 0; i < runs + 2; i++) {
      const t = performance.now();
      const c0 = process.cpuUsage();
      const r = await loadStudyVolumes(files, spec, { decoder });
      const c = process.cpuUsage(c0);
      const total = performance.now() - t;
      if (Object.keys(r.volumes).length !== 5) throw new Error(`bench study lost a sequence: missing ${r.missing.join(',')}`);
      if (i < 2) continue; // warm-up (JIT, codec init)
      totals.push(total);
      cpu.push((c.user + c.system) / 1000);
      parse.push(r.timings.parseMs);
      decode.push(r.timings.decodeMs);
      prep.push(r.timings.preprocessMs);
    }
    const f = (xs: number[]) => `p50 ${pct(xs, 0.5).toFixed(1)} / p95 ${pct(xs, 0.95).toFixed(1)} ms`;
    console.log(`${label}: wall ${f(totals)}; CPU ${f(cpu)}; parse ${f(parse)}; decode ${f(decode)}; preprocess ${f(prep)} (wall; ${runs} runs)`);
  }
}

const USAGE = 'usage: npm run volumes -- <dicom root with study folders> --out <dir> [--spec manifest.json] [--concurrency N] [--quiet]';

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        out: { type: 'string' },
        spec: { type: 'string' },
        concurrency: { type: 'string' },
        bench: { type: 'boolean' },
        runs: { type: 'string' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    console.error(`volumes: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  // "--concurrency abc" was NaN threads: no study converted, and the run still ended 0.
  if (values.concurrency !== undefined && !/^[1-9]\d{0,3}$/.test(values.concurrency)) {
    console.error(`volumes: --concurrency must be a whole number from 1 to 9999, got ${JSON.stringify(values.concurrency)}\n${USAGE}`);
    return 2;
  }
  const spec = await loadSpec(values.spec);
  if (values.bench) {
    await bench(Number(values.runs ?? 20), spec);
    return 0;
  }
  if (positionals.length !== 1 || !values.out) {
    console.error(USAGE);
    return 2;
  }
  const concurrency = Math.max(1, Number(values.concurrency ?? os.availableParallelism?.() ?? os.cpus().length));
  const root = path.resolve(positionals[0]);
  const out = path.resolve(values.out);
  const folders = await findStudyFolders(root);
  const bar = new cliProgress.SingleBar({ format: 'volumes [{bar}] {value}/{total} studies | {eta_buffer}s left', etaBuffer: 20, stream: process.stderr }, cliProgress.Presets.shades_classic);
  if (!values.quiet) bar.start(folders.length, 0);
  const summary = await runVolumes({ root, out, spec, concurrency, threads: true, onStudy: () => values.quiet || bar.increment() });
  if (!values.quiet) bar.stop();
  for (const f of summary.failed) console.error(`skipped ${f.folder}: ${f.error}`);
  const seqs = Object.entries(summary.perSequence).map(([s, n]) => `${s} ${n}`).join(', ');
  console.error(`${summary.written}/${summary.studies} studies in ${summary.seconds.toFixed(1)} s (${(summary.studies / summary.seconds).toFixed(2)} studies/s, ${concurrency} threads); volumes: ${seqs || 'none'}; index ${path.join(out, 'index.jsonl')}`);
  return summary.written > 0 || summary.studies === 0 ? 0 : 1;
}

async function workerMain(init: WorkerInit): Promise<void> {
  const decoder = createPixelDecoder();
  parentPort!.on('message', (folder: string) => {
    processStudy(folder, init.root, init.out, init.spec, decoder).then(
      (o) => parentPort!.postMessage(o),
      (e: unknown) => parentPort!.postMessage({ folder: path.relative(init.root, folder), error: e instanceof Error ? e.message : String(e) } satisfies StudyOutcome),
    );
  });
}

if (!isMainThread && (workerData as WorkerInit | undefined)?.role === 'volumes-worker') {
  void workerMain(workerData as WorkerInit);
} else if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : String(e));
      process.exitCode = 1;
    },
  );
}

