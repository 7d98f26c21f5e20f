// The context-word list (context-words.json) against the synthetic cohort's lexicon: every way the lexicon names a
// finding, and every phrasing the evaluation asks with, keeps a word outside the list (so no finding name is ever
// refused as "names no finding"), while the lexicon's sides, anatomy, report sections and sequence names are all in
// it (so a text of those alone is refused). The API's own check is tested in check.test.ts.
import { FINDING_TYPES } from '../../tools/synth/types';
import { LEXICON, allNames } from '../../tools/synth/lexicon';
import { CONTEXT_WORDS } from './check';
import { wordsOf } from './vocabulary';

const strings = (v: unknown): string[] =>
  typeof v === 'string' ? [v] : Array.isArray(v) ? v.flatMap(strings) : v && typeof v === 'object' ? Object.values(v).flatMap(strings) : [];
const FUNCTION = new Set(['the', 'of', 'in', 'is', 'are', 'there', 'an', 'a', 'with', 'and', 'to', 'no', 'not', 'for', 's']);

test('every name of every finding, and every evaluation phrasing, has a word that is not context', () => {
  const names = FINDING_TYPES.flatMap((t) => allNames(t).map((n) => ({ t, n })));
  const phrasings = Object.entries(LEXICON.evaluationPhrasings.findings).flatMap(([t, ps]) => ps.map((p) => ({ t, n: p.text })));
  expect(names.length).toBeGreaterThan(100);
  const contextOnly = [...names, ...phrasings].filter(({ n }) => wordsOf(n).every((w) => CONTEXT_WORDS.has(w) || FUNCTION.has(w)));
  expect(contextOnly).toEqual([]);
});

test("the lexicon's sides, anatomy, report sections and sequence names are all context words", () => {
  const words = new Set(strings([LEXICON.sides, LEXICON.anatomy, LEXICON.sections, LEXICON.sequenceNames]).flatMap(wordsOf));
  expect(words.size).toBeGreaterThan(40);
  // "small" (of the anatomy "small vessel") also describes findings ("small infarct"), "fluid" (of "fluid-attenuated")
  // and "susceptibility" (of "susceptibility-weighted") name them ("mastoid fluid", "susceptibility in the basal
  // ganglia"): they stay finding words.
  const alsoFindings = new Set(['small', 'fluid', 'susceptibility']);
  expect([...words].filter((w) => !CONTEXT_WORDS.has(w) && !FUNCTION.has(w) && !alsoFindings.has(w))).toEqual([]);
});

test('the list holds no word that names or describes a finding', () => {
  for (const w of ['mass', 'infarct', 'stroke', 'bleed', 'haemorrhage', 'normal', 'dilated', 'enlarged', 'small', 'acute', 'oedema', 'lesion', 'abnormality', 'restricted', 'disease', 'atrophy', 'air', 'fluid', 'signal', 'flow', 'susceptibility']) {
    expect([w, CONTEXT_WORDS.has(w)]).toEqual([w, false]);
  }
});
