// The worker's Prometheus metrics on its own Registry (no global default registry, so tests and an in-process
// launcher can run several) and the small HTTP server that exposes them on /metrics.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const STAGES = ['decode', 'preprocess', 'inference', 'scoring', 'total'] as const;
export type Stage = (typeof STAGES)[number];

export interface WorkerMetrics {
  registry: Registry;
  jobs: Counter<'outcome'>;
  stageSeconds: Histogram<'stage'>;
  provider: Gauge<'provider' | 'model_version'>;
  deadLetters: Counter<'reason'>;
  queueDepth: Gauge<'state'>;
  batchSize: Histogram<'sequence'>;
  flags: Counter<'query' | 'priority'>;
  timeToResult: Histogram<'priority'>;
  oldestJobAge: Gauge;
}

export function createWorkerMetrics(opts: { defaultMetrics?: boolean } = {}): WorkerMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'neurotriage_worker_' });
  const registers = [registry];
  return {
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
      help: 'ONNX Runtime execution provider in use (value 1) and the model bundle version',
      labelNames: ['provider', 'model_version'],
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
      help: 'Study jobs on the queue by state (sampled at scrape time)',
      labelNames: ['state'],
      registers,
    }),
    batchSize: new Histogram({
      name: 'neurotriage_worker_inference_batch_size',
      help: 'Volumes per image-encoder session call',
      labelNames: ['sequence'],
      buckets: [1, 2, 4, 8, 16, 32, 64],
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
      buckets: [5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    }),
    oldestJobAge: new Gauge({
      name: 'neurotriage_worker_queue_oldest_job_age_seconds',
      help: 'Age of the oldest study job ready to run (waiting or prioritized), 0 when none (sampled at scrape time)',
      registers,
    }),
  };
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** Serves GET /metrics; `beforeScrape` refreshes sampled gauges (queue depth) so they are current when read. */
export async function startMetricsServer(
  metrics: WorkerMetrics,
  opts: { port: number; host: string; beforeScrape?: () => Promise<void> },
): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    (opts.beforeScrape ? opts.beforeScrape() : Promise.resolve())
      .catch(() => undefined) // a sampling failure must not hide the other metrics
      .then(() => metrics.registry.metrics())
      .then((body) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(body))
      .catch((err: Error) => res.writeHead(500).end(err.message));
  });
  server.on('connection', (socket) => socket.setNoDelay(true));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
