// Builds the HL7 v2.5.1 priority-update message (OMI^O23, or ORM^O01 for older receivers) from a StudyResult with
// @medplum/core's Hl7Message, and reads ACKs. Pure: no I/O, no clock (the caller passes `now`).
// The message carries the accession number and study UID (what the RIS keys on), never patient identity:
// there is no PID segment (the PATIENT group is optional in OMI_O23 and ORM_O01). See docs/hl7-interface.md.
import { Hl7Message } from '@medplum/core';
import type { Priority } from '../../../../shared/model-manifest';
import type { FindingScore, StudyResult } from '../../../../shared/results';
import type { Hl7Target } from '../config';
import { PermanentDeliveryError } from '../errors';
import { keyImageRows } from './key-image';

/** HL7 table 0485 (Quantity/timing priority): S stat, A as soon as possible, R routine. */
export const PRIORITY_0485: Record<Priority, { code: 'S' | 'A' | 'R'; text: string }> = {
  STAT: { code: 'S', text: 'Stat' },
  URGENT: { code: 'A', text: 'ASAP' },
  ROUTINE: { code: 'R', text: 'Routine' },
};

/** Local coding system for our observation identifiers (the "99" prefix marks a locally defined table). */
export const CODING_SYSTEM = '99NTRIAGE';

/** HL7 v2 escape sequences (2.7 "Escape sequences supporting delimiter values"): text must never split a field. */
export function hl7Escape(text: string): string {
  return text
    .replace(/\\/g, '\\E\\')
    .replace(/\|/g, '\\F\\')
    .replace(/\^/g, '\\S\\')
    .replace(/&/g, '\\T\\')
    .replace(/~/g, '\\R\\')
    .replace(/\r\n|\r|\n/g, '\\.br\\');
}

/** HL7 DTM with milliseconds, in UTC so the value does not depend on the server's zone. */
export function hl7DateTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return (
    `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}` +
    `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}+0000`
  );
}

/**
 * One segment's text from already-escaped field strings keyed by field number ("^" separates components).
 * For MSH, field 1 is the field separator itself, so numbering starts after "MSH|^~\\&".
 */
function seg(name: string, fields: Record<number, string>): string {
  const first = name === 'MSH' ? 3 : 1;
  const max = Math.max(first - 1, ...Object.keys(fields).map(Number));
  const values: string[] = [name === 'MSH' ? 'MSH|^~\\&' : name];
  for (let i = first; i <= max; i++) values.push(fields[i] ?? '');
  return values.join('|');
}

/** DS-like number text: enough digits for a score, no exponent. */
export function hl7Number(x: number): string {
  if (!Number.isFinite(x)) throw new PermanentDeliveryError('score is not a finite number', 'bad-score');
  return String(Number(x.toFixed(4)));
}

function cwe(code: string, text: string, system = CODING_SYSTEM): string {
  return `${hl7Escape(code)}^${hl7Escape(text)}^${system}`;
}

/** OBX rows for one finding; OBX-4 (observation sub-ID) groups the rows of a finding together. */
function findingObx(f: FindingScore, subId: number, when: string, next: () => number): string[] {
  const abnormal = f.flagged ? 'A' : 'N';
  const rows: Array<[string, string, string]> = [
    ['CWE', cwe('QUERY', 'Triage query'), cwe(f.queryId, f.text)],
    ['NM', cwe('SIMILARITY', 'Image-text similarity'), hl7Number(f.similarity)],
  ];
  if (f.probability !== null) rows.push(['NM', cwe('PROBABILITY', 'Calibrated probability'), hl7Number(f.probability)]);
  rows.push(['CWE', cwe('FLAGGED', 'Flagged'), f.flagged ? 'Y^Yes^HL70136' : 'N^No^HL70136']);
  rows.push(['CWE', cwe('QUERY_PRIORITY', 'Priority class of the query'), cwe(f.priority, f.priority)]);
  // OBX-11 "P" (preliminary): machine output that no radiologist has verified.
  return rows.map(([type, id, value]) =>
    seg('OBX', { 1: String(next()), 2: type, 3: id, 4: String(subId), 5: value, 8: abnormal, 11: 'P', 14: when }),
  );
}

/** The key image rows of a located finding (key-image.ts), in the finding's OBX group. */
function keyImageObx(f: FindingScore, subId: number, when: string, next: () => number): string[] {
  return keyImageRows(f).map((r) =>
    seg('OBX', { 1: String(next()), 2: r.type, 3: cwe(r.code, r.text, r.system), 4: String(subId), 5: hl7Escape(r.value), 11: 'P', 14: when }),
  );
}

export interface BuildOptions {
  controlId: string;
  now: number;
}

/** The priority-update message; throws PermanentDeliveryError when the result cannot be addressed to a RIS order. */
export function buildPriorityMessage(result: StudyResult, target: Hl7Target, opts: BuildOptions): Hl7Message {
  const accession = result.AccessionNumber?.trim();
  if (!accession) throw new PermanentDeliveryError('study has no AccessionNumber: the RIS cannot match an order', 'no-accession');
  const acc = hl7Escape(accession);
  const prio = PRIORITY_0485[result.priority];
  const omi = target.messageType === 'OMI^O23';
  const when = hl7DateTime(result.scoredAt);
  // TQ component 6 is priority: ORC-7 and OBR-27 carry it for receivers that predate TQ1 (deprecated in 2.5).
  const tq = `^^^^^${prio.code}`;

  const segments: string[] = [
    seg('MSH', {
      3: hl7Escape(target.sendingApplication),
      4: hl7Escape(target.sendingFacility),
      5: hl7Escape(target.receivingApplication),
      6: hl7Escape(target.receivingFacility),
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
      25: 'P',
      27: tq,
    }),
  );
  let setId = 0;
  const next = (): number => ++setId;
  segments.push(
    seg('OBX', { 1: String(next()), 2: 'CWE', 3: cwe('TRIAGE_PRIORITY', 'Triage priority'), 4: '0', 5: `${prio.code}^${prio.text}^HL70485`, 8: result.priority === 'ROUTINE' ? 'N' : 'A', 11: 'P', 14: when }),
  );
  if (result.abnormalProbability !== null) {
    segments.push(
      seg('OBX', { 1: String(next()), 2: 'NM', 3: cwe('ABNORMAL_PROBABILITY', 'Probability the study is abnormal'), 4: '0', 5: hl7Number(result.abnormalProbability), 11: 'P', 14: when }),
    );
  }
  segments.push(
    seg('OBX', { 1: String(next()), 2: 'ST', 3: cwe('MODEL', 'Model bundle and version'), 4: '0', 5: hl7Escape(`${result.model.bundleId} ${result.model.version}`), 11: 'P', 14: when }),
  );
  result.findings.forEach((f, i) => segments.push(...findingObx(f, i + 1, when, next), ...keyImageObx(f, i + 1, when, next)));
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
  /** ERR-3 (HL7 error code) when present: a code, never the peer's free text. */
  errorCode?: string;
}

export function readAck(message: Hl7Message): Ack {
  const msa = message.getSegment('MSA');
  const code = msa?.getField(1)?.toString().trim().toUpperCase();
  if (!code || !['AA', 'AE', 'AR', 'CA', 'CE', 'CR'].includes(code)) {
    throw new Error('reply has no MSA-1 acknowledgment code');
  }
  const errorCode = message.getSegment('ERR')?.getComponent(3, 1) || undefined;
  return { code: code as AckCode, controlId: msa?.getField(2)?.toString().trim() ?? '', errorCode };
}
