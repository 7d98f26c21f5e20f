// The worker's HTTP server: /metrics (Prometheus), /livez (the process answers: never touches Redis, so a frozen
// Redis cannot get healthy workers restarted) and /readyz (Redis answers a PING within a second and the model
// bundle is loaded). It starts before the bundle is loaded so probes get answers from the first second.
// Gauges sampled from Redis at scrape time (queue depth) get a deadline: past it /metrics serves their last values.
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

function json(res: http.ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify(body));
}

export async function startWorkerHttp(opts: WorkerHttpOptions): Promise<WorkerHttpServer> {
  let sample = opts.sample;
  let inFlight: Promise<void> | undefined;
  const sampleTimeoutMs = opts.sampleTimeoutMs ?? 1000;
  /** One sampling at a time: scrapes during a slow one wait on it (up to the deadline) instead of piling up. */
  const refresh = async (): Promise<void> => {
    if (!sample) return;
    inFlight ??= sample().catch(() => undefined).finally(() => (inFlight = undefined));
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
