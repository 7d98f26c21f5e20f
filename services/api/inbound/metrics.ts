// Prometheus metrics of the report feed, on the Registry the process passes in. Every label value is created at 0
// up front (a counter that has never moved is still scraped, so rate() and alerts see it); labels are bounded sets
// (source, reason code, ACK code), never an accession number, a UID or text.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { ADMISSION_REFUSALS } from '../../../shared/connection-guard';
import { REJECT_REASONS } from './oru';

export const REPORT_SOURCES = ['hl7', 'api'] as const;
export type ReportSource = (typeof REPORT_SOURCES)[number];
/**
 * Why a message was answered AE/AR (oru.ts), plus: a held report whose study never came, our own trouble, and an
 * HL7 batch refused whole (more than REPORTS_MLLP_MAX_BATCH_MESSAGES messages, an envelope that cannot be read).
 */
export const REJECTED_REASONS = [...REJECT_REASONS, 'no-study', 'temporarily-unavailable', 'rejected-store-full', 'batch-too-large', 'bad-batch'] as const;

export interface ReportMetrics {
  received: Counter<'source'>;
  stored: Counter<'source'>;
  duplicates: Counter<'source'>;
  rejected: Counter<'source' | 'reason'>;
  held: Counter<'source'>;
  matched: Counter<'when'>;
  ackSeconds: Histogram<'code'>;
  connections: Gauge;
  /** MLLP connections closed at once: REPORTS_MLLP_MAX_CONNECTIONS or REPORTS_MLLP_MAX_CONNECTIONS_PER_HOST open. */
  refusedConnections: Counter<'reason'>;
  /** HL7 batches in one frame: processed message by message, or refused whole. */
  batches: Counter<'outcome'>;
  /** Batches whose BTS-1 (messages) or files whose FTS-1 (batches) disagreed with what came. */
  batchCountMismatch: Counter<'trailer'>;
  batchSeconds: Histogram;
}

function once<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export function createReportMetrics(registry: Registry, gauges: { held: () => Promise<number>; kept: () => Promise<number> }): ReportMetrics {
  const registers = [registry];
  const m: ReportMetrics = {
    received: once(registry, 'neurotriage_api_reports_received_total', () => new Counter({
      name: 'neurotriage_api_reports_received_total', help: 'Report messages received (HL7 ORU^R01 messages, API requests)', labelNames: ['source'], registers,
    })),
    stored: once(registry, 'neurotriage_api_reports_stored_total', () => new Counter({
      name: 'neurotriage_api_reports_stored_total', help: 'Reports written durably (journal and Redis), matched or held', labelNames: ['source'], registers,
    })),
    duplicates: once(registry, 'neurotriage_api_reports_duplicates_total', () => new Counter({
      name: 'neurotriage_api_reports_duplicates_total', help: 'Reports received again (same MSH-10 from the same sender, or same reportId): acknowledged, stored once', labelNames: ['source'], registers,
    })),
    rejected: once(registry, 'neurotriage_api_reports_rejected_total', () => new Counter({
      name: 'neurotriage_api_reports_rejected_total', help: 'Messages answered AE/AR or held reports expired, by reason', labelNames: ['source', 'reason'], registers,
    })),
    held: once(registry, 'neurotriage_api_reports_held_total', () => new Counter({
      name: 'neurotriage_api_reports_held_total', help: 'Reports held on arrival because their study had not been received', labelNames: ['source'], registers,
    })),
    matched: once(registry, 'neurotriage_api_reports_matched_total', () => new Counter({
      name: 'neurotriage_api_reports_matched_total', help: 'Reports linked to a received study: on arrival, or later when the study came', labelNames: ['when'], registers,
    })),
    ackSeconds: once(registry, 'neurotriage_api_reports_ack_seconds', () => new Histogram({
      name: 'neurotriage_api_reports_ack_seconds', help: 'Time from a whole MLLP message to its ACK leaving, by ACK code',
      labelNames: ['code'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10], registers,
    })),
    connections: once(registry, 'neurotriage_api_reports_mllp_connections', () => new Gauge({
      name: 'neurotriage_api_reports_mllp_connections', help: 'Open MLLP connections to the report listener', registers,
    })),
    refusedConnections: once(registry, 'neurotriage_api_reports_mllp_refused_connections_total', () => new Counter({
      name: 'neurotriage_api_reports_mllp_refused_connections_total',
      help: 'MLLP connections to the report listener closed at once, by reason: connection-limit (REPORTS_MLLP_MAX_CONNECTIONS open), peer-connection-limit (REPORTS_MLLP_MAX_CONNECTIONS_PER_HOST open from that address)',
      labelNames: ['reason'], registers,
    })),
    batches: once(registry, 'neurotriage_api_reports_batches_total', () => new Counter({
      name: 'neurotriage_api_reports_batches_total', help: 'HL7 batches (FHS/BHS ... BTS/FTS) received in one MLLP frame: processed message by message, or refused whole (AR)',
      labelNames: ['outcome'], registers,
    })),
    batchCountMismatch: once(registry, 'neurotriage_api_reports_batch_count_mismatch_total', () => new Counter({
      name: 'neurotriage_api_reports_batch_count_mismatch_total', help: 'Batches whose BTS-1 (message count), or files whose FTS-1 (batch count), disagreed with what came; all messages were processed',
      labelNames: ['trailer'], registers,
    })),
    batchSeconds: once(registry, 'neurotriage_api_reports_batch_seconds', () => new Histogram({
      name: 'neurotriage_api_reports_batch_seconds', help: 'Time from a whole MLLP frame holding an HL7 batch to its batch of ACKs',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300], registers,
    })),
  };
  once(registry, 'neurotriage_api_reports_holding', () => new Gauge({
    name: 'neurotriage_api_reports_holding', help: 'Reports held now, waiting for their study', registers,
    async collect() {
      this.set(await gauges.held().catch(() => NaN));
    },
  }));
  once(registry, 'neurotriage_api_reports_rejected_kept', () => new Gauge({
    name: 'neurotriage_api_reports_rejected_kept', help: 'Rejected messages kept for replay now (DATA_DIR/reports/rejected)', registers,
    async collect() {
      this.set(await gauges.kept().catch(() => NaN));
    },
  }));
  for (const source of REPORT_SOURCES) {
    m.received.inc({ source }, 0);
    m.stored.inc({ source }, 0);
    m.duplicates.inc({ source }, 0);
    m.held.inc({ source }, 0);
    for (const reason of REJECTED_REASONS) m.rejected.inc({ source, reason }, 0);
  }
  for (const when of ['arrival', 'study']) m.matched.inc({ when }, 0);
  for (const outcome of ['processed', 'refused']) m.batches.inc({ outcome }, 0);
  for (const reason of ADMISSION_REFUSALS) m.refusedConnections.inc({ reason }, 0);
  for (const trailer of ['BTS', 'FTS']) m.batchCountMismatch.inc({ trailer }, 0);
  for (const code of ['AA', 'AE', 'AR']) m.ackSeconds.zero({ code });
  return m;
}
