// HL7 v2 text escaping (v2.5.1 chapter 2.7, "Escape sequences supporting delimiter values"), both ways, and a
// segment writer: the outbound messages escape query sentences, the inbound report feed and the PACS simulator
// read and write report text. Only the default delimiters (|^~\&) are supported, which is what MSH-2 says in every feed we take.

/** Text -> field value: delimiters escaped, line breaks as \.br\, so text can never split a field or segment. */
export function hl7Escape(text: string): string {
  return text
    .replace(/\\/g, '\\E\\')
    .replace(/\|/g, '\\F\\')
    .replace(/\^/g, '\\S\\')
    .replace(/&/g, '\\T\\')
    .replace(/~/g, '\\R\\')
    .replace(/\r\n|\r|\n/g, '\\.br\\');
}

/**
 * ISO 8859 parts read with the runtime's own table (a WHATWG encoding, whose table for these labels is the part
 * itself), and the ISO 2022 designation of the part's upper half (ESC - F, as HL7 writes it in \C..\). 8859/9 is
 * read as windows-1254, WHATWG's reading of 'iso-8859-9' and its superset, as 8859/1 is read as windows-1252
 * (decodeLatin1): they differ only in 0x80-0x9F, C1 control codes in ISO 8859-9 that no report holds. Bytes a part
 * leaves undefined (8859/3, /6, /7, /8 have some) are refused by the decoder (fatal), never read as U+FFFD.
 */
const SINGLE_BYTE = {
  latin9: { label: 'iso-8859-15', designation: '2D62' },
  latin2: { label: 'iso-8859-2', designation: '2D42' },
  latin3: { label: 'iso-8859-3', designation: '2D43' },
  latin4: { label: 'iso-8859-4', designation: '2D44' },
  cyrillic: { label: 'iso-8859-5', designation: '2D4C' },
  arabic: { label: 'iso-8859-6', designation: '2D47' },
  greek: { label: 'iso-8859-7', designation: '2D46' },
  hebrew: { label: 'iso-8859-8', designation: '2D48' },
  latin5: { label: 'windows-1254', designation: '2D4D' },
} as const;
type SingleByteEncoding = keyof typeof SINGLE_BYTE;

/** The character set a message was read in (services/api/inbound/oru.ts decodeMessage): hex data is read in it too. */
export type Hl7TextEncoding = 'utf8' | 'latin1' | SingleByteEncoding;

const DECODERS = new Map<Hl7TextEncoding, InstanceType<typeof TextDecoder>>(
  Object.entries(SINGLE_BYTE).map(([encoding, { label }]) => [encoding as SingleByteEncoding, new TextDecoder(label, { fatal: true })]),
);

/** A byte the character set leaves undefined (decodeText): the text cannot be read as written. */
export class Hl7UndefinedByte extends Error {
  override name = 'Hl7UndefinedByte';
  constructor() {
    super('a byte that the character set does not define');
  }
}

/**
 * Bytes -> text in a single-byte character set (every encoding but utf8): 8859/1 as windows-1252 (decodeLatin1),
 * the others with the runtime's table. Throws Hl7UndefinedByte for a byte the set does not define.
 */
export function decodeSingleByte(bytes: Uint8Array, encoding: Exclude<Hl7TextEncoding, 'utf8'>): string {
  if (encoding === 'latin1') return decodeLatin1(bytes);
  try {
    return DECODERS.get(encoding)!.decode(bytes);
  } catch {
    throw new Hl7UndefinedByte();
  }
}

/** Each single-byte set's bytes by the character decodeSingleByte reads them as (built on first use). */
const BYTES = new Map<Hl7TextEncoding, Map<string, number>>();

/** The byte decodeSingleByte reads as this character in that set, or undefined (the writer then substitutes). */
export function singleByteOf(ch: string, encoding: Exclude<Hl7TextEncoding, 'utf8'>): number | undefined {
  if (encoding === 'latin1') return latin1Byte(ch);
  let table = BYTES.get(encoding);
  if (!table) {
    table = new Map();
    for (let b = 0; b < 256; b += 1) {
      try {
        table.set(DECODERS.get(encoding)!.decode(Uint8Array.of(b)), b);
      } catch {
        // undefined in this set: no character is written as it
      }
    }
    BYTES.set(encoding, table);
  }
  return table.get(ch);
}

/**
 * A \Cxxyy\ or \Mxxyyzz\ escape (ISO 2022: switch to another character set for the text after it) naming a set
 * other than the one the message is read in: the bytes after it are in a set we did not decode them with, so the
 * text cannot be read as written. Thrown only when the reader says which set it reads (options.encoding).
 */
export class Hl7CharsetSwitch extends Error {
  override name = 'Hl7CharsetSwitch';
  constructor() {
    super('a \\C or \\M escape switches to a character set that is not the one the message is read in');
  }
}

/**
 * ISO 2022 designations (the bytes after ESC, as HL7 writes them in \C..\) of the sets each encoding already is:
 * ASCII (ESC ( B) in all, and the upper half of ISO 8859-1 (ESC - A) or of the ISO 8859 part read (SINGLE_BYTE: ESC
 * - b for 8859-15, ESC - F for 8859-7, ...). Switching to them changes nothing, so the escape is dropped (a UTF-8
 * text holds every ISO 8859-1 character as itself).
 */
function sameSet(encoding: Hl7TextEncoding, designation: string): boolean {
  if (designation === '2842') return true;
  if (encoding === 'utf8' || encoding === 'latin1') return designation === '2D41';
  return designation === SINGLE_BYTE[encoding].designation;
}
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * windows-1252's characters for the bytes 0x80-0x9F, in order ('' where it has none). Written out because Node
 * 20's TextDecoder('windows-1252') decodes those bytes as ISO 8859-1 does, to C1 control codes.
 */
const CP1252_HIGH = [
  '\u20AC', '', '\u201A', '\u0192', '\u201E', '\u2026', '\u2020', '\u2021', '\u02C6', '\u2030', '\u0160', '\u2039', '\u0152', '', '\u017D', '',
  '', '\u2018', '\u2019', '\u201C', '\u201D', '\u2022', '\u2013', '\u2014', '\u02DC', '\u2122', '\u0161', '\u203A', '\u0153', '', '\u017E', '\u0178',
];

/**
 * Bytes of a message that says 8859/1 -> text, read as windows-1252, its superset (as WHATWG reads the label
 * 'iso-8859-1'): 0x80-0x9F are C1 control codes in ISO 8859-1, which no report holds, and are what a Windows RIS
 * that says 8859/1 writes for the quotes and dashes a word processor typed (0x93 “, 0x96 –). Read as C1 they were
 * stored as invisible controls ("2–3 mm" shown as "23 mm"). The five bytes windows-1252 leaves undefined stay C1.
 */
export function decodeLatin1(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 8192) {
    const chunk = bytes.subarray(i, i + 8192);
    out += String.fromCharCode(...chunk);
  }
  return c1AsWindows1252(out);
}

/**
 * C1 code points (U+0080-U+009F) -> the windows-1252 characters of those bytes. Report text never means a C1
 * control; it holds them when windows-1252 was read as ISO 8859-1 on the way (an engine that re-encodes to UTF-8,
 * a RIS that says 8859/15), and "2\u00963 mm" then reads "23 mm". The five bytes windows-1252 leaves undefined stay.
 */
export function c1AsWindows1252(text: string): string {
  return text.replace(/[\u0080-\u009F]/g, (c) => CP1252_HIGH[c.charCodeAt(0) - 0x80] || c);
}

/** The byte decodeLatin1 reads as this character, or undefined (the writer then substitutes). */
export function latin1Byte(ch: string): number | undefined {
  const code = ch.codePointAt(0)!;
  if (code < 0x80 || (code >= 0xa0 && code <= 0xff)) return code;
  // A C1 code is a byte only where windows-1252 has no character (the decoder left it as it was).
  if (code < 0xa0) return CP1252_HIGH[code - 0x80] === '' ? code : undefined;
  const i = CP1252_HIGH.indexOf(ch);
  return i >= 0 ? 0x80 + i : undefined;
}

/**
 * Hex data -> text in the message's character set; bytes that are no UTF-8 in a UTF-8 message read as ISO 8859-1.
 * Undefined when a byte is one the set does not define (the escape is then kept as written).
 */
function hexText(hex: string, encoding: Hl7TextEncoding | undefined): string | undefined {
  const bytes = Buffer.from(hex, 'hex');
  let text: string;
  if (encoding === 'utf8') {
    try {
      text = UTF8.decode(bytes);
    } catch {
      text = decodeLatin1(bytes);
    }
  } else {
    try {
      text = decodeSingleByte(bytes, encoding ?? 'latin1');
    } catch (err) {
      if (err instanceof Hl7UndefinedByte) return undefined;
      throw err;
    }
  }
  // A line break sent as hex (\X0D\, \X0D0A\) reads as \n, as every other line break of the text does.
  return text.replace(/\r\n?/g, '\n');
}

/**
 * Field value -> text. Delimiter escapes and \.br\ (line break) are decoded; \Xhh..\ hexadecimal data too, a run
 * of them together (one character may be split over two), in options.encoding, the message's character set (ISO
 * 8859-1 when not given, the usual reading); hex data holding a byte the set does not define is kept as written.
 * Highlighting (\H\ \N\) and the formatting commands carry no words:
 * \.sp\ and \.ce\ (which end the line) are a line break, \.sk<n>\ (skip n spaces) is n spaces, so the words on
 * either side stay apart, and \.in\ \.ti\ \.fi\ \.nf\ are dropped. A \C..\ / \M..\ character set switch is dropped
 * when it names the set the text is already in, and throws Hl7CharsetSwitch otherwise (given options.encoding). An
 * unknown or unterminated escape is kept as written, so nothing a radiologist typed is lost.
 */
export function hl7Unescape(value: string, options: { encoding?: Hl7TextEncoding } = {}): string {
  const { encoding } = options;
  return value.replace(/((?:\\X(?:[0-9A-Fa-f]{2})+\\)+)|\\([^\\]{1,32})\\/g, (whole, hex: string | undefined, body: string) => {
    if (hex) return hexText(hex.replace(/[\\X]/g, ''), encoding) ?? whole;
    switch (body) {
      case 'F': return '|';
      case 'S': return '^';
      case 'T': return '&';
      case 'R': return '~';
      case 'E': return '\\';
      case 'H': case 'N': return '';
      case '.br': return '\n';
    }
    if (/^\.(sp|ce)[+-]?\d*$/.test(body)) return '\n';
    if (/^\.sk[+-]?\d*$/.test(body)) return ' '.repeat(Math.min(80, Math.max(1, Math.abs(Number(body.slice(3)) || 1))));
    if (/^\.(in|ti|fi|nf)[+-]?\d*$/.test(body)) return '';
    if (encoding && (/^C[0-9A-Fa-f]{4}$/.test(body) || /^M[0-9A-Fa-f]{4}([0-9A-Fa-f]{2})?$/.test(body))) {
      if (body[0] === 'C' && sameSet(encoding, body.slice(1).toUpperCase())) return '';
      throw new Hl7CharsetSwitch();
    }
    return whole;
  });
}

/**
 * One segment's text from already-escaped field values keyed by field number ("^" separates components).
 * For MSH, field 1 is the field separator itself, so numbering starts after "MSH|^~\\&".
 */
export function hl7Segment(name: string, fields: Record<number, string>): string {
  const first = name === 'MSH' ? 3 : 1;
  const max = Math.max(first - 1, ...Object.keys(fields).map(Number));
  const values: string[] = [name === 'MSH' ? 'MSH|^~\\&' : name];
  for (let i = first; i <= max; i++) values.push(fields[i] ?? '');
  return values.join('|');
}
