// How well the text encoder knows a piece of free text (a triage query, a search): the words it does not know, the
// ones that look misspelt, and how close the sentence is to anything in the model's language (best cosine to the
// bundle's sentence bank). One pure function for the API (a query is refused with 422, a search answered with a
// warning) and the evaluation. The rule is stated in docs/api.md ("How well the model knows a text").
import { cosine } from '../models/scoring';
import contextWordsJson from './context-words.json';
import { wordsOf, type Vocabulary } from './vocabulary';

/** Unit vectors of the distinct sentences of the model's training text, float32 [count, dim]. */
export interface SentenceBank {
  count: number;
  dim: number;
  vectors: Float32Array;
}

export interface LanguageKnowledge {
  vocabulary: Vocabulary;
  /** Absent when the bundle has no language block (then the closeness check is skipped). */
  bank: SentenceBank | null;
  /** A text whose best cosine to the bank is below this is off-topic (manifest.language.offTopicBelow). */
  offTopicBelow: number | null;
}

export type Verdict = 'ok' | 'warning' | 'refused';

export interface TextCheck {
  verdict: Verdict;
  /** Why it is refused or warned about, in words a user can act on; empty when ok. */
  reasons: string[];
  /** Content words read (function words such as "the", "is", "no" are not counted). */
  words: number;
  /** Content words the model does not know and that look like no word it knows. */
  unknownWords: string[];
  /** Unknown content words that look like a known word misspelt. */
  misspelt: { word: string; suggestion: string }[];
  /** (known + misspelt) / content words; 0 when there is no content word. */
  knownShare: number;
  /** Best cosine between the text's vector and the sentence bank; null when the bundle has no bank. */
  closeness: number | null;
  offTopicBelow: number | null;
  vocabulary: Vocabulary['source'];
}

/** At least this share of a text's content words must be known (or known words misspelt) for it to be used. */
export const MIN_KNOWN_SHARE = 0.5;

/** Function words: never counted for or against a text (they are in every vocabulary and say nothing of its topic). */
const FUNCTION_WORDS = new Set(
  ('a an the this that these those there here it its is are was were be been being has have had do does did of in on at to '
    + 'into onto from by with within without for as or and but nor if then than so such no not none any some all both each '
    + 'which who whom whose what when where why how very more most less least also may might can could would should will '
    + 'shall i we you he she they them his her their our your my me us neither nor')
    .split(/\s+/),
);

/**
 * Words that say where, how or which part of a report but name no finding (context-words.json, reviewed as data):
 * a text made only of these and function words says nothing of what to look for.
 */
export const CONTEXT_WORDS: ReadonlySet<string> = new Set(
  Object.entries(contextWordsJson).flatMap(([key, words]) => (key === 'about' ? [] : (words as string[]))),
);

/** Best cosine between `v` and any sentence of the bank (brute force: a bank of tens of thousands is milliseconds). */
export function bankCloseness(bank: SentenceBank, v: Float32Array): number {
  if (v.length !== bank.dim) throw new Error(`sentence bank vectors have ${bank.dim} dimensions, the text vector ${v.length}`);
  let best = -1;
  for (let i = 0; i < bank.count; i++) {
    const s = cosine(bank.vectors.subarray(i * bank.dim, (i + 1) * bank.dim), v);
    if (s > best) best = s;
  }
  return best;
}

/** A letter of another script than Latin (Cyrillic "о", Greek "ο", ...), which can look like a Latin one. */
const NON_LATIN = /[^\p{Script=Latin}]/u;
const scriptOf = (c: string): string => {
  for (const script of ['Cyrillic', 'Greek', 'Armenian', 'Cherokee']) if (new RegExp(`\\p{Script=${script}}`, 'u').test(c)) return script;
  return 'non-Latin';
};
/** Why a word the model does not know holds a non-Latin letter among Latin ones, or null. */
function mixedScript(word: string): string | null {
  if (!/\p{Script=Latin}/u.test(word)) return null;
  const c = [...word].find((ch) => NON_LATIN.test(ch));
  if (!c) return null;
  const code = c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
  return `"${word}" contains the ${scriptOf(c)} letter "${c}" (U+${code}), which looks like a Latin one: retype the word in Latin letters`;
}

const list = (words: string[]) => words.slice(0, 8).map((w) => `"${w}"`).join(', ') + (words.length > 8 ? `, and ${words.length - 8} more` : '');

/**
 * Checks a text against what the model knows. Refused: no word at all (emoji, digits, punctuation), only function
 * words, only words that name no finding (sides, anatomy, report sections, sequences: "the patient", "left frontal
 * lobe", "axial T2"), fewer than half of its content words known (a misspelling of a known word counts as known), or, when the
 * bundle has a sentence bank, a best cosine to it below offTopicBelow. Warning: any unknown or misspelt word.
 * `vector` is the text's embedding (needed for the closeness check only).
 */
export function checkText(text: string, knowledge: LanguageKnowledge, vector?: Float32Array | null): TextCheck {
  const all = wordsOf(text);
  const content = all.filter((w) => !FUNCTION_WORDS.has(w));
  const unknownWords: string[] = [];
  const misspelt: { word: string; suggestion: string }[] = [];
  let known = 0;
  for (const w of new Set(content)) {
    if (knowledge.vocabulary.has(w)) {
      known += 1;
      continue;
    }
    const suggestion = knowledge.vocabulary.suggest(w);
    if (suggestion) misspelt.push({ word: w, suggestion });
    else unknownWords.push(w);
  }
  const distinct = new Set(content).size;
  const knownShare = distinct === 0 ? 0 : (known + misspelt.length) / distinct;
  const closeness = knowledge.bank && vector ? bankCloseness(knowledge.bank, vector) : null;

  const mixed = new Map<string, string>();
  for (const w of [...unknownWords, ...misspelt.map((m) => m.word)]) {
    const why = mixedScript(w);
    if (why) mixed.set(w, why);
  }

  const refused: string[] = [];
  const warnings: string[] = [];
  if (all.length === 0) refused.push('it has no words the model could read (only symbols, digits or emoji)');
  else if (distinct === 0) refused.push('it has only function words ("the", "is", "no", ...): nothing says what finding it is about');
  else if (content.every((w) => CONTEXT_WORDS.has(w))) {
    refused.push(`it names no finding: ${list([...new Set(content)])} only say${distinct === 1 ? 's' : ''} where, how or which part of a report; say what to look for (e.g. "acute infarct", "hydrocephalus")`);
  } else if (knownShare < MIN_KNOWN_SHARE) refused.push(`most of its words are unknown to the model: ${list(unknownWords)}`);
  if (closeness !== null && knowledge.offTopicBelow !== null && closeness < knowledge.offTopicBelow) {
    // The words it does not know are usually why (unless the reason above already names them).
    const unknownHere = refused.length === 0 && unknownWords.length > 0 ? `; it does not know ${list(unknownWords)}` : '';
    refused.push(`it is not close to anything in the model's language (best similarity ${closeness.toFixed(2)}, off-topic below ${knowledge.offTopicBelow.toFixed(2)})${unknownHere}`);
  }
  // A word with a non-Latin letter that looks Latin ("hydrоcephalus" with a Cyrillic о) is said as such: a
  // "did you mean" would show the same word as typed.
  const didYouMean = [
    ...misspelt.map((m) => mixed.get(m.word) ?? `"${m.word}" is not a word the model knows: did you mean "${m.suggestion}"?`),
    ...unknownWords.filter((w) => mixed.has(w)).map((w) => mixed.get(w)!),
  ];
  if (refused.length === 0) {
    // The tokenizer spells an unknown word in word pieces: it is read, not skipped, and can move the sentence's
    // meaning far ("intraventricular haemorrhage" is not near "haemorrhage" to the shipped text encoder).
    if (unknownWords.length > 0) warnings.push(`the model does not know ${list(unknownWords)}: it reads ${unknownWords.length === 1 ? 'it' : 'them'} in pieces, which can change what it takes the text to mean`);
    warnings.push(...didYouMean);
  } else {
    // A refused text still gets the fix when there is one (a lone misspelt word reads as off-topic).
    refused.push(...didYouMean);
  }
  return {
    verdict: refused.length > 0 ? 'refused' : warnings.length > 0 ? 'warning' : 'ok',
    reasons: refused.length > 0 ? refused : warnings,
    words: distinct,
    unknownWords,
    misspelt,
    knownShare,
    closeness,
    offTopicBelow: knowledge.offTopicBelow,
    vocabulary: knowledge.vocabulary.source,
  };
}
