// Prometheus metrics of the outbound adapters, registered on the Registry the process passes in (no global
// default registry). Labels are bounded: adapter names and short reason codes, never UIDs.
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Adapter } from './errors';

export interface OutboundMetrics {
  sent: Counter<'adapter'>;
  failed: Counter<'adapter' | 'reason' | 'permanent'>;
  deadLettered: Counter<'adapter'>;
  skipped: Counter<'adapter' | 'reason'>;
  attemptSeconds: Histogram<'adapter' | 'outcome'>;
  deliverySeconds: Histogram<'adapter'>;
}

function once<T>(registry: Registry, name: string, make: () => T): T {
  // Two outbound instances on one registry (tests, an in-process launcher) share the metric objects.
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/**
 * `adapters`: the configured ones. Their delivered and dead-lettered counters are exported at 0 from the start, so
 * the first dead letter is an increase Prometheus sees (NeurotriageOutboundDeadLetters) rather than a series that
 * is born at 1.
 */
export function createOutboundMetrics(registry: Registry, adapters: readonly Adapter[] = []): OutboundMetrics {
  const registers = [registry];
  const metrics: OutboundMetrics = {
    sent: once(registry, 'neurotriage_outbound_sent_total', () => new Counter({
      name: 'neurotriage_outbound_sent_total',
      help: 'Results delivered and acknowledged (HL7 AA/CA, C-STORE success or warning, webhook 2xx), by adapter',
      labelNames: ['adapter'],
      registers,
    })),
    failed: once(registry, 'neurotriage_outbound_failed_total', () => new Counter({
      name: 'neurotriage_outbound_failed_total',
      help: 'Failed delivery attempts, by adapter, reason code and whether the failure is permanent',
      labelNames: ['adapter', 'reason', 'permanent'],
      registers,
    })),
    deadLettered: once(registry, 'neurotriage_outbound_dead_lettered_total', () => new Counter({
      name: 'neurotriage_outbound_dead_lettered_total',
      help: 'Deliveries given up (permanent failure or attempts exhausted) and copied to the dead-letter queue',
      labelNames: ['adapter'],
      registers,
    })),
    skipped: once(registry, 'neurotriage_outbound_skipped_total', () => new Counter({
      name: 'neurotriage_outbound_skipped_total',
      help: 'Results not sent by an adapter (e.g. below the webhook priority, superseded by a newer result)',
      labelNames: ['adapter', 'reason'],
      registers,
    })),
    attemptSeconds: once(registry, 'neurotriage_outbound_attempt_seconds', () => new Histogram({
      name: 'neurotriage_outbound_attempt_seconds',
      help: 'Duration of one delivery attempt (connect, send, wait for the acknowledgement)',
      labelNames: ['adapter', 'outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    })),
    deliverySeconds: once(registry, 'neurotriage_outbound_delivery_seconds', () => new Histogram({
      name: 'neurotriage_outbound_delivery_seconds',
      help: 'Time from the result being written (scoredAt) to its acknowledged delivery, retries included',
      labelNames: ['adapter'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800],
      registers,
    })),
  };
  for (const adapter of adapters) {
    metrics.sent.inc({ adapter }, 0);
    metrics.deadLettered.inc({ adapter }, 0);
  }
  return metrics;
}
