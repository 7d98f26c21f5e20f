// How well the model knows a text: the refusal and warning rules of checkText, on a small fixture vocabulary and
// sentence bank (not a trained model: what is tested is the rule, whatever words a bundle happens to know), and
// the reading of a tokenizer's vocabulary and a sentence-bank file.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { bankCloseness, checkText, type LanguageKnowledge, type SentenceBank } from './check';
import { parseSentenceBank, tokenizerWords } from './knowledge';
import { editDistance, vocabularyOf, wordsOf } from './vocabulary';

const WORDS = 'acute ischaemic infarction infarct haemorrhage intracranial haematoma thalamus left right hydrocephalus ventricles dilated mass lesion oedema normal brain restricted diffusion small vessel disease stroke bleed';
const knowledge: LanguageKnowledge = { vocabulary: vocabularyOf(WORDS.split(' '), 'known-words'), bank: null, offTopicBelow: null };

describe('words and spellings', () => {
  test('words are read as the BERT normaliser reads them: no accents, lower case, letters only', () => {
    expect(wordsOf('Hémorragie, T2-FLAIR 3 cm \u{1F9E0}!')).toEqual(['hemorragie', 't', 'flair', 'cm']);
  });

  test('a misspelling within one edit (two for long words) of a known word with the same initial is suggested', () => {
    expect(editDistance('haemorrhge', 'haemorrhage', 2)).toBe(1);
    expect(editDistance('thalmaus', 'thalamus', 2)).toBe(1);
    expect(editDistance('hydrocefalis', 'hydrocephalus', 2)).toBe(3);
    expect(knowledge.vocabulary.suggest('haemorrhge')).toBe('haemorrhage');
    expect(knowledge.vocabulary.suggest('infract')).toBe('infarct');
    expect(knowledge.vocabulary.suggest('qwerty')).toBeNull();
    expect(knowledge.vocabulary.suggest('mas')).toBeNull();
  });
});

describe('checkText', () => {
  test.each(['the weather is nice', 'asdfgh qwerty', '\u{1F9E0}\u{1F9E0}\u{1F9E0}', '12 34 !!', 'there is no'])('"%s" is refused', (text) => {
    const c = checkText(text, knowledge);
    expect(c.verdict).toBe('refused');
    expect(c.reasons.length).toBeGreaterThan(0);
  });

  test.each(['the patient', 'left', 'MRI brain', 'axial T2', 'IMPRESSION:', 'Left frontal lobe.', 'history of previous imaging', '3rd ventricle', 'left side', 'post gad', 'follow up', 'spinal cord', 'frontal horns', 'MRA', 'CSF'])('"%s" names no finding and is refused', (text) => {
    const c = checkText(text, knowledge);
    expect(c.verdict).toBe('refused');
    expect(c.reasons[0]).toMatch(/^it names no finding: .* say what to look for/);
  });

  test.each(['left frontal mass', 'enlarged ventricles', 'Normal MRI brain.', 'small vessel disease', 'restricted diffusion in the left thalamus',
    'intracranial air', 'extra-axial fluid', 'fluid in the mastoid air cells', 'FLAIR signal in the left hippocampus', 'T2 signal in the pons',
    'susceptibility in the basal ganglia', 'no flow in the left transverse sinus'])('"%s" names a finding and is not refused for it', (text) => {
    expect(checkText(text, knowledge).reasons.join(' ')).not.toContain('names no finding');
  });

  test('the reasons say what is wrong', () => {
    expect(checkText('the weather is nice', knowledge)).toMatchObject({ unknownWords: ['weather', 'nice'], knownShare: 0, reasons: [expect.stringContaining('"weather", "nice"')] });
    expect(checkText('\u{1F9E0}\u{1F9E0}', knowledge).reasons[0]).toContain('no words');
    expect(checkText('there is no', knowledge).reasons[0]).toContain('only function words');
  });

  test('an unknown word is said to be read in pieces, not skipped (the tokenizer spells it, the vector moves)', () => {
    const c = checkText('acute extradural haematoma', knowledge);
    expect(c).toMatchObject({ verdict: 'warning', unknownWords: ['extradural'] });
    expect(c.reasons).toEqual(['the model does not know "extradural": it reads it in pieces, which can change what it takes the text to mean']);
    expect(c.reasons.join(' ')).not.toContain('without');
  });

  test('a misspelt medical word is a warning with a suggestion, not a refusal', () => {
    const c = checkText('Acute haemorrhge in the left thalamus.', knowledge);
    expect(c).toMatchObject({ verdict: 'warning', misspelt: [{ word: 'haemorrhge', suggestion: 'haemorrhage' }], unknownWords: [], knownShare: 1 });
    expect(c.reasons).toEqual(['"haemorrhge" is not a word the model knows: did you mean "haemorrhage"?']);
    expect(checkText('haemorrhge', knowledge).verdict).toBe('warning');
  });

  test('an unknown word among known ones is a warning; text of known words is ok', () => {
    expect(checkText('acute infarct in the pons', knowledge)).toMatchObject({ verdict: 'warning', unknownWords: ['pons'] });
    expect(checkText('Acute ischaemic infarction.', knowledge)).toMatchObject({ verdict: 'ok', reasons: [], words: 3 });
  });

  test('with a sentence bank, text far from all of it is off-topic even when its words are known', () => {
    const bank: SentenceBank = { count: 2, dim: 3, vectors: Float32Array.from([1, 0, 0, 0, 1, 0]) };
    const withBank: LanguageKnowledge = { ...knowledge, bank, offTopicBelow: 0.5 };
    expect(bankCloseness(bank, Float32Array.from([0.6, 0.8, 0]))).toBeCloseTo(0.8, 6);
    expect(checkText('thalamus haematoma', withBank, Float32Array.from([0, 0, 1]))).toMatchObject({ verdict: 'refused', closeness: 0, reasons: [expect.stringContaining('not close to anything')] });
    expect(checkText('acute infarct', withBank, Float32Array.from([0.9, 0.1, 0]))).toMatchObject({ verdict: 'ok', closeness: expect.closeTo(0.994, 3) });
  });

  test('a refused text still says "did you mean" for a misspelt word (a lone misspelling can read as off-topic)', () => {
    const bank: SentenceBank = { count: 1, dim: 3, vectors: Float32Array.from([1, 0, 0]) };
    const c = checkText('hydrocephalis', { ...knowledge, bank, offTopicBelow: 0.5 }, Float32Array.from([0, 1, 0]));
    expect(c.verdict).toBe('refused');
    expect(c.reasons).toEqual([expect.stringContaining('not close to anything'), '"hydrocephalis" is not a word the model knows: did you mean "hydrocephalus"?']);
  });

  test('an off-topic refusal names the words the model does not know', () => {
    const bank: SentenceBank = { count: 1, dim: 3, vectors: Float32Array.from([1, 0, 0]) };
    const c = checkText('subdural haematoma', { ...knowledge, bank, offTopicBelow: 0.5 }, Float32Array.from([0, 1, 0]));
    expect(c).toMatchObject({ verdict: 'refused', unknownWords: ['subdural'] });
    expect(c.reasons).toEqual([expect.stringMatching(/^it is not close to anything in the model's language \(.*\); it does not know "subdural"$/)]);
  });

  test('a word with a non-Latin letter that looks Latin is named as such, not "did you mean" the same-looking word', () => {
    const c = checkText('hydr\u043Ecephalus', knowledge);
    expect(c.misspelt).toEqual([{ word: 'hydr\u043Ecephalus', suggestion: 'hydrocephalus' }]);
    expect(c.reasons).toEqual(['"hydr\u043Ecephalus" contains the Cyrillic letter "\u043E" (U+043E), which looks like a Latin one: retype the word in Latin letters']);
    expect(c.reasons.join(' ')).not.toContain('did you mean');
    // Greek omicron too, and an unknown word with one.
    expect(checkText('acute infarct \u03BFedema', knowledge).reasons.join(' ')).toContain('the Greek letter "\u03BF" (U+03BF)');
  });

  test('fullwidth and other compatibility forms read as the letters they stand for (NFKC)', () => {
    expect(wordsOf('\uFF48\uFF59\uFF44\uFF52\uFF4F\uFF43\uFF45\uFF50\uFF48\uFF41\uFF4C\uFF55\uFF53')).toEqual(['hydrocephalus']);
    expect(checkText('\uFF48\uFF59\uFF44\uFF52\uFF4F\uFF43\uFF45\uFF50\uFF48\uFF41\uFF4C\uFF55\uFF53', knowledge)).toMatchObject({ verdict: 'ok', words: 1 });
  });
});

describe('reading a bundle', () => {
  test('a tokenizer\'s whole-word entries are its known words; sub-word pieces and special tokens are not', () => {
    const json = { model: { type: 'WordPiece', vocab: { '[PAD]': 0, '[UNK]': 1, acute: 2, '##ute': 3, infarct: 4, '.': 5, '12': 6 } } };
    expect(tokenizerWords(json)).toEqual(['acute', 'infarct']);
    // The committed bundle's tokenizer.json reads the same way (its words are whatever that bundle was trained on).
    const committed = JSON.parse(readFileSync(path.resolve(__dirname, '../../onnx-models/tokenizer.json'), 'utf8'));
    const words = tokenizerWords(committed);
    expect(words.length).toBeGreaterThan(0);
    expect(words.every((w) => /^\p{L}+$/u.test(w))).toBe(true);
  });

  test('a sentence bank file is float32 [count, dim], read as unit vectors; a wrong size is refused', () => {
    const buf = Buffer.alloc(2 * 3 * 4);
    [3, 0, 4, 0, 2, 0].forEach((x, i) => buf.writeFloatLE(x, i * 4));
    const bank = parseSentenceBank(buf, 2, 3);
    expect([...bank.vectors].map((x) => Number(x.toFixed(3)))).toEqual([0.6, 0, 0.8, 0, 1, 0]);
    expect(() => parseSentenceBank(buf, 3, 3)).toThrow(/36 bytes|need 36/);
  });
});
