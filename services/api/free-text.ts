// Free text a client sends (a query's sentences, a search, an ad-hoc sentence, a draft report, a report to file):
// one rule for what the API refuses before any model reads it, so every route names the field and says why.
//   - control characters: C0 controls other than tab, line feed and carriage return, and DEL (NUL, escape, ...).
//     They are never part of a sentence; they come from a broken client or a binary paste. C1 code points are let
//     through: Windows-1252 text read as Latin-1 (a RIS's curly quote as U+0092) is common and harmless (a report
//     to file, like the HL7 feed's, is stored with them read as windows-1252: shared/hl7-text.ts c1AsWindows1252).
//     Identifiers are stricter (an AccessionNumber refuses tabs and line breaks too, the Unicode ones included).
//   - no text: nothing but white space, punctuation, symbols and invisible characters (zero-width spaces, other
//     format characters) after Unicode NFKC. Reports must have text (there is nothing to store or check otherwise).
import { HttpProblem } from './plugins/problems';

// eslint-disable-next-line no-control-regex -- control characters are exactly what this refuses
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/u;
// The same, with tab, line feed and carriage return refused too, and the Unicode line breaks (next line U+0085, line
// and paragraph separators U+2028 and U+2029): an identifier has none.
// eslint-disable-next-line no-control-regex -- control characters are exactly what this refuses
const CONTROL_IN_IDENTIFIER = /[\u0000-\u001F\u007F\u0085\u2028\u2029]/u;

/**
 * The first control character a text may not hold, as "U+0000 at character 4", or null. Free text may hold tabs and
 * line breaks; an identifier (`identifier: true`, an AccessionNumber) may not.
 */
export function controlCharacterIn(text: string, options: { identifier?: boolean } = {}): string | null {
  const m = (options.identifier ? CONTROL_IN_IDENTIFIER : CONTROL).exec(text);
  if (!m) return null;
  return `U+${m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')} at character ${m.index + 1}`;
}

/**
 * Two texts the text encoder reads as one sentence: equal after NFKC, lower case and each run of white space folded
 * (it tokenises words that way). A query's contrast sentence equal to its text scores 0 on every study.
 */
export function sameSentence(a: string, b: string): boolean {
  const fold = (t: string) => t.normalize('NFKC').toLowerCase().replace(/\s+/g, ' ').trim();
  return fold(a) === fold(b);
}

/** Whether a text has anything to read: a letter or a digit once compatibility forms are folded (NFKC). */
export function hasText(text: string): boolean {
  return /[\p{L}\p{N}]/u.test(text.normalize('NFKC'));
}

export interface FreeTextField {
  /** As in validation errors: "body/text", "querystring/q". */
  field: string;
  value: string | undefined;
  /** Refuse a value with no letter or digit (reports). */
  needsText?: boolean;
}

/** The problems of some free-text fields, one per field at fault. */
export function freeTextProblems(fields: FreeTextField[]): { field: string; message: string }[] {
  const out: { field: string; message: string }[] = [];
  for (const { field, value, needsText } of fields) {
    if (value === undefined) continue;
    const control = controlCharacterIn(value);
    if (control) out.push({ field, message: `holds a control character (${control}): send plain text (tabs and line breaks are allowed)` });
    else if (needsText && !hasText(value)) out.push({ field, message: 'has no text: only white space, punctuation or invisible characters (such as zero-width spaces)' });
  }
  return out;
}

/** 400 naming each free-text field at fault (the same shape as a validation failure). */
export function assertFreeText(fields: FreeTextField[]): void {
  const problems = freeTextProblems(fields);
  if (problems.length > 0) throw HttpProblem.forFields(400, problems);
}
