// `npm run bench:infer`: worker throughput and per-study latency by stage (decode, preprocess, inference, scoring,
// and the localisation of flagged findings)
// through the worker's own pipeline: the decode/preprocess thread pool, the cross-study batcher and real ONNX
// Runtime sessions, on synthetic studies from tools/synth (generated once, cached under var/bench-infer/).
//
//   npm run bench:infer -- [--studies 40] [--distinct 4] [--concurrency 3] [--loaders 2] [--provider cpu|cuda]
//                          [--batch 1] [--batch-wait 5] [--ort-threads 1] [--models DIR | --stand-in] [--matrix N]
//                          [--no-localise]
//
// Without a trained bundle, --stand-in builds one with the training recipe's own architectures (image CNN width 8,
// 256-d, the default 48x64x64 grid; text encoder 2 layers) and RANDOM weights: timings are representative, scores
// are not. The bundle used is printed with the figures.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { batchingEmbedder } from '../services/worker/batcher';
import { createProcessLoader } from '../services/worker/load-pool';
import { loadWorkerModels } from '../services/worker/models';
import { scoreStudyFolder } from '../services/worker/pipeline';
import { manifestQuerySet } from '../services/worker/query-vectors';
import { generateStudy } from '../tools/synth/study';
import { percentile } from './stats';
import { failCli, parseOptions } from '../shared/cli-args';

const ROOT = path.resolve(__dirname, '..', '..');

const STAND_IN = `
import json, hashlib, os, sys
sys.path.insert(0, sys.argv[2])
import torch, nt_image, nt_text, nt_tokenizer
from queries import DEFAULT_QUERIES, NORMAL_QUERY
out, shape, dim = sys.argv[1], (48, 64, 64), 256
torch.manual_seed(0)
texts = [q[k] for q in DEFAULT_QUERIES + [NORMAL_QUERY] for k in ("text", "negativeText") if k in q]
vocab = nt_tokenizer.train_wordpiece(texts * 3, 400)
json.dump(nt_tokenizer.tokenizer_json(vocab), open(os.path.join(out, "tokenizer.json"), "w"))
tok = nt_tokenizer.Tokenizer(vocab)
nt_text.export(nt_text.TextEncoder(tok.size, dim=dim, layers=2, heads=4, ffn=512, max_len=128).eval(), os.path.join(out, "text-encoder.onnx"))
enc = {}
for seq in ["T1", "T2", "FLAIR", "DWI", "ADC"]:
    f = "image-%s.onnx" % seq.lower()
    nt_image.export(nt_image.ImageEncoder(dim, width=8).eval(), os.path.join(out, f), shape)
    enc[seq] = {"id": "stand-in-" + seq, "file": f, "input": {"name": "volume", "dtype": "float32", "shape": ["batch", 1, *shape]},
                "output": {"name": "embedding", "dtype": "float32", "shape": ["batch", dim]}}
cal = {"a": 10.0, "b": 0.0, "threshold": 0.05, "targetSensitivity": 0.95}
files = {n: hashlib.sha256(open(os.path.join(out, n), "rb").read()).hexdigest() for n in ["tokenizer.json", "text-encoder.onnx"] + [e["file"] for e in enc.values()]}
json.dump({"schemaVersion": 1, "bundleId": "bench-stand-in-random-weights", "version": "0", "createdAt": "1970-01-01T00:00:00Z", "embeddingDim": dim,
  "textEncoder": {"id": "stand-in-text", "file": "text-encoder.onnx", "tokenizer": "tokenizer.json", "maxLength": 128,
    "inputs": [{"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]}, {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "sequence"]}],
    "output": {"name": "last_hidden_state", "dtype": "float32", "shape": ["batch", "sequence", dim]}, "pooling": "mean", "normalize": True},
  "imageEncoders": enc,
  "preprocessing": {"orientation": "LPS", "spacingMm": [3, 3, 3], "shape": list(shape), "centre": "foreground-centroid", "interpolation": "trilinear",
    "intensity": {"method": "zscore-foreground", "clip": [-5, 5]}},
  "combination": "mean-embedding", "queries": [dict(q, calibration=cal) for q in DEFAULT_QUERIES], "normalQuery": dict(NORMAL_QUERY, calibration=cal),
  "trainedOn": {"description": "random weights: benchmark stand-in", "studies": 0}, "files": files}, open(os.path.join(out, "manifest.json"), "w"), indent=2)
`;

/** Built once (seeded) and kept under var/bench-infer/stand-in-bundle. */
function standInBundle(): string {
  const dir = path.join(ROOT, 'var', 'bench-infer', 'stand-in-bundle');
  if (existsSync(path.join(dir, 'manifest.json'))) return dir;
  mkdirSync(dir, { recursive: true });
  execFileSync(process.env.NEUROTRIAGE_PYTHON ?? '/usr/bin/python3', ['-c', STAND_IN, dir, path.join(ROOT, 'onnx-models', 'training')], { stdio: ['ignore', 'ignore', 'inherit'] });
  return dir;
}

/** Synthetic studies written once as the listener stores them; reused by later runs with the same options. */
function studies(seed: number, distinct: number, matrix: number | undefined): string[] {
  const base = path.join(ROOT, 'var', 'bench-infer', `seed${seed}${matrix ? `-m${matrix}` : ''}`);
  const dirs: string[] = [];
  for (let i = 0; i < distinct; i++) {
    const dir = path.join(base, String(i));
    if (!existsSync(path.join(dir, '.complete'))) {
      const t0 = performance.now();
      const s = generateStudy(seed, i, { normalFraction: 0.5, ...(matrix ? { matrix } : {}) });
      for (const f of s.files) {
        mkdirSync(path.join(dir, f.SeriesInstanceUID), { recursive: true });
        writeFileSync(path.join(dir, f.SeriesInstanceUID, `${f.SOPInstanceUID}.dcm`), f.data);
      }
      writeFileSync(path.join(dir, '.complete'), '');
      const mb = s.files.reduce((n, f) => n + f.data.length, 0) / 1e6;
      console.error(`generated study ${i + 1}/${distinct}: ${s.files.length} instances, ${mb.toFixed(1)} MB, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    dirs.push(dir);
  }
  return dirs;
}

/** User + system CPU seconds of a live process, from /proc (Linux; 0 elsewhere): the loader processes' share. */
function processCpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100 on Linux)
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  const values = parseOptions({
    studies: { type: 'string', default: '40' },
    distinct: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '3' },
    loaders: { type: 'string', default: '2' },
    provider: { type: 'string', default: 'cpu' },
    batch: { type: 'string', default: '1' },
    'batch-wait': { type: 'string', default: '5' },
    'ort-threads': { type: 'string', default: '1' },
    models: { type: 'string' },
    'stand-in': { type: 'boolean', default: false },
    matrix: { type: 'string' },
    seed: { type: 'string', default: '5' },
    json: { type: 'string' },
    /** --no-localise: without the localisation of flagged findings (WORKER_LOCALISE=false), to see what it adds. */
    localise: { type: 'boolean', default: true },
  }, process.argv.slice(2), { allowNegative: true });
  const n = Number(values.studies);
  const concurrency = Number(values.concurrency);
  const batch = Number(values.batch);
  const modelsDir = values['stand-in'] ? standInBundle() : (values.models ?? process.env.MODELS_DIR ?? path.join(ROOT, 'onnx-models'));
  if (!existsSync(path.join(modelsDir, 'manifest.json'))) {
    console.error(`no model bundle at ${modelsDir}: train one (npm run models:train), pass --models DIR, or use --stand-in`);
    process.exit(2);
  }
  const dirs = studies(Number(values.seed), Number(values.distinct), values.matrix ? Number(values.matrix) : undefined);
  const counts = dirs.map((d) => readdirSync(d, { recursive: true }).filter((f) => String(f).endsWith('.dcm')).length);
  const instances = Math.round(counts.reduce((a, b) => a + b, 0) / counts.length);

  const models = await loadWorkerModels(modelsDir, {
    providers: values.provider.split(','),
    // 0: ONNX Runtime's default (as WORKER_ORT_THREADS=0); the worker's default is 1.
    ...(Number(values['ort-threads']) > 0 ? { threads: Number(values['ort-threads']) } : {}),
  });
  const loader = createProcessLoader({
    processes: Number(values.loaders), maxRssMb: 1024, timeoutMs: 600_000, preprocessing: models.manifest.preprocessing, sequences: models.sequences,
  });
  const image = batchingEmbedder(models.image, { maxBatch: batch, maxWaitMs: Number(values['batch-wait']) });
  const querySet = await manifestQuerySet(models.manifest, models.text);
  const deps = { loader, models, image, ...(values.localise ? {} : { localise: false as const }) };

  // Warm-up: thread start, codec WebAssembly, ONNX Runtime's first runs; not counted.
  await Promise.all(dirs.slice(0, Math.max(1, Math.min(concurrency, dirs.length))).map((d) => scoreStudyFolder(deps, d, querySet)));

  const timings: { decode: number; preprocess: number; inference: number; scoring: number; total: number; wall: number }[] = [];
  /** Localisation of flagged findings (occlusion search), for the studies that had a flag: issue 13's "added worker time". */
  const localise: number[] = [];
  let next = 0;
  // CPU time of the worker process (main thread, ONNX Runtime's threads) and its loader processes: a figure that
  // does not depend on what else the machine is running, unlike wall-clock throughput.
  const loaderCpu = () => loader.pids().reduce((sum, pid) => sum + processCpuSeconds(pid), 0);
  const loaderCpu0 = loaderCpu();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        const s0 = performance.now();
        const { result } = await scoreStudyFolder(deps, dirs[i % dirs.length], querySet);
        timings.push({ ...result.timingsMs, wall: performance.now() - s0 });
        if (result.timingsMs.localise !== undefined) localise.push(result.timingsMs.localise);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuSecondsPerStudy = ((cpu.user + cpu.system) / 1e6 + loaderCpu() - loaderCpu0) / n;
  await loader.close();
  await models.close();

  const stages = ['decode', 'preprocess', 'inference', 'scoring', 'total', 'wall'] as const;
  const summary = {
    studiesPerSecond: n / seconds,
    cpuSecondsPerStudy,
    /** What the machine's cores could sustain if this process had them to itself: cores / CPU time per study. */
    cpuBoundStudiesPerSecond: os.cpus().length / cpuSecondsPerStudy,
    studies: n,
    distinctStudies: dirs.length,
    instancesPerStudy: instances,
    seconds,
    provider: models.provider,
    bundle: `${models.manifest.bundleId}@${models.manifest.version}`,
    grid: models.manifest.preprocessing.shape,
    sequences: models.sequences,
    concurrency,
    loaders: Number(values.loaders),
    batch,
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), loadAvg: os.loadavg().map((x) => Number(x.toFixed(2))), node: process.version },
    latencyMs: Object.fromEntries(stages.map((s) => [s, { p50: percentile(timings.map((t) => t[s]), 50), p95: percentile(timings.map((t) => t[s]), 95) }])),
    localiseMs: { studies: localise.length, p50: percentile(localise, 50), p95: percentile(localise, 95) },
  };
  console.log(`\nworker inference benchmark: ${n} studies (${dirs.length} distinct, ${instances} instances on average), ${summary.bundle}, provider ${summary.provider}`);
  console.log(`concurrency ${concurrency}, loader processes ${values.loaders}, ONNX Runtime threads ${values['ort-threads']}, batch ${batch}; ${os.cpus().length} CPUs, load average ${summary.machine.loadAvg.join(' ')}`);
  console.log(`throughput: ${summary.studiesPerSecond.toFixed(2)} studies/s (${seconds.toFixed(1)} s)`);
  console.log(`CPU time: ${(cpuSecondsPerStudy * 1000).toFixed(0)} ms per study (all threads) -> at most ${summary.cpuBoundStudiesPerSecond.toFixed(2)} studies/s on ${os.cpus().length} otherwise idle cores`);
  console.log('per-study latency (ms)   p50      p95');
  for (const s of stages) console.log(`  ${s.padEnd(20)} ${summary.latencyMs[s].p50.toFixed(1).padStart(7)}  ${summary.latencyMs[s].p95.toFixed(1).padStart(7)}`);
  console.log('  (total: load through scoring for one study, including waits for a load thread; wall: as seen by the caller)');
  if (localise.length > 0) {
    console.log(`  ${'localise'.padEnd(20)} ${summary.localiseMs.p50.toFixed(1).padStart(7)}  ${summary.localiseMs.p95.toFixed(1).padStart(7)}   (the ${localise.length} of ${n} studies with a flagged finding; part of total)`);
  } else console.log(values.localise ? '  localise: no study had a flagged finding (try more --distinct studies)' : '  localise: off (--no-localise)');
  if (values.json) writeFileSync(values.json, JSON.stringify(summary, null, 2));
}

main().catch((err: unknown) => failCli(err, { stack: true }));
