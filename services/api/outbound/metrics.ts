// Prometheus metrics of the outbound adapters, registered on the Registry the process passes in (no global
// default registry). Labels are bounded: adapter names and short reason codes, never UIDs.
import { Counter, Histogram, type Registry } from 'prom-client';
import { RESULT_UNREADABLE, type Adapter } from './errors';

export interface OutboundMetrics {
  sent: Counter<'adapter'>;
  failed: Counter<'adapter' | 'reason' | 'permanent'>;
  deadLettered: Counter<'adapter' | 'reason'>;
  skipped: Counter<'adapter' | 'reason'>;
  attemptSeconds: Histogram<'adapter' | 'outcome'>;
  deliverySeconds: Histogram<'adapter'>;
}

function once<T>(registry: Registry, name: string, make: () => T): T {
  // Two outbound instances on one registry (tests, an in-process launcher) share the metric objects.
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** The reason label of a delivery given up after every attempt failed with a retryable error (timeouts, AE, 5xx...). */
export const RETRIES_EXHAUSTED = 'retries-exhausted';
/** The reason label of a permanent failure whose code is none of its adapter's listed ones. */
const PERMANENT_OTHER = 'permanent-other';

/**
 * Every reason label a dead letter of each adapter can be counted under: the permanent reason codes the dead-letter
 * copy carries, with the open families collapsed to a class (webhook http-404 -> http-4xx; SR DIMSE statuses
 * other than 0122 and 0124 -> dimse-0xA9xx, dimse-0xCxxx or dimse-refused), plus retries-exhausted. A closed list, so
 * each series is exported at 0 from the start; the exact code stays in the dead-letter copy and in
 * neurotriage_outbound_failed_total.
 */
export const OUTBOUND_DEAD_LETTER_REASONS: Record<Adapter, readonly string[]> = {
  hl7: [RETRIES_EXHAUSTED, RESULT_UNREADABLE, 'ack-AR', 'ack-CR', 'no-accession', 'bad-score', PERMANENT_OTHER],
  sr: [
    RETRIES_EXHAUSTED, RESULT_UNREADABLE, 'association-rejected', 'context-rejected', 'dimse-0x0122', 'dimse-0x0124', 'dimse-0xA9xx', 'dimse-0xCxxx', 'dimse-refused',
    'source-missing', 'source-mismatch', 'source-corrupt', PERMANENT_OTHER,
  ],
  webhook: [RETRIES_EXHAUSTED, RESULT_UNREADABLE, 'http-3xx', 'http-4xx', 'tls-certificate', PERMANENT_OTHER],
};

/** The reason label of a dead letter: retries-exhausted, or the permanent failure's code mapped into OUTBOUND_DEAD_LETTER_REASONS. */
export function deadLetterReason(adapter: Adapter, reason: string, permanent: boolean): string {
  if (!permanent) return RETRIES_EXHAUSTED;
  const http = /^http-([1-5])\d\d$/.exec(reason);
  const dimse = /^dimse-0x([0-9A-F]{4})$/.exec(reason);
  let label = reason;
  if (http) label = `http-${http[1]}xx`;
  else if (dimse && dimse[1] !== '0122' && dimse[1] !== '0124') {
    label = dimse[1].startsWith('A9') ? 'dimse-0xA9xx' : dimse[1].startsWith('C') ? 'dimse-0xCxxx' : 'dimse-refused';
  }
  return OUTBOUND_DEAD_LETTER_REASONS[adapter].includes(label) && label !== RETRIES_EXHAUSTED ? label : PERMANENT_OTHER;
}

/**
 * `adapters`: the configured ones. Their delivered and dead-lettered counters (every reason) are exported at 0 from the start, so
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
      help: 'Deliveries given up and copied to the dead-letter queue, by adapter and why: the permanent refusal, or retries-exhausted',
      labelNames: ['adapter', 'reason'],
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
    for (const reason of OUTBOUND_DEAD_LETTER_REASONS[adapter]) metrics.deadLettered.inc({ adapter, reason }, 0);
  }
  return metrics;
}
