// Text values of a data set whose VR depends on Specific Character Set (0008,0005): SH, LO, ST, LT, UT, PN, UC
// (PS3.5 6.1.2.3). The defined terms are mapped to decoders by dcmjs's own table (the one its reader uses), so a
// value reads here as dcmjs reads it: ISO_IR 192 as UTF-8, ISO_IR 100 (and no Specific Character Set: the default
// repertoire, ASCII) as Latin-1, ISO_IR 101/109/110/144/127/126/138/148/166, GB18030, GBK, ISO 2022 IR 87/159
// (Japanese, whose escape sequences the ISO-2022-JP decoder reads) and ISO 2022 IR 149 (Korean).
import { TextDecoder } from 'node:util';
import { dcmjs } from './dcmjs';

const LATIN1 = new Set(['latin1', 'iso-8859-1']);
const decoders = new Map<string, TextDecoder | null>();

function decoderFor(label: string): TextDecoder | null {
  if (!decoders.has(label)) {
    let decoder: TextDecoder | null = null;
    try {
      decoder = new TextDecoder(label);
    } catch {
      // A label this runtime's ICU does not know: read as Latin-1, as before.
    }
    decoders.set(label, decoder);
  }
  return decoders.get(label) ?? null;
}

/**
 * The TextDecoder label for a Specific Character Set value (backslash-separated terms as stored), or 'latin1' for
 * none, an unknown term, or only the default repertoire. With several terms (ISO 2022 code extensions) the first
 * that is not the default repertoire decides: the value's non-ASCII bytes are in that set.
 */
export function charsetLabel(specificCharacterSet: string | undefined): string {
  const mapping = dcmjs.constants.encodingMapping;
  const terms = (specificCharacterSet ?? '').split('\\').map((t) => t.trim().replace(/[_ ]/g, '-').toLowerCase());
  const labels = terms.map((t) => mapping[t]).filter((l): l is string => l !== undefined);
  return labels.find((l) => !LATIN1.has(l)) ?? 'latin1';
}

/** A text value's bytes as characters, per the data set's Specific Character Set (undefined: the default). */
export function decodeText(bytes: Buffer, specificCharacterSet: string | undefined): string {
  const label = charsetLabel(specificCharacterSet);
  // Buffer's Latin-1 is ISO 8859-1 itself (TextDecoder's "latin1" is windows-1252).
  if (LATIN1.has(label)) return bytes.toString('latin1');
  if (label === 'utf-8') return bytes.toString('utf8');
  return decoderFor(label)?.decode(bytes) ?? bytes.toString('latin1');
}
