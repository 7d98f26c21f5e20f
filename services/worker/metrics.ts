// The worker's Prometheus metrics on its own Registry (no global default registry, so tests and an in-process
// launcher can run several); http.ts serves them on /metrics.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '../../shared/process-metrics';
import { UNUSABLE_REASONS } from '../../shared/imaging/errors';

export const STAGES = ['decode', 'preprocess', 'inference', 'scoring', 'total'] as const;
export type Stage = (typeof STAGES)[number];

/** Study job outcomes (neurotriage_worker_jobs_total{outcome}). */
export const JOB_OUTCOMES = ['scored', 'retried', 'failed', 'unsupported'] as const;

/**
 * Every reason a study job can be dead-lettered with: the worker's own (errors.ts, queue.ts, load-study.ts) and
 * shared/imaging's unusable-series reasons. Each is exported at 0 from the start, so the first dead letter of a
 * reason is an increase Prometheus sees (a series born at 1 has no increase) and its alert fires.
 */
export const DEAD_LETTER_REASONS = [
  'corrupt-data', 'bad-job-data', 'study-missing', 'study-empty', 'no-scorable-sequence', 'unusable-data',
  'retries-exhausted', 'stalled', 'load-crashed', 'load-timeout', ...UNUSABLE_REASONS,
] as const;

/** Why a loader process ended while reading a study (load-pool.ts): each is also that study's dead-letter reason. */
export const LOADER_LOST_REASONS = ['load-crashed', 'too-large', 'load-timeout'] as const;

/**
 * Volumes per session call are whole numbers: bucket bounds halfway between them, so histogram_quantile's linear
 * interpolation inside a bucket lands on the size itself (every batch of 1: p50 = 1, not 0.5 as with le=1 as the
 * first bound). One bucket per size up to 8 (the GPU overlay's WORKER_BATCH_SIZE), coarser above.
 */
export const BATCH_SIZE_BUCKETS = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 12.5, 16.5, 24.5, 32.5, 48.5, 64.5];

export interface WorkerMetrics {
  registry: Registry;
  jobs: Counter<'outcome'>;
  stageSeconds: Histogram<'stage'>;
  provider: Gauge<'provider' | 'preferred' | 'model_version'>;
  deadLetters: Counter<'reason'>;
  queueDepth: Gauge<'state'>;
  batchSize: Histogram<'sequence'>;
  flags: Counter<'query' | 'priority'>;
  timeToResult: Histogram<'priority'>;
  oldestJobAge: Gauge;
  loadersLost: Counter<'reason'>;
}

/**
 * Counts a scored study's flagged findings in neurotriage_worker_flags_total. Every query the study was scored
 * against gets its series, at 0 when it did not flag: a query that stops flagging in a restarted or new worker
 * then shows a flag rate of 0, which NeurotriageFlagRateDrift compares with its baseline, instead of having no
 * series at all (no rate, no alert: the drop to zero went unseen).
 */
export function countFlags(flags: WorkerMetrics['flags'], findings: readonly { queryId: string; priority: string; flagged: boolean }[]): void {
  for (const f of findings) flags.inc({ query: f.queryId, priority: f.priority }, f.flagged ? 1 : 0);
}

export function createWorkerMetrics(opts: { defaultMetrics?: boolean } = {}): WorkerMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics) collectProcessMetrics(registry, 'worker');
  const registers = [registry];
  const metrics: WorkerMetrics = {
    registry,
    jobs: new Counter({
      name: 'neurotriage_worker_jobs_total',
      help: 'Study jobs finished, by outcome (scored, retried, failed, unsupported)',
      labelNames: ['outcome'],
      registers,
    }),
    stageSeconds: new Histogram({
      name: 'neurotriage_worker_stage_seconds',
      help: 'Per-study time spent in each pipeline stage',
      labelNames: ['stage'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    provider: new Gauge({
      name: 'neurotriage_worker_execution_provider_info',
      help: 'ONNX Runtime execution provider in use (value 1), the one configured first (preferred) and the model bundle version',
      labelNames: ['provider', 'preferred', 'model_version'],
      registers,
    }),
    deadLetters: new Counter({
      name: 'neurotriage_worker_dead_letters_total',
      help: 'Study jobs copied to the dead-letter queue, by reason',
      labelNames: ['reason'],
      registers,
    }),
    queueDepth: new Gauge({
      name: 'neurotriage_worker_queue_jobs',
      help: 'Study jobs on the queue by state (sampled at scrape time; waiting includes delayed jobs past their quiet period)',
      labelNames: ['state'],
      registers,
    }),
    batchSize: new Histogram({
      name: 'neurotriage_worker_inference_batch_size',
      help: 'Volumes per image-encoder session call',
      labelNames: ['sequence'],
      buckets: BATCH_SIZE_BUCKETS,
      registers,
    }),
    flags: new Counter({
      name: 'neurotriage_worker_flags_total',
      help: 'Findings flagged, by query and priority class',
      labelNames: ['query', 'priority'],
      registers,
    }),
    timeToResult: new Histogram({
      name: 'neurotriage_worker_time_to_result_seconds',
      help: 'From the study\'s first received instance to its stored result, by the priority it got',
      labelNames: ['priority'],
      // Seconds apart up to 10 s: a study sent in a few seconds is scored a quiet period (5 s by default) and a
      // second or two later, and with bounds 5 and 10 only every such study read as the same interpolated ~7 s.
      buckets: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 30, 45, 60, 120, 300, 600, 1800, 3600],
      registers,
    }),
    oldestJobAge: new Gauge({
      name: 'neurotriage_worker_queue_oldest_job_age_seconds',
      help: 'Age of the oldest study job ready to run (waiting, prioritized, or delayed past its quiet period), 0 when none (sampled at scrape time)',
      registers,
    }),
    loadersLost: new Counter({
      name: 'neurotriage_worker_loader_processes_lost_total',
      help: 'Loader processes that ended while reading a study (load-crashed, too-large, load-timeout) or before answering any (cannot-start); each is replaced',
      labelNames: ['reason'],
      registers,
    }),
  };
  for (const outcome of JOB_OUTCOMES) metrics.jobs.inc({ outcome }, 0);
  for (const reason of DEAD_LETTER_REASONS) metrics.deadLetters.inc({ reason }, 0);
  for (const reason of LOADER_LOST_REASONS) metrics.loadersLost.inc({ reason }, 0);
  return metrics;
}
