// Writes a cohort: N studies from a seed into <out>/dicom/<Study>/<Series>/<SOP>.dcm, reports.jsonl,
// labels.jsonl, cohort.json and an optional preview PNG; optionally pushes each study by C-STORE as it is made.
// Generation runs on worker threads when the compiled worker is present (2 cores: 2 workers), otherwise in
// process; output is written in study order whatever order the workers finish in, so files are deterministic.
import { mkdir, writeFile, appendFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { previewPng } from './preview';
import type { StoreSender } from './send';
import { createStudyContext, generateStudy, GENERATOR_VERSION } from './study';
import { FINDING_TYPES, type GeneratedStudy, type StudyReport, type SynthOptions } from './types';

export interface CohortRequest {
  n: number;
  seed: number | string;
  /** Output folder; undefined = send only, write nothing. */
  out?: string;
  options: SynthOptions;
  /** Worker threads for generation; 0 = in process. */
  workers: number;
  /** Write preview.png with the first `previewCount` studies. */
  previewCount: number;
  sender?: StoreSender;
  sendConcurrency: number;
  onStudy?: (s: { index: number; bytes: number; instances: number }) => void;
  /** After a study's instances were sent (without a sender: once it is generated), e.g. to send its report. */
  afterStudy?: (report: StudyReport) => Promise<void>;
}

export interface CohortSummary {
  generator: string;
  seed: number | string;
  options: SynthOptions;
  counts: {
    studies: number;
    normal: number;
    abnormal: number;
    findings: Record<string, number>;
    series: number;
    instances: number;
    bytes: number;
    sent: number;
    sendFailures: number;
  };
  seconds: number;
}

/** Compiled worker beside this module (dist/); absent when running from TypeScript sources (jest). */
function workerPath(): string | null {
  const p = path.join(__dirname, 'worker.js');
  return existsSync(p) && __filename.endsWith('.js') ? p : null;
}

interface StudyJob {
  index: number;
}

/** Produces studies in index order from a pool of workers (or in process). */
async function* studies(req: CohortRequest): AsyncGenerator<GeneratedStudy> {
  const wp = workerPath();
  if (req.workers <= 0 || !wp) {
    const ctx = createStudyContext();
    for (let i = 0; i < req.n; i++) yield generateStudy(req.seed, i, req.options, ctx);
    return;
  }
  const pool = Array.from({ length: Math.min(req.workers, req.n) }, () => new Worker(wp, { workerData: { seed: req.seed, options: req.options } }));
  const ready = new Map<number, GeneratedStudy>();
  const waiters = new Map<number, (s: GeneratedStudy) => void>();
  let nextToAssign = 0;
  let failure: Error | null = null;
  const assign = (w: Worker): void => {
    // keep at most 2 studies per worker ahead of the writer, so memory stays bounded
    if (nextToAssign < req.n) w.postMessage({ index: nextToAssign++ } satisfies StudyJob);
  };
  for (const w of pool) {
    w.on('message', (s: GeneratedStudy) => {
      const waiter = waiters.get(s.index);
      if (waiter) {
        waiters.delete(s.index);
        waiter(s);
      } else ready.set(s.index, s);
      assign(w);
    });
    w.on('error', (e) => {
      failure = e;
      for (const fn of waiters.values()) fn(null as unknown as GeneratedStudy);
    });
    assign(w);
    assign(w);
  }
  try {
    for (let i = 0; i < req.n; i++) {
      const s = ready.get(i) ?? (await new Promise<GeneratedStudy>((resolve) => waiters.set(i, resolve)));
      ready.delete(i);
      if (failure) throw failure;
      yield s;
    }
  } finally {
    await Promise.all(pool.map((w) => w.terminate()));
  }
}

export async function writeCohort(req: CohortRequest): Promise<CohortSummary> {
  const t0 = Date.now();
  const out = req.out;
  if (out) {
    await mkdir(path.join(out, 'dicom'), { recursive: true });
    await rm(path.join(out, 'reports.jsonl'), { force: true });
    await rm(path.join(out, 'labels.jsonl'), { force: true });
  }
  const counts: CohortSummary['counts'] = {
    studies: 0, normal: 0, abnormal: 0, findings: Object.fromEntries(FINDING_TYPES.map((t) => [t, 0])), series: 0, instances: 0, bytes: 0, sent: 0, sendFailures: 0,
  };
  const previews: GeneratedStudy[] = [];
  const sending = new Set<Promise<void>>();
  let sendError: Error | null = null;
  for await (const s of studies(req)) {
    const bytes = s.files.reduce((a, f) => a + f.data.byteLength, 0);
    if (out) {
      const dirs = new Set(s.files.map((f) => path.dirname(f.path)));
      for (const d of dirs) await mkdir(path.join(out, d), { recursive: true });
      for (const f of s.files) await writeFile(path.join(out, f.path), f.data);
      await appendFile(path.join(out, 'reports.jsonl'), JSON.stringify(s.report) + '\n');
      await appendFile(path.join(out, 'labels.jsonl'), JSON.stringify(s.labels) + '\n');
    }
    counts.studies++;
    if (s.labels.normal) counts.normal++;
    else counts.abnormal++;
    for (const f of s.labels.findings) counts.findings[f.type] = (counts.findings[f.type] ?? 0) + 1;
    counts.series += s.labels.series.length;
    counts.instances += s.files.length;
    counts.bytes += bytes;
    if (previews.length < req.previewCount) previews.push({ ...s, files: [] });
    if (req.sender) {
      if (sendError) throw sendError;
      while (sending.size >= Math.max(1, req.sendConcurrency)) await Promise.race(sending);
      const p: Promise<void> = req.sender
        .sendStudy(s.files)
        .then(async (r) => {
          counts.sent += r.instances - r.failed;
          counts.sendFailures += r.failed;
          await req.afterStudy?.(s.report);
        })
        .catch((e: Error) => {
          sendError = e;
        })
        .finally(() => sending.delete(p));
      sending.add(p);
    } else await req.afterStudy?.(s.report);
    req.onStudy?.({ index: s.index, bytes, instances: s.files.length });
  }
  await Promise.all(sending);
  if (sendError) throw sendError;
  const summary: CohortSummary = { generator: `neurotriage-synth ${GENERATOR_VERSION}`, seed: req.seed, options: req.options, counts, seconds: (Date.now() - t0) / 1000 };
  if (out) {
    if (previews.length) await writeFile(path.join(out, 'preview.png'), previewPng(previews));
    await writeFile(path.join(out, 'cohort.json'), JSON.stringify(summary, null, 2) + '\n');
  }
  return summary;
}
