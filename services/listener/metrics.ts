// The listener's Prometheus metrics, in a Registry of its own (no global default registry), and the small
// node:http server that exposes them on /metrics beside the probes: /livez (the process answers; never touches
// Redis or the disk) and /readyz (the injected readiness check: Redis and the store). Every labelled counter is
// created at 0 for each label value it can take, so increase() and the alerts see the first event.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '../../shared/process-metrics';
import type { Check } from '../../shared/health';
import { REFUSAL_REASONS } from './connection-refusals';
import type { RejectLabel } from './association-policy';

const REJECT_LABELS: readonly (RejectLabel | 'tls-handshake')[] = [
  'protocol-version-not-supported',
  'application-context-not-supported',
  'max-length-too-small',
  'called-ae-not-recognised',
  'calling-ae-not-recognised',
  'calling-ae-not-in-certificate',
  'local-limit-exceeded',
  'shutting-down',
  'tls-handshake',
];
/** C-STORE outcomes known in advance (an unexpected I/O error adds its errno code as a label when it happens). */
const INSTANCE_OUTCOMES = [
  'stored',
  'duplicate',
  'ignored',
  'OutOfDiskError',
  'BackendUnavailableError',
  'TempFileLostError',
  'StudyPurgingError',
  'MalformedDatasetError',
  'InvalidImageError',
  'DatasetMismatchError',
  'SopClassNotOnContextError',
  'CannotUnderstand',
  'InternalError',
];
const SCHEDULE_TRIGGERS = ['arrival', 'release', 'restart', 'duplicate'];

export interface ListenerMetrics {
  registry: Registry;
  associations: Counter<'result' | 'reason'>;
  refusedConnections: Counter<'reason'>;
  activeAssociations: Gauge;
  instances: Counter<'outcome'>;
  receivedBytes: Counter;
  storeDuration: Histogram<'outcome'>;
  studiesEnqueued: Counter<'trigger'>;
  refusalRecords: Counter<'outcome'>;
  diskFreeBytes: Gauge;
}

/**
 * What became of an instance refused permanently at C-STORE (shared/refusals.ts) for its study's result: counted,
 * counted-before (the same instance sent again), record-full (the study's or the whole record's cap reached: the
 * result will not list it), unattributed (its study and series could not be read), error (Redis failed).
 */
export const REFUSAL_RECORD_OUTCOMES = ['counted', 'counted-before', 'record-full', 'unattributed', 'error'] as const;
export type RefusalRecordOutcome = (typeof REFUSAL_RECORD_OUTCOMES)[number];

/** `diskFree` is read at scrape time (cached by the instance store, so a scrape costs no extra syscall). */
export function createListenerMetrics(diskFree: () => number | undefined): ListenerMetrics {
  const registry = new Registry();
  // Standard process metric names with a service label, as the worker and API export them (dashboards select by it).
  collectProcessMetrics(registry, 'listener');
  const registers = [registry];
  const metrics: ListenerMetrics = {
    registry,
    associations: new Counter({
      name: 'neurotriage_listener_associations_total',
      help: 'Association requests, by result (accepted/rejected) and rejection reason',
      labelNames: ['result', 'reason'],
      registers,
    }),
    refusedConnections: new Counter({
      name: 'neurotriage_listener_refused_connections_total',
      help: 'Connections the listener refused or closed itself, by reason: ARTIM expiry, connection limits, protocol violations (A-ABORT)',
      labelNames: ['reason'],
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
      help: 'Studies put on the studies queue: one each time a study is received and a job comes to hold it (later instances only move its job)',
      labelNames: ['trigger'],
      registers,
    }),
    refusalRecords: new Counter({
      name: 'neurotriage_listener_refusal_records_total',
      help: 'Instances refused permanently at C-STORE, by what became of them for the study result: counted, counted-before, record-full (a cap reached: not listed), unattributed, error',
      labelNames: ['outcome'],
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
  metrics.associations.inc({ result: 'accepted', reason: '' }, 0);
  for (const reason of REJECT_LABELS) metrics.associations.inc({ result: 'rejected', reason }, 0);
  for (const reason of REFUSAL_REASONS) metrics.refusedConnections.inc({ reason }, 0);
  for (const outcome of REFUSAL_RECORD_OUTCOMES) metrics.refusalRecords.inc({ outcome }, 0);
  for (const outcome of INSTANCE_OUTCOMES) metrics.instances.inc({ outcome }, 0);
  for (const trigger of SCHEDULE_TRIGGERS) metrics.studiesEnqueued.inc({ trigger }, 0);
  return metrics;
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** What /readyz reports (the shape the worker and the API use): ready only when every check is ok. */
export interface Readiness {
  status: 'ready' | 'not ready';
  checks: Record<string, Check>;
}

export async function startMetricsServer(
  registry: Registry,
  host: string,
  port: number,
  readiness: () => Promise<Readiness> = async () => ({ status: 'ready', checks: {} }),
): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const route = req.method === 'GET' ? (req.url ?? '').split('?')[0] : '';
    if (route === '/livez') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify({ status: 'ok' })}\n`);
      return;
    }
    if (route === '/readyz') {
      readiness().then(
        (r) => res.writeHead(r.status === 'ready' ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify(r)}\n`),
        (err: Error) => res.writeHead(503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ status: 'not ready', error: err.message })}\n`),
      );
      return;
    }
    if (route !== '/metrics') {
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
