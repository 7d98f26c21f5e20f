// The words a text encoder knows, and the spelling it most likely meant for one it does not. Words are read the way
// the bundle's BERT-style tokenizer normalises text (Unicode NFKD: compatibility forms such as fullwidth letters
// folded, as the text encoder folds them with NFKC before tokenising; accents and other marks removed, lower case,
// runs of letters), so "Hémorragie", "hemorragie" and "ｈｅｍｏｒｒａｇｉｅ" are the same word and digits and
// punctuation are no words.

/** The words of a text, normalised as the tokenizer does; digits, punctuation, symbols and emoji are not words. */
export function wordsOf(text: string): string[] {
  return text.normalize('NFKD').replace(/\p{M}+/gu, '').toLowerCase().match(/\p{L}+/gu) ?? [];
}

export interface Vocabulary {
  /** known-words: the bundle's list of every word of its training text; tokenizer: whole-word entries of its vocabulary. */
  source: 'known-words' | 'tokenizer';
  size: number;
  has(word: string): boolean;
  /** The known word an unknown one is most likely a misspelling of (same first letter, one or two edits), or null. */
  suggest(word: string): string | null;
}

/**
 * Optimal-string-alignment distance (Levenshtein plus adjacent transpositions), giving up above `max`: the usual
 * typing errors (a dropped, doubled, swapped or wrong letter) are one edit each.
 */
export function editDistance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev2: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2] + 1);
      cur.push(d);
      rowMin = Math.min(rowMin, d);
    }
    if (rowMin > max) return max + 1;
    prev2 = prev;
    prev = cur;
  }
  return prev[b.length];
}

/** Edits allowed before a word is taken for another: none under 4 letters (too many short words are one edit apart). */
function allowedEdits(word: string): number {
  if (word.length < 4) return 0;
  return word.length < 8 ? 1 : 2;
}

export function vocabularyOf(words: Iterable<string>, source: Vocabulary['source']): Vocabulary {
  const known = new Set<string>();
  for (const w of words) for (const n of wordsOf(w)) known.add(n);
  // Candidates for a suggestion by first letter: a misspelling rarely changes it, and it keeps the search small.
  const byInitial = new Map<string, string[]>();
  for (const w of known) {
    if (w.length < 4) continue;
    const list = byInitial.get(w[0]) ?? [];
    list.push(w);
    byInitial.set(w[0], list);
  }
  for (const list of byInitial.values()) list.sort();
  return {
    source,
    size: known.size,
    has: (word) => known.has(word),
    suggest(word) {
      const max = allowedEdits(word);
      if (max === 0) return null;
      let best: string | null = null;
      let bestD = max + 1;
      for (const w of byInitial.get(word[0]) ?? []) {
        const d = editDistance(word, w, max);
        if (d < bestD) [best, bestD] = [w, d];
      }
      return bestD <= max ? best : null;
    },
  };
}
