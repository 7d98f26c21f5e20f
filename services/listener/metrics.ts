// The listener's Prometheus metrics, in a Registry of its own (no global default registry), and the small
// node:http server that exposes them on /metrics.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ListenerMetrics {
  registry: Registry;
  associations: Counter<'result' | 'reason'>;
  activeAssociations: Gauge;
  instances: Counter<'outcome'>;
  receivedBytes: Counter;
  storeDuration: Histogram<'outcome'>;
  studiesEnqueued: Counter<'trigger'>;
  diskFreeBytes: Gauge;
}

/** `diskFree` is read at scrape time (cached by the instance store, so a scrape costs no extra syscall). */
export function createListenerMetrics(diskFree: () => number | undefined): ListenerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'neurotriage_listener_' });
  const registers = [registry];
  return {
    registry,
    associations: new Counter({
      name: 'neurotriage_listener_associations_total',
      help: 'Association requests, by result (accepted/rejected) and rejection reason',
      labelNames: ['result', 'reason'],
      registers,
    }),
    activeAssociations: new Gauge({
      name: 'neurotriage_listener_active_associations',
      help: 'Associations currently open',
      registers,
    }),
    instances: new Counter({
      name: 'neurotriage_listener_instances_total',
      help: 'C-STORE requests by outcome: stored, duplicate, ignored (other storage class) or a failure status name',
      labelNames: ['outcome'],
      registers,
    }),
    receivedBytes: new Counter({
      name: 'neurotriage_listener_received_bytes_total',
      help: 'Data set bytes received in C-STORE requests',
      registers,
    }),
    storeDuration: new Histogram({
      name: 'neurotriage_listener_cstore_duration_seconds',
      help: 'From the first data set fragment of a C-STORE to its response being sent',
      labelNames: ['outcome'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    }),
    studiesEnqueued: new Counter({
      name: 'neurotriage_listener_studies_enqueued_total',
      help: 'Study jobs scheduled on the studies queue (debounced: one per study after its quiet period)',
      labelNames: ['trigger'],
      registers,
    }),
    diskFreeBytes: new Gauge({
      name: 'neurotriage_listener_disk_free_bytes',
      help: 'Free bytes on the file system holding DATA_DIR',
      registers,
      collect() {
        const free = diskFree();
        if (free !== undefined) this.set(free);
      },
    }),
  };
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(registry: Registry, host: string, port: number): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
