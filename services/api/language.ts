// Free text in the API through the bundle's language knowledge: how well the model knows a query or search text
// (shared/language/check.ts, with the text's vector for the closeness check), and the one mention threshold the
// report check and report pseudo-labels share.
import { checkText, type TextCheck } from '../../shared/language/check';
import type { BundleLanguage } from '../../shared/language/knowledge';
import { HttpProblem } from './plugins/problems';
import type { EmbedText } from './report-check';

/** Checks texts; embeds them only when the bundle has a sentence bank to compare with. */
export async function checkTexts(language: BundleLanguage, embed: EmbedText, texts: string[]): Promise<TextCheck[]> {
  const vectors = language.bank && texts.length > 0 ? await embed(texts) : texts.map(() => null);
  return texts.map((t, i) => checkText(t, language, vectors[i]));
}

/** A 422 naming every field whose text the model cannot use (each with its reasons); nothing when it can use all. */
export function assertUsable(checked: { field: string; check: TextCheck }[]): void {
  const bad = checked
    .filter(({ check }) => check.verdict === 'refused')
    .map(({ field, check }) => ({ field, message: `is not text the model can use: ${check.reasons.join('; ')}` }));
  if (bad.length > 0) throw HttpProblem.forFields(422, bad);
}

/** Reasons as the end of one sentence: joined with "; ", and a full stop unless the last already ends one ("...?"). */
function closing(reasons: string[]): string {
  const text = reasons.join('; ');
  return /[.?!]$/.test(text) ? text : `${text}.`;
}

/** The sentence search and ad-hoc scoring show for a text the model may misread; null for any other verdict. */
export function misreadWarning(check: TextCheck): string | null {
  return check.verdict === 'warning' ? `The model may misread this text: ${closing(check.reasons)}` : null;
}

/** What a search for text the model cannot use says instead of a list. */
export function noResultsWarning(check: TextCheck): string {
  return `No results: the model cannot use this text, because ${closing(check.reasons)}`;
}

export const DEFAULT_MENTION_SIMILARITY = 0.6;

/** API_REPORT_MENTION_SIMILARITY when the site set it, else the bundle's measured value, else 0.6. */
export function mentionSimilarity(setting: number | undefined, language: Pick<BundleLanguage, 'mentionSimilarity'> | undefined): number {
  return setting ?? language?.mentionSimilarity ?? DEFAULT_MENTION_SIMILARITY;
}
