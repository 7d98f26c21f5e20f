// The three adapters behind one small interface: given a scored result and its delivery key, deliver it or throw a
// typed error. Each owns its transport (a persistent MLLP connection, a C-STORE association per SR, fetch).
import type { Redis } from 'ioredis';
import type { Logger } from '../../../shared/logger';
import { PRIORITIES, type Priority } from '../../../shared/model-manifest';
import type { StudyResult } from '../../../shared/results';
import type { Hl7Target, SrTarget, WebhookTarget } from './config';
import { PermanentDeliveryError, RetryableDeliveryError, SkipDelivery, type Adapter } from './errors';
import { ackOutcome, buildPriorityMessage, readAck } from './hl7/message';
import { acceptedBefore, recordAccepted, startRecord } from './hl7/accepted';
import { MllpSender } from './hl7/mllp-sender';
import { derivedUid, type DeliveryKey } from './idempotency';
import { buildTriageSr, COMPREHENSIVE_3D_SR } from './sr/build-sr';
import { cStore } from './sr/cstore';
import { statusHex } from '../../../shared/dicom-hex';
import { loadSourceStudy, readSourceAccession, type SourceStudyDeps } from './sr/source-study';
import { buildKeyObjects } from './sr/build-kos';
import { kosInstanceUid, kosSeriesUid, previousDelivered, recordDelivered, srInstanceUid, srSeriesUid } from './sr/versions';
import { buildWebhookPayload, postWebhook } from './webhook/webhook';
import { recordSent, sentBefore } from './webhook/sent';

/**
 * An adapter's judgment of a result: why it is not for this adapter (`skip`), or null to send it, and what the
 * judgment read of the peer's record, if anything (`context`). A job hands the context on to deliver, so a record
 * that both decides whether to send and shapes what is sent is read once per delivery (the webhook: what the
 * receiver was sent decides whether to post and what the post corrects).
 */
export interface Judgment<C = unknown> {
  skip: string | null;
  context?: C;
}

export interface OutboundAdapter<C = unknown> {
  readonly name: Adapter;
  /**
   * Versions of a study must reach the peer in order (HL7: the RIS applies each message as it comes). An ordered
   * adapter raises the study's watermark (idempotency.ts sentVersionKey) itself, in the same write as its own
   * record of the acknowledgment, so a crash cannot leave one without the other.
   */
  readonly ordered?: boolean;
  /**
   * Whether this result is for this adapter: at enqueue, when a job runs (before deliver, which gets the context),
   * and when a newer version is judged again (rejudgesNewer). The webhook reads what it sent before.
   */
  skipReason(result: StudyResult): Judgment<C> | Promise<Judgment<C>>;
  /**
   * skipReason depends on what was delivered (the webhook): a newer version of the study skipped while this one was
   * in flight is judged again once this one is delivered.
   */
  readonly rejudgesNewer?: boolean;
  /** Called as a result is queued for this adapter (HL7: the record of what the RIS accepted starts). */
  queued?(result: StudyResult): Promise<void>;
  /**
   * Called once skipReason has judged the result to be sent, with that judgment's context (adapters that need none
   * ignore it). Resolves with a short outcome code (e.g. "AA", "0x0000", "204"); throws Retryable/
   * PermanentDeliveryError, or SkipDelivery when the result turns out not to be for this adapter after all.
   */
  deliver(result: StudyResult, key: DeliveryKey, context?: C): Promise<string>;
  close(): Promise<void>;
}

export interface Hl7AdapterDeps {
  /** Where the versions the RIS accepted are recorded (hl7/accepted.ts). */
  redis: Redis;
  logger?: Logger;
  now?: () => number;
  /** Where to read the accession number from when a result lacks it (the stored instances). */
  source?: SourceStudyDeps;
}

/** A missing or unreadable instance means "no accession" (skip); an I/O hiccup is retried. */
async function accessionFromSource(source: SourceStudyDeps, StudyInstanceUID: string): Promise<string | undefined> {
  try {
    return await readSourceAccession(source, StudyInstanceUID);
  } catch (err) {
    if (err instanceof PermanentDeliveryError) return undefined;
    throw err;
  }
}

export function createHl7Adapter(target: Hl7Target, deps: Hl7AdapterDeps): OutboundAdapter {
  const sender = new MllpSender({ ...target, logger: deps.logger });
  const now = deps.now ?? Date.now;
  const { source } = deps;
  return {
    name: 'hl7',
    ordered: true,
    // Without an accession number and without stored instances to read it from, the RIS cannot match an order.
    skipReason: (result) => ({ skip: result.AccessionNumber?.trim() || source ? null : 'no-accession' }),
    queued: (result) => startRecord(deps.redis, result.StudyInstanceUID, result.resultVersion),
    async deliver(result, key) {
      const AccessionNumber = result.AccessionNumber?.trim() || (source && (await accessionFromSource(source, result.StudyInstanceUID)));
      if (!AccessionNumber) throw new SkipDelivery('no-accession');
      const version = result.resultVersion ?? 1;
      const corrects = await acceptedBefore(deps.redis, result.StudyInstanceUID, version);
      const message = buildPriorityMessage({ ...result, AccessionNumber }, target, { controlId: key.hl7ControlId, now: now(), corrects });
      const reply = await sender.send(message);
      let ack;
      try {
        ack = readAck(reply);
      } catch (err) {
        throw new RetryableDeliveryError('reply to the HL7 message is not an acknowledgement', 'bad-ack', { cause: err });
      }
      const detail = ack.errorCode ? ` (ERR-3 ${ack.errorCode})` : '';
      // Original and enhanced mode codes alike: A?/C? accept, E error (retry), R reject (permanent unless ERR-3
      // says the RIS could not process it now: 206 record locked, 207 internal error; message.ts ackOutcome).
      const outcome = ackOutcome(ack);
      if (outcome === 'accepted') {
        await recordAccepted(deps.redis, result.StudyInstanceUID, version, key.version);
        return ack.code;
      }
      if (outcome === 'retry') throw new RetryableDeliveryError(`RIS answered ${ack.code}${detail}`, `ack-${ack.code}`);
      throw new PermanentDeliveryError(`RIS answered ${ack.code}${detail}`, `ack-${ack.code}`);
    },
    close: () => sender.close(),
  };
}

export interface SrAdapterDeps {
  redis: Redis;
  dataDir: string;
  softwareVersion: string;
  now?: () => number;
}

export function createSrAdapter(target: SrTarget, deps: SrAdapterDeps): OutboundAdapter {
  const now = deps.now ?? Date.now;
  return {
    name: 'sr',
    skipReason: () => ({ skip: null }),
    async deliver(result, key) {
      const used = result.series.filter((s) => s.used).map((s) => s.SeriesInstanceUID);
      const source = await loadSourceStudy(deps, result.StudyInstanceUID, used);
      const study = result.StudyInstanceUID;
      const SeriesInstanceUID = srSeriesUid(study);
      // One instance per result version, so a retry overwrites rather than duplicates; results written before
      // versions existed keep the delivery key's UID and name no predecessor.
      const version = result.resultVersion;
      const SOPInstanceUID = version !== undefined ? srInstanceUid(study, version) : derivedUid('neurotriage-sr-instance', key.jobId);
      const previous = version !== undefined ? await previousDelivered(deps.redis, study, version) : undefined;
      const dataset = buildTriageSr(result, source, {
        SeriesInstanceUID,
        SOPInstanceUID,
        SeriesNumber: target.seriesNumber,
        InstanceNumber: version ?? 1,
        softwareVersion: deps.softwareVersion,
        now: now(),
        ...(previous ? { predecessor: { SeriesInstanceUID, SOPInstanceUID: previous.SOPInstanceUID, SOPClassUID: COMPREHENSIVE_3D_SR } } : {}),
      });
      const outcome = await cStore(dataset, target);
      if (version !== undefined) await recordDelivered(deps.redis, study, version, SOPInstanceUID);
      // The key slices as a Key Object Selection document, on its own association after the SR: a failure retries
      // the delivery, and the SR sent again overwrites its own instance.
      const keyObjects = target.keyImages
        ? buildKeyObjects(result, source, {
          SeriesInstanceUID: kosSeriesUid(study),
          SOPInstanceUID: version !== undefined ? kosInstanceUid(study, version) : derivedUid('neurotriage-kos-instance', key.jobId),
          SeriesNumber: target.seriesNumber + 1,
          InstanceNumber: version ?? 1,
          softwareVersion: deps.softwareVersion,
          now: now(),
        })
        : null;
      const kos = keyObjects ? await cStore(keyObjects, target).catch((err: unknown) => {
        // The dead letter must say that the SR itself is in the PACS, and how to stop sending what it refuses.
        if (!(err instanceof PermanentDeliveryError)) throw err;
        throw new PermanentDeliveryError(`key object document: ${err.message}; the SR was stored (SR_KEY_IMAGES=false sends the SR alone)`, err.reason, { cause: err });
      }) : null;
      return kos ? `${statusHex(outcome.status)}; key images ${statusHex(kos.status)}` : statusHex(outcome.status);
    },
    close: async () => undefined,
  };
}

export interface WebhookAdapterDeps {
  /** Where the versions the receiver was sent are recorded (webhook/sent.ts). */
  redis: Redis;
  fetch?: typeof fetch;
  now?: () => number;
}

/**
 * What the webhook's judgment read: the latest earlier version the receiver was sent (webhook/sent.ts), undefined
 * when it was sent none. No context at all: the result is at or above the minimum, sent whatever the record says.
 */
interface WebhookContext {
  sent: Awaited<ReturnType<typeof sentBefore>>;
}

export function createWebhookAdapter(target: WebhookTarget, deps: WebhookAdapterDeps): OutboundAdapter<WebhookContext> {
  const minRank = PRIORITIES.indexOf(target.minPriority);
  // PRIORITIES runs STAT, URGENT, ROUTINE: a lower index is more urgent.
  const atOrAboveMin = (priority: Priority): boolean => PRIORITIES.indexOf(priority) <= minRank;
  const sentBeforeThis = (result: StudyResult) => sentBefore(deps.redis, result.StudyInstanceUID, result.resultVersion ?? 1);
  return {
    name: 'webhook',
    rejudgesNewer: true,
    // Below the minimum, a version is still sent when the one the receiver last got was at or above it: the
    // withdrawal of an alert it holds (a pager that got STAT learns the study is now ROUTINE); once it has been told,
    // later ones below it are not sent.
    async skipReason(result) {
      if (atOrAboveMin(result.priority)) return { skip: null };
      const sent = await sentBeforeThis(result);
      return { skip: sent && atOrAboveMin(sent.priority) ? null : 'below-min-priority', context: { sent } };
    },
    async deliver(result, key, context) {
      // One read of what the receiver was sent per delivery, for whether to post and what the post corrects: the one
      // skipReason made, or (a result at or above the minimum, judged without it) this one.
      const { sent } = context ?? { sent: await sentBeforeThis(result) };
      const status = await postWebhook(target, buildWebhookPayload(result, key.jobId, sent?.version ?? null), deps);
      await recordSent(deps.redis, result.StudyInstanceUID, result.resultVersion ?? 1, result.priority);
      return String(status);
    },
    close: async () => undefined,
  };
}
