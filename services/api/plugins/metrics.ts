// Prometheus metrics on the API's own prom-client Registry (injected, never the global one): an HTTP request
// histogram by route template (not raw URL, so UIDs never become label values), live-update clients, the streams
// refused or dropped by their bounds, stored results read that cannot be parsed, and the process defaults. Served at /metrics to a bearer token of any role
// (a `metrics` token reads nothing else).
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { collectProcessMetrics } from '../../../shared/process-metrics';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: { sseClients: Gauge; liveRefused: Counter<'cap'>; liveDropped: Counter<'reason'>; resultsUnreadable: Counter; auditWrites: Counter; encoderRefused: Counter };
  }
}

export const metricsPlugin = fp(async function metrics(app: FastifyInstance, opts: { registry: Registry; defaults?: boolean }) {
  const { registry } = opts;
  if (opts.defaults !== false) collectProcessMetrics(registry, 'api');
  const duration = new Histogram({
    name: 'neurotriage_api_http_request_duration_seconds',
    help: 'HTTP request duration by method, route template and status code',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const sseClients = new Gauge({ name: 'neurotriage_api_live_clients', help: 'Open live-update (SSE) connections', registers: [registry] });
  const liveRefused = new Counter({
    name: 'neurotriage_api_live_refused_total',
    help: 'Live-update (SSE) streams refused with a 429 by the cap that was full: per user or per process',
    labelNames: ['cap'],
    registers: [registry],
  });
  const liveDropped = new Counter({
    name: 'neurotriage_api_live_dropped_total',
    help: 'Open live-update (SSE) streams closed by the server: slow, a client that did not take what was sent',
    labelNames: ['reason'],
    registers: [registry],
  });
  // Exported at 0 from the start, so the first refusal is an increase an alert sees.
  for (const cap of ['user', 'process']) liveRefused.inc({ cap }, 0);
  liveDropped.inc({ reason: 'slow' }, 0);
  // Counted per read, not per study: while one corrupt result is stored, every worklist page, search and calibration
  // from reports that meets it counts, so a rise means one is still there (the log lines "stored result unreadable"
  // name the UIDs).
  const resultsUnreadable = new Counter({
    name: 'neurotriage_api_results_unreadable_total',
    help: 'Stored results read by the API that are not JSON or not a StudyResult (left off the worklist, search and calibration from reports)',
    registers: [registry],
  });
  const auditWrites = new Counter({ name: 'neurotriage_api_audit_entries_total', help: 'Audit log entries written', registers: [registry] });
  const encoderRefused = new Counter({
    name: 'neurotriage_api_encoder_refused_total',
    help: 'Text-encoder requests (search, sentence scores, report checks) answered 429: their user had API_ENCODER_MAX_PER_USER running',
    registers: [registry],
  });
  app.decorate('metrics', { sseClients, liveRefused, liveDropped, resultsUnreadable, auditWrites, encoderRefused });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    duration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
  app.get('/metrics', { schema: { hide: true }, config: { role: 'metrics' } }, async (_request, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
});
