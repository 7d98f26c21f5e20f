import { controlCharacterIn, freeTextProblems, hasText, sameSentence } from './free-text';
import { hasControlCharacters } from './inbound/oru';

describe('free text rules', () => {
  it('refuses C0 controls and DEL, naming the first; lets tabs, line breaks and C1 code points through', () => {
    expect(controlCharacterIn('hydro\u0000cephalus')).toBe('U+0000 at character 6');
    expect(controlCharacterIn('a\u007fb')).toBe('U+007F at character 2');
    expect(controlCharacterIn('Findings:\tnone.\r\nImpression: normal.')).toBeNull();
    // Windows-1252 read as Latin-1: a RIS's curly apostrophe arrives as U+0092.
    expect(controlCharacterIn('patient\u0092s scan')).toBeNull();
  });

  it('an identifier refuses tabs and line breaks too, one rule with free text', () => {
    expect(controlCharacterIn('ACC\t1', { identifier: true })).toBe('U+0009 at character 4');
    expect(hasControlCharacters('ACC\n1')).toBe(true);
    expect(hasControlCharacters('ACC-1')).toBe(false);
    // The Unicode line breaks too (next line, line and paragraph separators): free text keeps them, an identifier not.
    expect(controlCharacterIn('ACC\u20281', { identifier: true })).toBe('U+2028 at character 4');
    expect(hasControlCharacters('ACC\u20291')).toBe(true);
    expect(hasControlCharacters('ACC\u00851')).toBe(true);
    expect(controlCharacterIn('line one\u2028line two')).toBeNull();
  });

  it('two texts are one sentence when they differ only in case, runs of white space and compatibility forms', () => {
    expect(sameSentence('Obstructive  hydrocephalus', ' obstructive Hydrocephalus ')).toBe(true);
    expect(sameSentence('ｈｙｄｒｏｃｅｐｈａｌｕｓ', 'hydrocephalus')).toBe(true);
    expect(sameSentence('hydrocephalus', 'no hydrocephalus')).toBe(false);
  });

  it('a report needs a letter or a digit after NFKC', () => {
    expect(hasText('\u200b\u200b')).toBe(false);
    expect(hasText('...!!!')).toBe(false);
    expect(hasText('\uff48\uff59\uff44\uff52\uff4f')).toBe(true);
    expect(freeTextProblems([{ field: 'body/text', value: '  ', needsText: true }])).toEqual([{ field: 'body/text', message: expect.stringMatching(/^has no text/) }]);
  });
});
