// Process and Node.js metrics (prom-client's defaults) for each service's own Registry: the standard names
// (process_resident_memory_bytes, nodejs_eventloop_lag_p99_seconds...) that dashboards and alerts everywhere know,
// told apart by a `service` label rather than a per-service name prefix.
import { collectDefaultMetrics, type Registry } from 'prom-client';

/**
 * Gauges prom-client names *_total, which Prometheus reserves for counters (`promtool check metrics` rejects them).
 * Each repeats the sum of the gauge of the same name without the suffix (nodejs_active_handles by type), so
 * nothing is lost by leaving them out.
 */
export const GAUGES_NAMED_TOTAL = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

export type ServiceName = 'listener' | 'worker' | 'api';

export function collectProcessMetrics(registry: Registry, service: ServiceName): void {
  collectDefaultMetrics({ register: registry, labels: { service } });
  for (const name of GAUGES_NAMED_TOTAL) registry.removeSingleMetric(name);
}
