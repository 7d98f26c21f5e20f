// Builds the HL7 v2.5.1 priority-update message (OMI^O23, or ORM^O01 for older receivers) from a StudyResult with
// @medplum/core's Hl7Message, and reads ACKs. Pure: no I/O, no clock (the caller passes `now`).
// The message carries the accession number and study UID (what the RIS keys on), never patient identity:
// there is no PID segment (the PATIENT group is optional in OMI_O23 and ORM_O01). A study's later result is a
// correction of the earlier one: same order identifiers, OBR-25/OBX-11 "C". See docs/hl7-interface.md.
import { createHash } from 'node:crypto';
import { Hl7Message } from '@medplum/core';
import { hl7Escape, hl7Segment as seg } from '../../../../shared/hl7-text';
import type { Priority } from '../../../../shared/model-manifest';
import type { FindingScore, StudyResult } from '../../../../shared/results';
import { flagStatement, probabilityDecimal, probabilityPairDecimal } from '../../../../shared/models/decision';
import type { Hl7Target } from '../config';
import { PermanentDeliveryError } from '../errors';
import { resultStatements } from '../statements';
import { keyImageRows } from './key-image';

/** HL7 table 0485 (Quantity/timing priority): S stat, A as soon as possible, R routine. */
export const PRIORITY_0485: Record<Priority, { code: 'S' | 'A' | 'R'; text: string }> = {
  STAT: { code: 'S', text: 'Stat' },
  URGENT: { code: 'A', text: 'ASAP' },
  ROUTINE: { code: 'R', text: 'Routine' },
};

/** Local coding system for our observation identifiers (the "99" prefix marks a locally defined table). */
export const CODING_SYSTEM = '99NTRIAGE';

/** Re-exported: the escaping lives in shared/hl7-text.ts beside its inverse (the inbound report feed reads text). */
export { hl7Escape };

/** HL7 DTM with milliseconds, in UTC so the value does not depend on the server's zone. */
export function hl7DateTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return (
    `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}` +
    `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}+0000`
  );
}

/** DS-like number text: enough digits for a score, no exponent. */
export function hl7Number(x: number): string {
  if (!Number.isFinite(x)) throw new PermanentDeliveryError('score is not a finite number', 'bad-score');
  return String(Number(x.toFixed(4)));
}

function hl7Finite(p: number): number {
  if (!Number.isFinite(p)) throw new PermanentDeliveryError('probability is not a finite number', 'bad-score');
  return p;
}

/** A probability for an NM field: never 0 or 1 unless it is (shared/models/decision.ts probabilityDecimal). */
export function hl7Probability(p: number): string {
  return probabilityDecimal(hl7Finite(p));
}

/** HL7 v2.5.1 gives CWE.1 (identifier, ST) 20 characters. */
const CWE_IDENTIFIER_LENGTH = 20;

/**
 * A triage query id as CWE.1: the id when it fits 20 characters, else its first 12, "." and the first 7 hex digits
 * of SHA-256 of the whole id. Stable (an id always gives the same identifier), unique in practice (28 bits between
 * ids that share their first 12 characters) and never another query's own id (an id cannot hold "."). The NTE that
 * closes the finding's group names the whole id.
 */
export function hl7QueryIdentifier(queryId: string): string {
  if (queryId.length <= CWE_IDENTIFIER_LENGTH) return queryId;
  return `${queryId.slice(0, 12)}.${createHash('sha256').update(queryId).digest('hex').slice(0, 7)}`;
}

/** HL7 v2.5.1 gives CWE.2 (text, ST) 199 characters; a query sentence may have 500. */
const CWE_TEXT_LENGTH = 199;

/**
 * A query sentence as CWE.2: ST, so one line (line breaks and tabs, which ST cannot carry, as spaces) and at most 199
 * characters, a longer one cut at a character (never inside a surrogate pair) and ended "...". The finding's NTE
 * and the SR carry the decision; the identifier in CWE.1 is what a RIS keys on.
 */
export function hl7CweText(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  const chars = Array.from(line);
  return chars.length <= CWE_TEXT_LENGTH ? line : `${chars.slice(0, CWE_TEXT_LENGTH - 3).join('').trimEnd()}...`;
}

function cwe(code: string, text: string, system = CODING_SYSTEM): string {
  return `${hl7Escape(code)}^${hl7Escape(text)}^${system}`;
}

const yesNo = (b: boolean) => (b ? 'Y^Yes^HL70136' : 'N^No^HL70136');

/**
 * OBX rows for one finding; OBX-4 (observation sub-ID) groups the rows of a finding together. Its key-image rows
 * follow, then an NTE states the decision in words ("flagged: P 0.930 >= threshold 0.500; sets the STAT priority").
 */
function findingObx(f: FindingScore, subId: number, when: string, status: string, next: () => number): string[] {
  const abnormal = f.flagged ? 'A' : 'N';
  const rows: Array<[string, string, string]> = [
    ['CWE', cwe('QUERY', 'Triage query'), cwe(hl7QueryIdentifier(f.queryId), hl7CweText(f.text))],
    ['NM', cwe('SIMILARITY', 'Image-text similarity'), hl7Number(f.similarity)],
  ];
  // P and its threshold with the places that keep their order: never equal when the flag says they are not.
  const [p, t] = f.probability !== null && f.threshold !== null
    ? probabilityPairDecimal(hl7Finite(f.probability), hl7Finite(f.threshold))
    : [f.probability !== null ? hl7Probability(f.probability) : null, f.threshold !== null ? hl7Number(f.threshold) : null];
  if (p !== null) rows.push(['NM', cwe('PROBABILITY', 'Calibrated probability'), p]);
  if (t !== null) rows.push(['NM', cwe('THRESHOLD', 'Probability threshold'), t]);
  rows.push(['CWE', cwe('FLAGGED', 'Flagged'), yesNo(f.flagged)]);
  rows.push(['CWE', cwe('TRIGGERED', 'Sets the study priority'), yesNo(f.triggered === true)]);
  rows.push(['CWE', cwe('QUERY_PRIORITY', 'Priority class of the query'), cwe(f.priority, f.priority)]);
  // OBX-11 "P" (preliminary): machine output that no radiologist has verified; "C" in a correction.
  const segments = rows.map(([type, id, value]) =>
    seg('OBX', { 1: String(next()), 2: type, 3: id, 4: String(subId), 5: value, 8: abnormal, 11: status, 14: when }),
  );
  return segments;
}

/** The NTE that closes a finding's group, after its key-image rows: the decision in words. */
function decisionNte(f: FindingScore, subId: number): string {
  return seg('NTE', { 1: String(subId), 2: 'L', 3: hl7Escape(`${f.queryId}: ${flagStatement(f)}`) });
}

/**
 * Result status of the message (HL7 table 0123 in OBR-25, 0085 in OBX-11): a correction (C) when the RIS holds an
 * earlier result of the study (`corrects`, the version it accepted); otherwise this is the first result the RIS
 * gets, whatever its version: partial (A in OBR-25) when it may still change, else P.
 */
export function resultStatus(result: Pick<StudyResult, 'provisional'>, corrects?: number): { obr25: 'C' | 'A' | 'P'; obx11: 'C' | 'P' } {
  if (corrects !== undefined) return { obr25: 'C', obx11: 'C' };
  return { obr25: result.provisional ? 'A' : 'P', obx11: 'P' };
}

/**
 * The study-level notes: what a correction corrects; the rule and what set the priority; a provisional result's
 * wait; what a final one lacked (statements.ts, the same words as the SR).
 */
function studyNotes(result: StudyResult, corrects: number | undefined): string[] {
  const version = result.resultVersion ?? 1;
  const s = resultStatements(result);
  return [
    ...(corrects !== undefined ? [`Correction: result version ${version} replaces version ${corrects} for this order.`] : []),
    s.decision,
    ...(s.provisional ? [s.provisional] : []),
    ...(s.incomplete ? [s.incomplete] : []),
  ];
}

/** The key image rows of a located finding (key-image.ts), in the finding's OBX group. */
function keyImageObx(f: FindingScore, subId: number, when: string, status: string, next: () => number): string[] {
  return keyImageRows(f).map((r) =>
    seg('OBX', { 1: String(next()), 2: r.type, 3: cwe(r.code, r.text, r.system), 4: String(subId), 5: hl7Escape(r.value), 11: status, 14: when }),
  );
}

/** An HD setting (namespace^universal id^type, config.ts) as its field: each component escaped, "^" kept. */
const hd = (value: string): string => value.split('^').map(hl7Escape).join('^');

export interface BuildOptions {
  controlId: string;
  now: number;
  /** The result version the RIS has accepted for this study, when this message replaces it (accepted.ts). */
  corrects?: number;
}

/** The priority-update message; throws PermanentDeliveryError when the result cannot be addressed to a RIS order. */
export function buildPriorityMessage(result: StudyResult, target: Hl7Target, opts: BuildOptions): Hl7Message {
  const accession = result.AccessionNumber?.trim();
  if (!accession) throw new PermanentDeliveryError('study has no AccessionNumber: the RIS cannot match an order', 'no-accession');
  const acc = hl7Escape(accession);
  const prio = PRIORITY_0485[result.priority];
  const omi = target.messageType === 'OMI^O23';
  const when = hl7DateTime(result.scoredAt);
  const status = resultStatus(result, opts.corrects);
  // TQ component 6 is priority: ORC-7 and OBR-27 carry it for receivers that predate TQ1 (deprecated in 2.5).
  const tq = `^^^^^${prio.code}`;

  const segments: string[] = [
    seg('MSH', {
      3: hd(target.sendingApplication),
      4: hd(target.sendingFacility),
      5: hd(target.receivingApplication),
      6: hd(target.receivingFacility),
      7: hl7DateTime(opts.now),
      9: omi ? 'OMI^O23^OMI_O23' : 'ORM^O01^ORM_O01',
      10: opts.controlId,
      11: target.processingId,
      12: '2.5.1',
      18: 'UNICODE UTF-8',
    }),
    // XO: change order/service request; ORC-16 says why it changed.
    seg('ORC', { 1: 'XO', 3: acc, 7: tq, 9: when, 16: cwe('AI_TRIAGE', 'Priority set by AI triage') }),
  ];
  if (omi) segments.push(seg('TQ1', { 1: '1', 9: `${prio.code}^${prio.text}^HL70485` }));
  segments.push(
    seg('OBR', {
      1: '1',
      3: acc,
      4: cwe('NEUROTRIAGE', 'Brain MRI AI triage'),
      18: acc, // IHE Radiology convention for the accession number before IPC existed
      22: when,
      25: status.obr25,
      27: tq,
    }),
  );
  studyNotes(result, opts.corrects).forEach((text, i) => segments.push(seg('NTE', { 1: String(i + 1), 2: 'L', 3: hl7Escape(text) })));
  let setId = 0;
  const next = (): number => ++setId;
  segments.push(
    seg('OBX', { 1: String(next()), 2: 'CWE', 3: cwe('TRIAGE_PRIORITY', 'Triage priority'), 4: '0', 5: `${prio.code}^${prio.text}^HL70485`, 8: result.priority === 'ROUTINE' ? 'N' : 'A', 11: status.obx11, 14: when }),
  );
  const studyRow = (type: string, id: string, value: string) => seg('OBX', { 1: String(next()), 2: type, 3: id, 4: '0', 5: value, 11: status.obx11, 14: when });
  if (result.priorityProbability !== null && result.priorityProbability !== undefined) {
    // A ROUTINE study has no finding that set its priority: the value is then the highest of any finding's.
    const meaning = result.priority === 'ROUTINE' ? 'Highest probability among all findings (none set the priority)' : 'Highest probability among the findings that set the priority';
    segments.push(studyRow('NM', cwe('PRIORITY_PROBABILITY', meaning), hl7Probability(result.priorityProbability)));
  }
  if (result.abnormalProbability !== null) {
    segments.push(studyRow('NM', cwe('ABNORMAL_PROBABILITY', 'Probability the study is abnormal'), hl7Probability(result.abnormalProbability)));
  }
  segments.push(studyRow('ST', cwe('MODEL', 'Model bundle and version'), hl7Escape(`${result.model.bundleId} ${result.model.version}`)));
  if (result.judgedWith) segments.push(studyRow('ST', cwe('QUERY_SET_VERSION', 'Query set the study was judged with'), hl7Escape(result.judgedWith.querySetVersion)));
  segments.push(studyRow('NM', cwe('RESULT_VERSION', 'Result version'), String(result.resultVersion ?? 1)));
  result.findings.forEach((f, i) => segments.push(...findingObx(f, i + 1, when, status.obx11, next), ...keyImageObx(f, i + 1, when, status.obx11, next), decisionNte(f, i + 1)));
  if (omi) segments.push(seg('IPC', { 1: acc, 3: result.StudyInstanceUID, 5: 'MR' }));

  // Parsed by the library rather than assembled from its segment objects: Hl7Segment would treat MSH-1/MSH-2
  // (the delimiters themselves) as data, and parsing proves the text is a well-formed message.
  return Hl7Message.parse(segments.join('\r'));
}

export type AckCode = 'AA' | 'AE' | 'AR' | 'CA' | 'CE' | 'CR';

export interface Ack {
  code: AckCode;
  /** MSA-2: must equal the control id we sent. */
  controlId: string;
  /** ERR-3 (HL7 error code) when present and a code (digits, HL7 table 0357): never the peer's free text. */
  errorCode?: string;
}

/**
 * HL7 table 0357 codes that say the receiver could not process the message *now* (206 application record locked,
 * 207 application internal error): an AR carrying one is the "system down" reject of original mode, after which the
 * same message can succeed later (our own report feed answers AR 207 "resend later"), so it is retried.
 */
const TRANSIENT_ERROR_CODES = new Set(['206', '207']);

/**
 * What an acknowledgement means for the delivery: accepted; retry (AE/CE, and an AR/CR whose ERR-3 is 206 or 207);
 * or permanent (any other AR/CR: the message itself is not acceptable, resending it unchanged cannot help).
 */
export function ackOutcome(ack: Pick<Ack, 'code' | 'errorCode'>): 'accepted' | 'retry' | 'permanent' {
  if (ack.code === 'AA' || ack.code === 'CA') return 'accepted';
  if (ack.code === 'AE' || ack.code === 'CE') return 'retry';
  return ack.errorCode !== undefined && TRANSIENT_ERROR_CODES.has(ack.errorCode) ? 'retry' : 'permanent';
}

export function readAck(message: Hl7Message): Ack {
  const msa = message.getSegment('MSA');
  const code = msa?.getField(1)?.toString().trim().toUpperCase();
  if (!code || !['AA', 'AE', 'AR', 'CA', 'CE', 'CR'].includes(code)) {
    throw new Error('reply has no MSA-1 acknowledgment code');
  }
  // Table 0357 codes are numbers (0, 100 to 207; a site's own a few digits more). Anything else in ERR-3.1 is a RIS
  // writing its words there ("MRN ... not on file"), which must not reach a log, an error or a dead letter.
  const err3 = message.getSegment('ERR')?.getComponent(3, 1).trim() ?? '';
  const errorCode = /^\d{1,4}$/.test(err3) ? err3 : undefined;
  return { code: code as AckCode, controlId: msa?.getField(2)?.toString().trim() ?? '', errorCode };
}
