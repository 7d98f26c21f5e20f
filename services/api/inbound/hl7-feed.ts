// The RIS report feed's application side: one MLLP message in, one ACK out. Decodes and reads the ORU^R01
// (oru.ts), stores each report through the intake (journal + Redis) and answers AA only after that; answers AE/AR
// with the reason for a message it cannot use and keeps that message in the rejected store first. When the
// store, the journal or Redis fail, the answer is AR "try again" and nothing is kept: the RIS holds the message and
// resends it, and the message id makes the resend safe. Also replays kept messages (the admin API).
// Logs carry reason codes, ids and counts: never message content, report text or accession numbers.
import type { Logger } from '../../../shared/logger';
import type { StoredReport } from '../../../shared/reports';
import { ackFor, ackForUnparsed, controlIdOf, type AckCode } from './ack';
import type { ReportMetrics } from './metrics';
import type { MllpInbound, Peer } from './mllp-server';
import { decodeMessage, OruProblem, parseOru, type OruRules } from './oru';
import { messageKey, type IntakeResult, type ReportIntake } from './report-intake';
import type { RejectedEntry, RejectedStore } from './rejected-store';

export interface FeedOutcome {
  ack: AckCode;
  reason?: string;
  detail: string;
  reports: Array<{ AccessionNumber: string } & IntakeResult>;
  /** Where a rejected message was kept. */
  keptAs?: string;
}

export interface ReplayResult {
  ok: boolean;
  entry: RejectedEntry;
  outcome: FeedOutcome;
}

export interface Hl7Feed {
  /** The MLLP handler: never throws. */
  handle(message: MllpInbound, peer: Peer): Promise<Buffer>;
  /** The reply when handle() is late (AR: try again). */
  timeoutReply(message: MllpInbound): Buffer;
  /** Runs a kept message again (optionally a corrected text); on success it leaves the rejected store. */
  replay(id: string, correctedText?: string): Promise<ReplayResult | null>;
}

export interface Hl7FeedDeps {
  rules: OruRules;
  intake: ReportIntake;
  rejected: RejectedStore;
  metrics: ReportMetrics;
  logger: Logger;
  clock?: () => number;
}

/** Our own failure (journal, Redis, the rejected store): the sender should resend later. */
class Unavailable extends Error {}

const TRY_AGAIN = 'temporarily unable to store the report; resend later';

let ackCounter = 0;
const ackControlId = (now: number): string => `NT${now.toString(36)}${(++ackCounter % 1296).toString(36)}`.toUpperCase();

/**
 * The dedupe key of one report of an HL7 message: the sender (MSH-3, MSH-4), its control id (MSH-10) and what the
 * report says (accession number, status, text). A resend of the message (a lost ACK, an engine replaying its queue)
 * is the same key, a duplicate; a control id the RIS used again for another report (its counter restarted, a
 * second RIS instance, a restored database) is a new key and is stored: keyed on the control id alone it was
 * answered AA "duplicate" and never stored.
 */
export function hl7MessageKey(
  sender: { sendingApplication: string; sendingFacility: string; controlId: string },
  report: { AccessionNumber: string; status: string; text: string },
): string {
  return messageKey('hl7', sender.sendingApplication, sender.sendingFacility, sender.controlId, report.AccessionNumber, report.status, report.text);
}

export function createHl7Feed(deps: Hl7FeedDeps): Hl7Feed {
  const { intake, rejected, metrics, logger } = deps;
  const clock = deps.clock ?? Date.now;

  /** Reads and stores; returns AA with the outcomes, or throws OruProblem / Unavailable. */
  async function store(text: string, receivedAt: number): Promise<{ outcome: FeedOutcome; parsed: ReturnType<typeof parseOru> }> {
    const parsed = parseOru(text, deps.rules);
    const results: FeedOutcome['reports'] = [];
    for (const r of parsed.reports) {
      const report: StoredReport = {
        AccessionNumber: r.AccessionNumber, text: r.text, status: r.status, receivedAt, source: 'hl7', messageControlId: parsed.controlId,
      };
      try {
        results.push({ AccessionNumber: r.AccessionNumber, ...(await intake.ingest(report, hl7MessageKey(parsed, r))) });
      } catch (err) {
        throw new Unavailable((err as NodeJS.ErrnoException).code ?? (err as Error).name, { cause: err });
      }
    }
    const summary = [...new Set(results.map((r) => r.outcome))].join(', ');
    return { parsed, outcome: { ack: 'AA', detail: `${results.length} report(s): ${summary}`, reports: results } };
  }

  async function keep(bytes: Buffer, problem: OruProblem, receivedAt: number, truncated = false): Promise<RejectedEntry> {
    let entry: RejectedEntry | null;
    try {
      entry = await rejected.keep({ kind: 'hl7', payload: bytes, reason: problem.reason, detail: problem.detail, ack: problem.ack, receivedAt, truncated });
    } catch (err) {
      throw new Unavailable((err as NodeJS.ErrnoException).code ?? 'keep-failed', { cause: err });
    }
    if (!entry) {
      metrics.rejected.inc({ source: 'hl7', reason: 'rejected-store-full' });
      throw new Unavailable('rejected-store-full');
    }
    return entry;
  }

  /** Built from the raw header alone: the message may not even have been read yet (a late or failed store). */
  function unavailableAck(bytes: Buffer, now: number): Buffer {
    return ackForUnparsed('AR', { text: TRY_AGAIN, errorCode: '207' }, { controlId: controlIdOf(bytes), now, ackControlId: ackControlId(now) });
  }

  async function handle(inbound: MllpInbound, peer: Peer): Promise<Buffer> {
    const t0 = performance.now();
    const now = clock();
    metrics.received.inc({ source: 'hl7' });
    const bytes = inbound.kind === 'message' ? inbound.bytes : inbound.head;
    let code: AckCode = 'AR';
    try {
      let problem: OruProblem;
      try {
        if (inbound.kind === 'oversize') {
          throw new OruProblem('AR', 'too-large', `the message is larger than REPORTS_MLLP_MAX_MESSAGE_KB (${inbound.totalBytes} bytes)`, '207');
        }
        const { outcome, parsed } = await store(decodeMessage(inbound.bytes), now);
        code = 'AA';
        logger.info({ connection: peer.connection, controlId: parsed.controlId, reports: outcome.reports.map((r) => r.outcome) }, 'report message stored');
        return ackFor(parsed.message, 'AA', { text: outcome.detail }, { now, ackControlId: ackControlId(now) });
      } catch (err) {
        if (!(err instanceof OruProblem)) throw err;
        problem = err;
      }
      const entry = await keep(bytes, problem, now, inbound.kind === 'oversize');
      metrics.rejected.inc({ source: 'hl7', reason: problem.reason });
      logger.warn({ connection: peer.connection, reason: problem.reason, ack: problem.ack, rejectedId: entry.id }, 'report message rejected and kept for replay');
      code = problem.ack;
      const detail = { text: `${problem.detail} (kept as ${entry.id})`, errorCode: problem.errorCode, location: problem.location };
      return problem.hl7
        ? ackFor(problem.hl7, problem.ack, detail, { now, ackControlId: ackControlId(now) })
        : ackForUnparsed(problem.ack, detail, { controlId: controlIdOf(bytes), now, ackControlId: ackControlId(now) });
    } catch (err) {
      code = 'AR';
      metrics.rejected.inc({ source: 'hl7', reason: 'temporarily-unavailable' });
      logger.error({ connection: peer.connection, err: (err as Error).message }, 'report message not stored: answered AR, the sender should resend');
      return unavailableAck(bytes, now);
    } finally {
      metrics.ackSeconds.observe({ code }, (performance.now() - t0) / 1000);
    }
  }

  return {
    handle,

    timeoutReply(inbound) {
      metrics.rejected.inc({ source: 'hl7', reason: 'temporarily-unavailable' });
      metrics.ackSeconds.observe({ code: 'AR' }, 0);
      const bytes = inbound.kind === 'message' ? inbound.bytes : inbound.head;
      return unavailableAck(bytes, clock());
    },

    async replay(id, correctedText) {
      const kept = await rejected.get(id);
      if (!kept) return null;
      const { entry, payload } = kept;
      let outcome: FeedOutcome;
      try {
        if (entry.kind === 'report') {
          const report = JSON.parse(payload.toString('utf8')) as StoredReport;
          const result = await intake.ingest({ ...report, receivedAt: clock() }, messageKey('replay', id), { force: true });
          outcome = { ack: 'AA', detail: `1 report(s): ${result.outcome}`, reports: [{ AccessionNumber: report.AccessionNumber, ...result }] };
        } else {
          if (entry.truncated && correctedText === undefined) {
            throw new OruProblem('AR', 'too-large', 'only the head of this message was kept: replay it with a corrected text', '207');
          }
          const text = correctedText ?? decodeMessage(payload);
          outcome = (await store(text, clock())).outcome;
        }
      } catch (err) {
        if (!(err instanceof OruProblem)) throw err;
        await rejected.update(id, { reason: err.reason, detail: err.detail, ack: err.ack });
        const after = (await rejected.get(id))?.entry ?? entry;
        return { ok: false, entry: after, outcome: { ack: err.ack, reason: err.reason, detail: err.detail, reports: [] } };
      }
      await rejected.remove(id);
      logger.info({ rejectedId: id, reports: outcome.reports.map((r) => r.outcome) }, 'rejected report message replayed and stored');
      return { ok: true, entry, outcome };
    },
  };
}
