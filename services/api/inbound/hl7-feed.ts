// The RIS report feed's application side: one MLLP message in, one ACK out; an HL7 batch (FHS/BHS ... BTS/FTS) in
// one frame, its messages one after the other, each exactly as a message of its own, and one batch of ACKs out
// (batch.ts; more than REPORTS_MLLP_MAX_BATCH_MESSAGES, or an envelope that cannot be read: one AR). Decodes and reads the ORU^R01
// (oru.ts), stores each report through the intake (journal + Redis) and answers AA only after that; answers AE/AR
// with the reason for a message it cannot use and keeps that message in the rejected store first. When the
// store, the journal or Redis fail, the answer is AR "try again" and nothing is kept: the RIS holds the message and
// resends it, and the message id makes the resend safe. Also replays kept messages (the admin API).
// Logs carry reason codes, ids and counts: never message content, report text or accession numbers.
import type { Logger } from '../../../shared/logger';
import type { StoredReport } from '../../../shared/reports';
import { hl7DateTime } from '../outbound/hl7/message';
import { ackFor, ackForUnparsed, controlIdOf, type AckCode } from './ack';
import { batchAck, batchControlIdOf, BatchProblem, countDisagrees, countMessages, isBatch, splitBatch, type BatchFrame } from './batch';
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
  /** The reply when handle() is late (AR: try again; for a batch, a batch of them). */
  timeoutReply(message: MllpInbound): Buffer;
  /** How long handle() may take for this frame: REPORTS_MLLP_ACK_TIMEOUT_MS, per message for a batch. */
  replyTimeoutMs(message: MllpInbound): number;
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
  /** REPORTS_MLLP_ACK_TIMEOUT_MS: the time each message of a batch has for its write (default 10 s). */
  ackTimeoutMs?: number;
  /** REPORTS_MLLP_MAX_BATCH_MESSAGES: a batch with more messages is refused whole (default 500). */
  maxBatchMessages?: number;
}

/** Our own failure (journal, Redis, the rejected store): the sender should resend later. */
class Unavailable extends Error {}

const TRY_AGAIN = 'temporarily unable to store the report; resend later';

/**
 * A report time more than a day after the message came is not when the report was written (a RIS clock that is
 * wrong, a local time read in the wrong zone is at most 14 hours off): it is not used, so such a report cannot
 * outrank every later version of the study for ever.
 */
const FUTURE_SLACK_MS = 86_400_000;

/** A declared count for a log line: digits only, short. */
const safeCount = (value: string | null): string | null => (value === null ? null : value.replace(/[^0-9]/g, '?').slice(0, 10));

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
  const ackTimeoutMs = deps.ackTimeoutMs ?? 10_000;
  const maxBatchMessages = deps.maxBatchMessages ?? 500;

  /**
   * Reads and stores; returns AA with the outcomes, or throws OruProblem / Unavailable. `cameAt`: when the message
   * first reached us (a replay's is the rejected entry's arrival, not now): a report time more than a day after it is
   * not used.
   */
  async function store(text: string, receivedAt: number, cameAt = receivedAt): Promise<{ outcome: FeedOutcome; parsed: ReturnType<typeof parseOru> }> {
    const parsed = parseOru(text, deps.rules);
    const results: FeedOutcome['reports'] = [];
    for (const r of parsed.reports) {
      const report: StoredReport = {
        AccessionNumber: r.AccessionNumber, text: r.text, status: r.status, receivedAt, source: 'hl7', messageControlId: parsed.controlId,
        ...(r.reportTime && r.reportTime.from <= cameAt + FUTURE_SLACK_MS ? { reportTime: r.reportTime } : {}),
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
    const controlId = isBatch(bytes) ? batchControlIdOf(bytes) : controlIdOf(bytes);
    return ackForUnparsed('AR', { text: TRY_AGAIN, errorCode: '207' }, { controlId, now, ackControlId: ackControlId(now) });
  }

  /** One message (or an oversize frame): stored, or kept and refused; never throws. The ACK and its code. */
  async function answer(inbound: MllpInbound, peer: Peer, now: number): Promise<{ ack: Buffer; code: AckCode }> {
    const bytes = inbound.kind === 'message' ? inbound.bytes : inbound.head;
    try {
      let problem: OruProblem;
      try {
        if (inbound.kind === 'oversize') {
          throw new OruProblem('AR', 'too-large', `the message is larger than REPORTS_MLLP_MAX_MESSAGE_KB (${inbound.totalBytes} bytes)`, '207');
        }
        const { outcome, parsed } = await store(decodeMessage(inbound.bytes), now);
        logger.info({ connection: peer.connection, controlId: parsed.controlId, reports: outcome.reports.map((r) => r.outcome) }, 'report message stored');
        return { code: 'AA', ack: ackFor(parsed.message, 'AA', { text: outcome.detail }, { now, ackControlId: ackControlId(now) }) };
      } catch (err) {
        if (!(err instanceof OruProblem)) throw err;
        problem = err;
      }
      const entry = await keep(bytes, problem, now, inbound.kind === 'oversize');
      metrics.rejected.inc({ source: 'hl7', reason: problem.reason });
      logger.warn({ connection: peer.connection, reason: problem.reason, ack: problem.ack, rejectedId: entry.id }, 'report message rejected and kept for replay');
      const detail = { text: `${problem.detail} (kept as ${entry.id})`, errorCode: problem.errorCode, location: problem.location };
      const ack = problem.hl7
        ? ackFor(problem.hl7, problem.ack, detail, { now, ackControlId: ackControlId(now) })
        : ackForUnparsed(problem.ack, detail, { controlId: controlIdOf(bytes), now, ackControlId: ackControlId(now) });
      return { code: problem.ack, ack };
    } catch (err) {
      metrics.rejected.inc({ source: 'hl7', reason: 'temporarily-unavailable' });
      logger.error({ connection: peer.connection, err: (err as Error).message }, 'report message not stored: answered AR, the sender should resend');
      return { code: 'AR', ack: unavailableAck(bytes, now) };
    }
  }

  async function handle(inbound: MllpInbound, peer: Peer): Promise<Buffer> {
    if (inbound.kind === 'message' && isBatch(inbound.bytes)) return handleBatch(inbound.bytes, peer);
    const t0 = performance.now();
    // A batch too large to read is refused whole, named by its batch control id, as one with too many messages
    // (answered as one oversize message, its MSA-2 was empty: the head has no MSH-10 first).
    if (inbound.kind === 'oversize' && isBatch(inbound.head)) {
      return refuseBatch(
        inbound.head, peer, 'batch-too-large',
        `the batch frame is larger than REPORTS_MLLP_MAX_MESSAGE_KB (${inbound.totalBytes} bytes): send smaller batches`,
        inbound.head.subarray(0, 3).toString('latin1'), t0,
      );
    }
    metrics.received.inc({ source: 'hl7' });
    let code: AckCode = 'AR';
    try {
      const result = await answer(inbound, peer, clock());
      code = result.code;
      return result.ack;
    } finally {
      metrics.ackSeconds.observe({ code }, (performance.now() - t0) / 1000);
    }
  }

  /** A frame refused whole: one AR (not a batch), MSA-2 the batch control id when the header has one. Not kept. */
  function refuseBatch(bytes: Buffer, peer: Peer, reason: 'batch-too-large' | 'bad-batch', detail: string, location: string, t0: number): Buffer {
    const now = clock();
    metrics.received.inc({ source: 'hl7' });
    metrics.rejected.inc({ source: 'hl7', reason });
    metrics.batches.inc({ outcome: 'refused' });
    metrics.ackSeconds.observe({ code: 'AR' }, (performance.now() - t0) / 1000);
    logger.warn({ connection: peer.connection, reason, bytes: bytes.length }, 'report batch refused whole (AR); not kept: the sender still has it');
    return ackForUnparsed('AR', { text: detail, errorCode: reason === 'bad-batch' ? '100' : '207', location }, {
      controlId: batchControlIdOf(bytes), now, ackControlId: ackControlId(now),
    });
  }

  /** One message of a batch, answered as alone; null when it is not answered within REPORTS_MLLP_ACK_TIMEOUT_MS. */
  async function answerWithin(message: Buffer, peer: Peer): Promise<{ ack: Buffer; code: AckCode } | null> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), ackTimeoutMs);
    });
    try {
      return await Promise.race([answer({ kind: 'message', bytes: message }, peer, clock()), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A batch in one frame: each message in order, exactly as in a frame of its own (received, stored or kept and
   * refused, its ACK and its ack-seconds sample), answered by one batch of ACKs. Each message has
   * REPORTS_MLLP_ACK_TIMEOUT_MS for its write: one that does not finish by then is answered AR "resend later", and
   * so is every message after it without being tried (they would queue behind the write that hangs); a resend of
   * the batch is safe, the stored ones being duplicates then.
   */
  async function handleBatch(bytes: Buffer, peer: Peer): Promise<Buffer> {
    const t0 = performance.now();
    let frame: BatchFrame;
    try {
      frame = splitBatch(bytes);
    } catch (err) {
      if (!(err instanceof BatchProblem)) throw err;
      return refuseBatch(bytes, peer, 'bad-batch', `the batch cannot be read: ${err.detail}`, err.location, t0);
    }
    if (frame.messageCount > maxBatchMessages) {
      return refuseBatch(
        bytes, peer, 'batch-too-large',
        `the batch has ${frame.messageCount} messages, more than REPORTS_MLLP_MAX_BATCH_MESSAGES (${maxBatchMessages}): send smaller batches`,
        'BTS', t0,
      );
    }
    const codes: Record<AckCode, number> = { AA: 0, AE: 0, AR: 0 };
    let late = false;
    const acks: Buffer[][] = [];
    for (const batch of frame.batches) {
      const out: Buffer[] = [];
      for (const message of batch.messages) {
        const t = performance.now();
        metrics.received.inc({ source: 'hl7' });
        let result = late ? null : await answerWithin(message, peer);
        if (!result) {
          if (!late) {
            late = true;
            logger.error({ connection: peer.connection }, 'report message in a batch not stored within REPORTS_MLLP_ACK_TIMEOUT_MS: it and the rest of the batch answered AR, the sender should resend');
          }
          metrics.rejected.inc({ source: 'hl7', reason: 'temporarily-unavailable' });
          result = { code: 'AR', ack: unavailableAck(message, clock()) };
        }
        metrics.ackSeconds.observe({ code: result.code }, (performance.now() - t) / 1000);
        codes[result.code] += 1;
        out.push(result.ack);
      }
      acks.push(out);
    }
    for (const b of frame.batches) {
      if (!countDisagrees(b.declaredCount, b.messages.length)) continue;
      metrics.batchCountMismatch.inc({ trailer: 'BTS' });
      logger.warn({ connection: peer.connection, declared: safeCount(b.declaredCount), messages: b.messages.length }, 'report batch: BTS-1 disagrees with the messages received; all of them were processed');
    }
    if (countDisagrees(frame.declaredBatches, frame.batches.length)) {
      metrics.batchCountMismatch.inc({ trailer: 'FTS' });
      logger.warn({ connection: peer.connection, declared: safeCount(frame.declaredBatches), batches: frame.batches.length }, 'report batch file: FTS-1 disagrees with the batches received; all of them were processed');
    }
    const seconds = (performance.now() - t0) / 1000;
    metrics.batches.inc({ outcome: 'processed' });
    metrics.batchSeconds.observe(seconds);
    logger.info({ connection: peer.connection, batches: frame.batches.length, messages: frame.messageCount, ...codes, ms: Math.round(seconds * 1000) }, 'report batch answered');
    return batchAck(frame, acks, hl7DateTime(clock()));
  }

  return {
    handle,

    timeoutReply(inbound) {
      metrics.rejected.inc({ source: 'hl7', reason: 'temporarily-unavailable' });
      metrics.ackSeconds.observe({ code: 'AR' }, 0);
      const bytes = inbound.kind === 'message' ? inbound.bytes : inbound.head;
      if (inbound.kind === 'message' && isBatch(bytes)) {
        // A backstop (each message of a batch has its own deadline, in handleBatch): every message "resend later".
        try {
          const frame = splitBatch(bytes);
          const now = clock();
          return batchAck(frame, frame.batches.map((b) => b.messages.map((m) => unavailableAck(m, now))), hl7DateTime(now));
        } catch {
          // Not a batch we can answer message by message: one AR, as for any other frame.
        }
      }
      return unavailableAck(bytes, clock());
    },

    replyTimeoutMs(inbound) {
      if (inbound.kind !== 'message' || !isBatch(inbound.bytes)) return ackTimeoutMs;
      // Each message of a batch has ackTimeoutMs; the whole frame, that per message and one more.
      return ackTimeoutMs * (Math.min(countMessages(inbound.bytes), maxBatchMessages) + 1);
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
          outcome = (await store(text, clock(), entry.receivedAt)).outcome;
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
