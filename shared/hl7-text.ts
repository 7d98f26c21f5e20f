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
 * Field value -> text. Delimiter escapes and \.br\ (line break) are decoded, \Xhh..\ hexadecimal data too (as
 * ISO 8859-1 code points, the usual reading; CR and CR LF as \n); highlighting (\H\ \N\) and formatting commands other than \.br\
 * (\.sp\ \.in\ \.ti\ \.sk\ \.ce\ \.fi\ \.nf\) carry no words and are dropped. An unknown or unterminated escape is
 * kept as written, so nothing a radiologist typed is lost.
 */
export function hl7Unescape(value: string): string {
  return value.replace(/\\([^\\]{1,32})\\/g, (whole, body: string) => {
    switch (body) {
      case 'F': return '|';
      case 'S': return '^';
      case 'T': return '&';
      case 'R': return '~';
      case 'E': return '\\';
      case 'H': case 'N': return '';
      case '.br': return '\n';
    }
    // A line break sent as hex (\X0D\, \X0D0A\) reads as \n, as every other line break of the text does.
    if (/^X([0-9A-Fa-f]{2})+$/.test(body)) return body.slice(1).replace(/../g, (h) => String.fromCharCode(parseInt(h, 16))).replace(/\r\n?/g, '\n');
    if (/^\.(sp|in|ti|sk|ce|fi|nf)[+-]?\d*$/.test(body)) return body.startsWith('.sp') ? '\n' : '';
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
