// Reads an HL7 v2 ORU^R01 (unsolicited observation result: the RIS's final report) into the reports it carries,
// with @medplum/core's Hl7Message. Pure: no I/O, no clock. Every way a message can be unusable is a typed
// OruProblem with the ACK code it earns (AR for the header: type, version, control id, sender; AE for the content:
// no OBR, no accession number, no report text, an unusable result status), a reason code for metrics and the
// rejected store, the HL7 error code (table 0357) and location for ERR, and words that never quote the message.
import { Hl7Message, type Hl7Segment } from '@medplum/core';
import { c1AsWindows1252, decodeSingleByte, Hl7CharsetSwitch, Hl7UndefinedByte, hl7Unescape, type Hl7TextEncoding } from '../../../shared/hl7-text';
import type { ReportTime, StoredReport } from '../../../shared/reports';
import { offsetAtWall, parseOffset, wallInstants } from '../../../shared/time-zone';
import { controlCharacterIn, hasText } from '../free-text';
import { beginsMessage } from './batch';
import type { AccessionField } from './config';

export type RejectReason =
  | 'bad-msh' | 'unsupported-message' | 'unsupported-version' | 'no-control-id' | 'facility-not-allowed'
  | 'unsupported-charset' | 'no-obr' | 'no-accession' | 'bad-accession' | 'no-text' | 'bad-text' | 'bad-status' | 'too-large';

export const REJECT_REASONS: readonly RejectReason[] = [
  'bad-msh', 'unsupported-message', 'unsupported-version', 'no-control-id', 'facility-not-allowed',
  'unsupported-charset', 'no-obr', 'no-accession', 'bad-accession', 'no-text', 'bad-text', 'bad-status', 'too-large',
];

export class OruProblem extends Error {
  override name = 'OruProblem';
  constructor(
    readonly ack: 'AE' | 'AR',
    readonly reason: RejectReason,
    /** Our words for MSA-3, ERR-8 and the rejected store; never a quote of patient data. */
    readonly detail: string,
    /** HL7 table 0357: 100 segment sequence, 101 required field missing, 102 data type, 103 table value, 200-203 unsupported. */
    readonly errorCode: '100' | '101' | '102' | '103' | '200' | '201' | '203' | '207',
    /** ERR-2 (ERL): segment id^sequence^field, e.g. OBR^1^25. */
    readonly location?: string,
  ) {
    super(detail);
  }

  /** The message, when it parsed far enough for an ACK that mirrors its header (set by parseOru). */
  hl7?: Hl7Message;
}

export interface OruReport {
  AccessionNumber: string;
  text: string;
  status: StoredReport['status'];
  /** OBR-22 (Results Rpt/Status Chng Date/Time), else MSH-7; absent when neither reads as an HL7 DTM. */
  reportTime?: ReportTime;
}

export interface ParsedOru {
  message: Hl7Message;
  /** MSH-10. */
  controlId: string;
  /** MSH-3 and MSH-4 namespace IDs: with MSH-10 they identify a message (control ids are unique per sender). */
  sendingApplication: string;
  sendingFacility: string;
  reports: OruReport[];
}

export interface OruRules {
  accessionFields: readonly AccessionField[];
  /** Upper-case MSH-4 namespace IDs; null: any. */
  allowedFacilities: ReadonlySet<string> | null;
  /** The site's IANA time zone, for report times without an offset (tests); by default this process's (TZ). */
  timeZone?: string;
}

const DTM = /^(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,4}))?)?)?)?)?)?([+-]\d{4})?$/;

/**
 * An HL7 DTM (also the first component of v2.3's TS), `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`, as the span
 * of time it names: `20261025` the whole day, `202610250130` that minute, `20261025013000.12` a hundredth of a
 * second. Without an offset it is the site's local time (`timeZone`, else the process's TZ): in the hour a change to
 * winter time repeats, a span over both of its readings; in the hour a change to summer time skips, as if the clock
 * had not been changed.
 * Undefined for anything else: a month 13, 31 April, 24:00, a second 60, an offset past -1200..+1400, a year before
 * 1900, extra characters.
 */
export function parseHl7Time(value: string, timeZone?: string): { from: number; to: number } | undefined {
  const m = DTM.exec(value.trim());
  if (!m) return undefined;
  const [year, month = 1, day = 1, hour = 0, minute = 0, second = 0] = m.slice(1, 7).map((v) => (v === undefined ? undefined : Number(v)));
  if (year === undefined || year < 1900) return undefined;
  if (month < 1 || month > 12 || day < 1 || day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  const fraction = m[7] ?? '';
  const ms = Number(fraction.padEnd(3, '0').slice(0, 3));
  let offset: number | undefined;
  if (m[8] !== undefined) {
    offset = parseOffset(m[8]);
    if (offset === undefined) return undefined;
  }
  const wall = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  // The wall-clock time just after the span: the next year, month, day, ... or the next unit of the fraction given.
  const precision = m.slice(2, 7).filter((v) => v !== undefined).length;
  const end = precision === 0 ? Date.UTC(year + 1, 0, 1)
    : precision === 1 ? Date.UTC(year, month, 1)
    : precision === 2 ? wall + 86_400_000
    : precision === 3 ? wall + 3_600_000
    : precision === 4 ? wall + 60_000
    : wall + Math.max(1, fraction ? 10 ** (3 - fraction.length) : 1000);
  // A local time names every instant it could be: both in the hour a change to winter time repeats, so such a time
  // orders no report within that hour; in the hour a change to summer time skips, the one as if it had not changed
  // (offsetAtWall's reading: the offset before the change, 02:30 in New York read as 03:30 EDT).
  const instants = (w: number): number[] => {
    if (offset !== undefined) return [w - offset * 60_000];
    const all = wallInstants(w, timeZone);
    return all.length > 0 ? all : [w - offsetAtWall(w, timeZone) * 60_000];
  };
  const from = Math.min(...instants(wall));
  // The span ends after the latest reading of its last millisecond, not of the wall time after it: 00:59:59 BST on
  // the day of the October change ends at 00:00Z, not an hour later where the repeated 01:00 is read a second time;
  // 01:59 EST before the March change in New York ends at 07:00Z (its end, 02:00, is skipped).
  const to = Math.max(...instants(end - 1)) + 1;
  return to > from ? { from, to } : undefined;
}

/**
 * MSH-18 values we decode: HL7 table 0211's, and the names other systems put there for the same sets (the IANA
 * names, and DICOM's Specific Character Set terms from RIS and PACS-side systems that fill MSH-18 from a DICOM
 * header: ISO_IR 192 is UTF-8, ISO_IR 100 is ISO 8859-1, ...). Empty means the HL7 default (ASCII) and, like ASCII
 * itself, is read as UTF-8, its superset. 8859/1 is read as windows-1252, its superset (shared/hl7-text.ts
 * decodeLatin1), and 8859/9 likewise as windows-1254; the other parts with the runtime's table of that part
 * (shared/hl7-text.ts SINGLE_BYTE). 8859/15 differs from 8859/1 in eight code points (the euro sign, Š š Ž ž Œ œ Ÿ).
 * The ISO 2022 forms (DICOM's ISO 2022 IR 100, ...) are not here: they allow switching to other sets mid-text.
 */
export type MessageEncoding = Hl7TextEncoding;
const CHARSETS: Record<string, MessageEncoding> = {
  '': 'utf8', 'UNICODE UTF-8': 'utf8', 'UNICODE': 'utf8', 'ASCII': 'utf8', 'UTF-8': 'utf8', 'ISO_IR 192': 'utf8',
  '8859/1': 'latin1', 'ISO-8859-1': 'latin1', 'ISO_IR 100': 'latin1',
  '8859/2': 'latin2', 'ISO-8859-2': 'latin2', 'ISO_IR 101': 'latin2',
  '8859/3': 'latin3', 'ISO-8859-3': 'latin3', 'ISO_IR 109': 'latin3',
  '8859/4': 'latin4', 'ISO-8859-4': 'latin4', 'ISO_IR 110': 'latin4',
  '8859/5': 'cyrillic', 'ISO-8859-5': 'cyrillic', 'ISO_IR 144': 'cyrillic',
  '8859/6': 'arabic', 'ISO-8859-6': 'arabic', 'ISO_IR 127': 'arabic',
  '8859/7': 'greek', 'ISO-8859-7': 'greek', 'ISO_IR 126': 'greek',
  '8859/8': 'hebrew', 'ISO-8859-8': 'hebrew', 'ISO_IR 138': 'hebrew',
  '8859/9': 'latin5', 'ISO-8859-9': 'latin5', 'ISO_IR 148': 'latin5',
  '8859/15': 'latin9', 'ISO-8859-15': 'latin9', 'ISO_IR 203': 'latin9',
};

/**
 * The character set an MSH-18 value names (its first repetition's first component, as read from the message):
 * its name, upper case and trimmed, and how we encode it; undefined for one we do not read.
 */
export function charsetOf(msh18: string): { name: string; encoding: MessageEncoding } | undefined {
  const name = msh18.trim().toUpperCase();
  const encoding = Object.hasOwn(CHARSETS, name) ? CHARSETS[name] : undefined;
  return encoding ? { name, encoding } : undefined;
}
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Bytes -> text in the character set MSH-18 names (read from the raw header, before any decoding). Bytes that are
 * not UTF-8 where UTF-8 is read are refused (AE, kept for replay), never stored with replacement characters.
 */
export function decodeMessage(bytes: Buffer): string {
  const head = bytes.subarray(0, Math.min(bytes.length, 2048)).toString('latin1');
  if (/^(FHS|BHS)/.test(head)) {
    // A batch is read as a whole frame (hl7-feed.ts, batch.ts); here only a replay of one kept before batches were
    // taken could bring one, and a replay is one message.
    throw new OruProblem('AR', 'bad-msh', `a batch (${head.slice(0, 3)}) is not one message: replay each of its ORU^R01 messages (from MSH) on its own`, '100', head.slice(0, 3));
  }
  if (!head.startsWith('MSH')) throw new OruProblem('AR', 'bad-msh', 'the message does not start with an MSH segment', '100', 'MSH');
  const first = head.split(/[\r\n]/, 1)[0];
  const fields = first.split(first.charAt(3));
  // MSH-18 repeats: the first repetition is the character set of the message; later ones name alternates switched
  // to by ISO 2022 escapes (their ESC bytes would make the text AE bad-text, never misread).
  const declared = charsetOf((fields[17] ?? '').split(first.charAt(5))[0].split(first.charAt(4))[0]);
  if (!declared) {
    throw new OruProblem('AE', 'unsupported-charset', 'MSH-18 names a character set this interface does not read (use UNICODE UTF-8, or 8859/1 to 8859/9 or 8859/15)', '103', 'MSH^1^18');
  }
  const { name: charset, encoding } = declared;
  if (encoding !== 'utf8') {
    try {
      return decodeSingleByte(bytes, encoding);
    } catch (err) {
      if (!(err instanceof Hl7UndefinedByte)) throw err;
      throw new OruProblem(
        'AE', 'unsupported-charset', `the message holds a byte that the character set MSH-18 "${charset}" names does not define: send it in that set, or in UNICODE UTF-8`,
        '103', 'MSH^1^18',
      );
    }
  }
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new OruProblem(
      'AE', 'unsupported-charset',
      `the message is not valid UTF-8, which MSH-18 ${charset ? `"${charset}"` : 'left empty'} means here: a RIS that sends ISO 8859-1 says 8859/1 in MSH-18`,
      '103', 'MSH^1^18',
    );
  }
}

/** Safe to echo in an ACK and a log: letters, digits and a few separators, at most 40 characters. */
function printable(value: string): string {
  return value.replace(/[^A-Za-z0-9 ._-]/g, '?').slice(0, 40);
}

const field = (seg: Hl7Segment | undefined, n: number): string => seg?.getField(n)?.toString() ?? '';
const component = (seg: Hl7Segment | undefined, n: number, c = 1): string => seg?.getComponent(n, c) ?? '';

/** LOINC and RIS section codes in OBX-3 that name a report section; the heading is written when the text lacks it. */
const SECTION_HEADINGS: Record<string, string> = {
  '18782-3': 'FINDINGS', '59776-5': 'FINDINGS', '&GDT': 'FINDINGS', 'GDT': 'FINDINGS', 'FINDINGS': 'FINDINGS',
  '19005-8': 'IMPRESSION', '&IMP': 'IMPRESSION', 'IMP': 'IMPRESSION', 'IMPRESSION': 'IMPRESSION',
  '18834-2': 'COMPARISON', '55752-0': 'CLINICAL INFORMATION', '18785-6': 'INDICATION', '55111-9': 'TECHNIQUE',
};

const TEXT_TYPES = new Set(['TX', 'FT', 'ST']);

/**
 * Escapes decoded, hex data in the message's character set (MSH-18); a \C..\ or \M..\ switch to another set is
 * AE unsupported-charset (the text after it was decoded in the wrong set), never stored with the escape as words.
 */
function unescapeIn(value: string, encoding: MessageEncoding, location: string): string {
  try {
    return hl7Unescape(value, { encoding });
  } catch (err) {
    if (!(err instanceof Hl7CharsetSwitch)) throw err;
    throw new OruProblem('AE', 'unsupported-charset', `${location.replace(/\^/g, ' ')} switches to another character set (a \\C or \\M escape) than MSH-18 names: send the text in the character set MSH-18 names`, '103', location);
  }
}

/**
 * A text field (OBX-5, NTE-3): its repetitions as lines, escapes decoded (components re-joined: a stray ^ is text).
 */
function fieldText(seg: Hl7Segment, n: number, context: TextContext, location: string): string {
  const value = seg.getField(n);
  if (!value) return '';
  // Quotes and dashes that reached us as C1 code points (windows-1252 read as 8859-1 on the way) are read as meant.
  return value.components.map((rep) => c1AsWindows1252(unescapeIn(rep.join(context.componentSeparator), context.encoding, location))).join('\n');
}

interface TextContext {
  componentSeparator: string;
  encoding: MessageEncoding;
}

interface Group {
  orc?: Hl7Segment;
  obr: Hl7Segment;
  obrIndex: number;
  /** One block per run of OBX with the same observation identifier (OBX-3), in message order. */
  sections: Array<{ heading: string | null; observation: string; lines: string[] }>;
  firstObx?: Hl7Segment;
  /** NTE-3 of the NTEs after the OBR or one of its OBX, in message order: the report when no OBX has text. */
  notes: string[];
}

function groupText(g: Group): string {
  const out: string[] = [];
  for (const s of g.sections) {
    const body = s.lines.join('\n');
    const firstLine = body.trimStart().split('\n', 1)[0].toUpperCase();
    // The text has the heading when its first line is the heading ("FINDINGS", "FINDINGS:", "Findings: ..."), not
    // merely when it begins with the word: "Comparison is made with ..." under a COMPARISON OBX still needs it.
    if (s.heading && !new RegExp(`^${s.heading}\\s*(:|$)`).test(firstLine)) out.push(`${s.heading}:`);
    out.push(body);
    // A blank line ends the block: the report reader (shared/language/sentences.ts) ends a section there, so a
    // COMPARISON or TECHNIQUE block never swallows the next OBX's findings.
    out.push('');
  }
  return out.join('\n').replace(/\s+$/, '');
}

function accessionOf(g: Group, fields: readonly AccessionField[], encoding: MessageEncoding): { value: string; location: string } | null {
  for (const f of fields) {
    const [seg, n] = f.split('-') as ['OBR' | 'ORC', string];
    const segment = seg === 'OBR' ? g.obr : g.orc;
    // The entity identifier (component 1) of an EI field; unescaped, trimmed as DICOM pads with spaces.
    const location = `${seg}^${seg === 'OBR' ? g.obrIndex : 1}^${n}`;
    const value = unescapeIn(component(segment, Number(n), 1), encoding, location).trim();
    if (value) return { value, location };
  }
  return null;
}

export const hasControlCharacters = (s: string): boolean => controlCharacterIn(s, { identifier: true }) !== null;

// R (results stored, not yet verified) and A (some results available) are reports not yet signed: preliminary.
const STATUSES: Record<string, StoredReport['status']> = { F: 'F', C: 'C', P: 'P', R: 'P', A: 'P', X: 'X' };

/** OBR-25, else OBX-11 of the order's first text OBX: upper case, trimmed, as sent. */
const rawStatusOf = (g: Group): string => (component(g.obr, 25, 1) || component(g.firstObx, 11, 1)).trim().toUpperCase();

/** A segment begins with its three-character id (OBX, PV1, ZDS, ...) and a field separator, or is the id alone. */
const SEGMENT_START = /^[A-Z][A-Z0-9]{2}(\||$)/;

/**
 * The message's segments, one per line, whatever ends them (CR as the standard says, CR LF or LF as some senders
 * do). A line that does not begin with a segment id is a raw line break inside a field (report text typed with
 * Enter that the RIS did not escape as \.br\): it continues the segment before, joined by \.br\ (a blank line
 * between keeps the paragraph). Split there as segments, those lines were dropped and the rest of the OBX with them
 * (its OBX-11 too), while the message was answered AA.
 */
export function joinSegments(text: string): string {
  const segments: string[] = [];
  let blanks = 0;
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === '') {
      blanks += 1;
    } else if (segments.length === 0 || SEGMENT_START.test(line)) {
      segments.push(line);
      blanks = 0;
    } else {
      segments[segments.length - 1] += `${'\\.br\\'.repeat(blanks + 1)}${line}`;
      blanks = 0;
    }
  }
  return segments.join('\r');
}

/**
 * The report's own time: OBR-22 (Results Rpt/Status Chng Date/Time: when the result was signed or last changed),
 * else MSH-7 (when the message was made); one that does not read as a DTM is passed over, never refused.
 */
function reportTimeOf(obr: Hl7Segment, msh: Hl7Segment, timeZone: string | undefined): ReportTime | undefined {
  for (const [seg, n, name] of [[obr, 22, 'OBR-22'], [msh, 7, 'MSH-7']] as const) {
    const span = parseHl7Time(component(seg, n, 1), timeZone);
    if (span) return { ...span, field: name };
  }
  return undefined;
}

/** Parses and checks one ORU^R01; throws OruProblem when it cannot be used. */
export function parseOru(text: string, rules: OruRules): ParsedOru {
  if (!/^MSH\|\^~\\&/.test(text)) {
    throw new OruProblem('AR', 'bad-msh', 'MSH must begin "MSH|^~\\&" (the standard delimiters)', '100', 'MSH^1^2');
  }
  // MLLP carries one message per frame; several go as an HL7 batch. A second MSH was read as part of the first:
  // both reports filed under the first one's control id with one ACK, or, a second with delimiters of its own, that
  // message (its PID too) stored as text of the first report.
  if (text.split(/\r\n|\r|\n/).slice(1).some(beginsMessage)) {
    throw new OruProblem('AR', 'bad-msh', 'the frame holds more than one message (a second MSH): send one message per frame, or several as an HL7 batch (BHS ... BTS)', '100', 'MSH');
  }
  let message: Hl7Message;
  try {
    message = Hl7Message.parse(joinSegments(text));
  } catch {
    throw new OruProblem('AR', 'bad-msh', 'the message could not be parsed', '100', 'MSH');
  }
  try {
    return readOru(message, rules);
  } catch (err) {
    if (err instanceof OruProblem) err.hl7 = message;
    throw err;
  }
}

function readOru(message: Hl7Message, rules: OruRules): ParsedOru {
  const msh = message.header;
  const type = component(msh, 9, 1).toUpperCase();
  const trigger = component(msh, 9, 2).toUpperCase();
  if (type !== 'ORU') throw new OruProblem('AR', 'unsupported-message', `MSH-9 is ${printable(type) || 'empty'}: this interface takes ORU^R01 only`, '200', 'MSH^1^9');
  if (trigger !== 'R01') throw new OruProblem('AR', 'unsupported-message', `MSH-9 event is ${printable(trigger) || 'empty'}: this interface takes ORU^R01 only`, '201', 'MSH^1^9');
  const version = component(msh, 12, 1).trim();
  if (!/^2\.[1-9](\.\d+)?$/.test(version)) {
    throw new OruProblem('AR', 'unsupported-version', `MSH-12 version ${printable(version) || 'empty'} is not an HL7 v2 version`, '203', 'MSH^1^12');
  }
  const controlId = field(msh, 10).trim();
  if (!controlId) throw new OruProblem('AR', 'no-control-id', 'MSH-10 (message control id) is empty: the message could not be told from a resend', '101', 'MSH^1^10');
  const sendingApplication = component(msh, 3, 1).trim();
  const sendingFacility = component(msh, 4, 1).trim();
  if (rules.allowedFacilities && !rules.allowedFacilities.has(sendingFacility.toUpperCase())) {
    throw new OruProblem(
      'AR', 'facility-not-allowed',
      `sending facility (MSH-4) "${printable(sendingFacility)}" is not in REPORTS_MLLP_ALLOWED_FACILITIES`, '207', 'MSH^1^4',
    );
  }

  // ORDER_OBSERVATION groups: [ORC] OBR [{NTE}] {OBX [{NTE}]}. OBX before any OBR and patient segments are not
  // report text; an NTE is a comment on the OBR or OBX it follows (v2.5.1 ORU_R01), so only those NTEs are read
  // (not one after PID, the patient's notes, nor one after a deleted or wrong OBX).
  const groups: Group[] = [];
  let orc: Hl7Segment | undefined;
  let obrCount = 0;
  /** The group an NTE here would comment on: set by its OBR or OBX, cleared by any other segment. */
  let noteOf: Group | undefined;
  // Hex data (\Xhh\) is bytes in the message's character set: UTF-8 bytes in a UTF-8 message.
  const context: TextContext = {
    componentSeparator: message.context.componentSeparator,
    encoding: charsetOf(component(msh, 18, 1))?.encoding ?? 'utf8',
  };
  /** How many of each segment so far: ERR-2's segment sequence. */
  const seen = new Map<string, number>();
  for (const seg of message.segments) {
    seen.set(seg.name, (seen.get(seg.name) ?? 0) + 1);
    const at = (n: number) => `${seg.name}^${seen.get(seg.name)}^${n}`;
    if (seg.name === 'NTE') {
      // NTE-2 P: a comment from the orderer (placer), e.g. the clinical question: not the report.
      if (noteOf && component(seg, 2, 1).trim().toUpperCase() !== 'P') noteOf.notes.push(fieldText(seg, 3, context, at(3)));
      continue;
    }
    noteOf = undefined;
    if (seg.name === 'ORC') orc = seg;
    else if (seg.name === 'OBR') {
      groups.push({ orc, obr: seg, obrIndex: ++obrCount, sections: [], notes: [] });
      noteOf = groups[groups.length - 1];
      orc = undefined;
    } else if (seg.name === 'OBX' && groups.length > 0) {
      const g = groups[groups.length - 1];
      const valueType = component(seg, 2, 1).toUpperCase();
      const resultStatus = component(seg, 11, 1).toUpperCase();
      // D: delete the observation, W: it was wrong; neither is report text, nor are the comments on it.
      if (resultStatus === 'D' || resultStatus === 'W') continue;
      noteOf = g;
      if (!TEXT_TYPES.has(valueType)) continue;
      g.firstObx ??= seg;
      const id = component(seg, 3, 1).toUpperCase();
      const heading = SECTION_HEADINGS[id] ?? SECTION_HEADINGS[component(seg, 3, 2).toUpperCase()] ?? null;
      // The observation (OBX-3 identifier, else its text) says which part of the report an OBX is: OBXs of one
      // observation (a report sent a line per OBX) make one block; another observation starts a new block.
      const observation = (id || component(seg, 3, 2)).trim().toUpperCase();
      const last = g.sections[g.sections.length - 1];
      const line = fieldText(seg, 5, context, at(5));
      if (last && observation === last.observation && (heading === null || heading === last.heading)) last.lines.push(line);
      else g.sections.push({ heading, observation, lines: [line] });
    }
  }
  if (groups.length === 0) throw new OruProblem('AE', 'no-obr', 'the message has no OBR segment: there is no order to file a report against', '100', 'OBR');

  // Many RIS send the report in NTE (notes and comments) rather than OBX. OBX text is preferred: the NTEs are read
  // only when no OBX of the message has text, so a message with both is read as before (the NTEs are then comments).
  let texts = groups.map(groupText);
  const fromNotes = !texts.some(hasText);
  if (fromNotes) texts = groups.map((g) => g.notes.join('\n').replace(/\s+$/, ''));
  // Linked exams: one report for several orders, the text under the first; the others share it. Text is what
  // POST /api/v1/reports takes too (services/api/free-text.ts): a letter or digit, no control character.
  const shared = texts.find(hasText);
  // A cancellation (OBR-25 X) withdraws the report and often comes without text: it needs none.
  if (!shared && !groups.every((g) => rawStatusOf(g) === 'X')) throw new OruProblem('AE', 'no-text', 'no OBX of type TX, FT or ST nor NTE after the OBR carries report text (a letter or digit)', '101', 'OBX^1^5');

  const byAccession = new Map<string, OruReport>();
  groups.forEach((g, i) => {
    const acc = accessionOf(g, rules.accessionFields, context.encoding);
    if (!acc) {
      throw new OruProblem('AE', 'no-accession', `no accession number in ${rules.accessionFields.join(', ')} of OBR ${g.obrIndex}`, '101', `OBR^${g.obrIndex}^${rules.accessionFields[0].split('-')[1]}`);
    }
    if (acc.value.length > 64 || hasControlCharacters(acc.value)) {
      throw new OruProblem('AE', 'bad-accession', `the accession number in ${acc.location.replace(/\^/g, ' ')} is longer than 64 characters or holds control characters`, '102', acc.location);
    }
    const rawStatus = rawStatusOf(g);
    const status = STATUSES[rawStatus];
    if (!status) {
      throw new OruProblem(
        'AE', 'bad-status',
        rawStatus ? `OBR-25 result status ${printable(rawStatus)} is not F (final), C (corrected), P, R or A (preliminary) or X (cancelled)` : 'OBR-25 (result status) is empty',
        rawStatus ? '103' : '101', `OBR^${g.obrIndex}^25`,
      );
    }
    // A cancelled order without text of its own is withdrawn: it does not take a linked exam's report.
    const text = hasText(texts[i]) ? texts[i] : status === 'X' ? '' : (shared ?? '');
    const control = controlCharacterIn(text);
    if (control) {
      throw new OruProblem('AE', 'bad-text', `the report text of OBR ${g.obrIndex} holds a control character (${control}): send plain text (tabs and line breaks are allowed)`, '102', fromNotes ? 'NTE^1^3' : 'OBX^1^5');
    }
    const prev = byAccession.get(acc.value);
    const reportTime = reportTimeOf(g.obr, msh, rules.timeZone);
    byAccession.set(acc.value, prev ? { ...prev, text: `${prev.text}\n${text}` } : { AccessionNumber: acc.value, text, status, ...(reportTime ? { reportTime } : {}) });
  });
  return { message, controlId, sendingApplication, sendingFacility, reports: [...byAccession.values()] };
}
