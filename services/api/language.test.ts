// The sentences search and ad-hoc scoring show for a text the model may misread or cannot use: one full stop at the
// end, not a second one after a reason that ends with a question ("did you mean ...?").
import type { TextCheck } from '../../shared/language/check';
import { HttpProblem } from './plugins/problems';
import { assertUsable, misreadWarning, noResultsWarning } from './language';

const check = (verdict: TextCheck['verdict'], reasons: string[]): TextCheck => ({
  verdict, reasons, words: 1, unknownWords: [], misspelt: [], knownShare: 1, closeness: null, offTopicBelow: null, vocabulary: 'known-words',
});

describe('warnings about a text', () => {
  test('a reason ending in a question mark is not followed by a full stop; others get one', () => {
    const misspelt = check('warning', ['"haemorrhge" is not a word the model knows: did you mean "haemorrhage"?']);
    expect(misreadWarning(misspelt)).toBe('The model may misread this text: "haemorrhge" is not a word the model knows: did you mean "haemorrhage"?');
    const unknown = check('warning', ['the model does not know "extradural": it reads it in pieces, which can change what it takes the text to mean']);
    expect(misreadWarning(unknown)).toMatch(/to mean\.$/);
    expect(misreadWarning(check('ok', []))).toBeNull();
  });

  test('a refused search says why, ending once', () => {
    const refused = check('refused', ['it is not close to anything in the model\'s language (best similarity 0.84, off-topic below 0.87)', '"hydrocephalis" is not a word the model knows: did you mean "hydrocephalus"?']);
    expect(noResultsWarning(refused)).toBe('No results: the model cannot use this text, because it is not close to anything in the model\'s language (best similarity 0.84, off-topic below 0.87); "hydrocephalis" is not a word the model knows: did you mean "hydrocephalus"?');
    expect(noResultsWarning(check('refused', ['it has only function words']))).toBe('No results: the model cannot use this text, because it has only function words.');
    let problem: unknown;
    try {
      assertUsable([{ field: 'body/text', check: refused }, { field: 'body/negativeText', check: check('ok', []) }]);
    } catch (err) {
      problem = err;
    }
    expect(problem).toBeInstanceOf(HttpProblem);
    expect((problem as HttpProblem).statusCode).toBe(422);
    expect((problem as HttpProblem).errors?.map((e) => e.field)).toEqual(['body/text']);
    expect(() => assertUsable([{ field: 'body/text', check: check('warning', ['x']) }])).not.toThrow();
  });
});
