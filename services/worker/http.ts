// The worker's HTTP server: /metrics (Prometheus), /livez (the process answers: never touches Redis, so a frozen
// Redis cannot get healthy workers restarted), /readyz (Redis answers a PING within a second and the model
// bundle is loaded) and /queue (the study queue's backlog as JSON, for KEDA's metrics-api scaler). It starts
// before the bundle is loaded so probes get answers from the first second.
// Gauges sampled from Redis at scrape time (queue depth) get a deadline: past it /metrics and /queue serve their
// last values.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Check } from '../../shared/health';
import type { WorkerMetrics } from './metrics';

export interface WorkerHttpOptions {
  port: number;
  host: string;
  metrics: WorkerMetrics;
  /** Refreshes the Redis-derived gauges; set once the queue exists. */
  sample?: () => Promise<void>;
  /** Redis and model checks for /readyz. */
  readiness: () => Promise<Record<string, Check>>;
  /** How long /metrics waits for `sample` before answering with the last values. */
  sampleTimeoutMs?: number;
}

export interface WorkerHttpServer {
  port: number;
  /** Sets the sampler once the queue exists (the server starts before it). */
  setSample(sample: () => Promise<void>): void;
  close(): Promise<void>;
}

/** Path of the backlog endpoint and the field KEDA scales on (k8s/base/keda.yaml names both). */
export const QUEUE_PATH = '/queue';
export const READY_FIELD = 'ready';
/** Older than this, /queue answers 503 instead of a figure that may be far from the queue now (Redis gone). */
export const QUEUE_SAMPLE_MAX_AGE_MS = 60_000;

/**
 * The study queue's backlog from the last sample. `ready`: studies ready to score and not yet taken, what a
 * scaler should add workers for: waiting (which counts delayed studies past their quiet period) plus prioritized
 * (a bulk re-score's jobs, which BullMQ keeps in its own sorted set, never on the wait list).
 */
async function backlog(metrics: WorkerMetrics): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const { labels, value } of (await metrics.queueDepth.get()).values) counts[String(labels.state)] = value;
  return { [READY_FIELD]: (counts.waiting ?? 0) + (counts.prioritized ?? 0), ...counts };
}

function json(res: http.ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify(body));
}

export async function startWorkerHttp(opts: WorkerHttpOptions): Promise<WorkerHttpServer> {
  let sample = opts.sample;
  let inFlight: Promise<void> | undefined;
  /** When a sample last succeeded (the gauges hold no queue figures before that). */
  let sampledAt: number | undefined;
  const sampleTimeoutMs = opts.sampleTimeoutMs ?? 1000;
  /** One sampling at a time: scrapes during a slow one wait on it (up to the deadline) instead of piling up. */
  const refresh = async (): Promise<void> => {
    if (!sample) return;
    inFlight ??= sample()
      .then(() => void (sampledAt = Date.now()))
      .catch(() => undefined)
      .finally(() => (inFlight = undefined));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([inFlight, new Promise<void>((r) => (timer = setTimeout(r, sampleTimeoutMs)))]);
    clearTimeout(timer);
  };

  const server = http.createServer((req, res) => {
    const url = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET') return void res.writeHead(405).end();
    if (url === '/livez') return json(res, 200, { status: 'ok' });
    if (url === '/readyz') {
      opts.readiness().then(
        (checks) => {
          const ok = Object.values(checks).every((c) => c.ok);
          json(res, ok ? 200 : 503, { status: ok ? 'ready' : 'not ready', checks });
        },
        (err: Error) => json(res, 503, { status: 'not ready', error: err.message }),
      );
      return;
    }
    if (url === QUEUE_PATH) {
      // No figure before a sample succeeded (the worker starting, Redis unreachable since): a scaler must not read
      // that as an empty queue. A slow or failed sample serves the last figures with their age, up to a minute.
      refresh()
        .then(async () => {
          if (sampledAt === undefined) return json(res, 503, { error: 'no sample of the study queue yet: the worker is starting or Redis does not answer' });
          const age = Date.now() - sampledAt;
          if (age > QUEUE_SAMPLE_MAX_AGE_MS) return json(res, 503, { error: `the study queue was last sampled ${Math.round(age / 1000)} s ago: Redis does not answer` });
          json(res, 200, { ...(await backlog(opts.metrics)), sampleAgeSeconds: age / 1000 });
        })
        .catch((err: Error) => json(res, 500, { error: err.message }));
      return;
    }
    if (url === '/metrics') {
      refresh()
        .then(() => opts.metrics.registry.metrics())
        .then((body) => res.writeHead(200, { 'Content-Type': opts.metrics.registry.contentType }).end(body))
        .catch((err: Error) => res.writeHead(500).end(err.message));
      return;
    }
    res.writeHead(404).end();
  });
  server.on('connection', (socket) => socket.setNoDelay(true));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    setSample: (s) => (sample = s),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
