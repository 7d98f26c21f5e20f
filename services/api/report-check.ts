// Report check: compares a radiologist's draft report with what the images suggest. Pure logic over injected
// embeddings; the rule is documented in docs/api.md ("Report check") and must stay in step with it. Sentences and
// their assertions come from shared/language/sentences.ts, the same code the report pseudo-labels use.
import type { TriageQuery } from '../../shared/model-manifest';
import type { FindingScore } from '../../shared/results';
import { plattProbability } from '../../shared/models/calibration';
import { reportSentences, type Assertion } from '../../shared/language/sentences';
import { cosine } from './vectors';

export type EmbedText = (texts: string[]) => Promise<Float32Array[]>;
export type { Assertion };

export const MAX_SENTENCES = 200;
/**
 * A sentence mentions a query's finding only if it is at least this much closer to the query's text than the
 * normal-study sentence is: a generic query that is close to every sentence (and to a normal report) mentions none.
 */
export const MATCH_MARGIN = 0.05;

export interface SentenceCheck {
  index: number;
  text: string;
  assertion: Assertion;
  /** The sentence without its assertion cue words: what is compared with query texts. */
  about: string;
  /** The mentioned query most specific to the sentence (see docs/api.md), or null. */
  matchedQueryId: string | null;
  matchSimilarity: number | null;
  /** How much closer the sentence is to the matched query's text than the normal-study sentence is. */
  matchMargin: number | null;
  /** The sentence scored against the image like a query (minus the query's negativeText similarity). */
  imageScore: number | null;
  threshold: number | null;
  /** null when not checked (absent/uncertain, or no query matched). */
  supported: boolean | null;
}

export interface FindingGap {
  queryId: string;
  text: string;
  priority: FindingScore['priority'];
  similarity: number;
  probability: number | null;
  /** Closest report sentence and its similarity, to show the radiologist why. */
  closestSentence: number | null;
  closestSimilarity: number | null;
}

export interface ReportCheck {
  sentences: SentenceCheck[];
  /** Flagged by the images, no report sentence mentions it. */
  notMentioned: FindingGap[];
  /** Flagged by the images, and the closest mentioning sentence states it is absent. */
  contradicted: FindingGap[];
  /** Report sentences asserting a finding the images do not support (indices into sentences). */
  unsupported: number[];
  mentionSimilarity: number;
}

export interface ReportCheckInput {
  report: string;
  /** Cosine of the study's image vectors with a text vector, combined across sequences as the worker does. */
  image: (text: Float32Array) => number;
  findings: FindingScore[];
  queries: TriageQuery[];
  mentionSimilarity: number;
  /** The bundle's normal-study sentence: the baseline a mention must beat; null: no baseline. */
  normalText: string | null;
  embed: EmbedText;
}

export async function checkReport(input: ReportCheckInput): Promise<ReportCheck> {
  const sentences = reportSentences(input.report, MAX_SENTENCES);
  const flagged = input.findings.filter((f) => f.flagged);
  const texts = new Set<string>(sentences.map((s) => s.about));
  for (const f of flagged) texts.add(f.text);
  for (const q of input.queries) {
    texts.add(q.text);
    if (q.negativeText) texts.add(q.negativeText);
  }
  if (input.normalText) texts.add(input.normalText);
  const list = [...texts];
  const vectors = list.length > 0 ? await input.embed(list) : [];
  const vec = new Map(list.map((t, i) => [t, vectors[i]]));
  const at = (t: string): Float32Array => vec.get(t) as Float32Array;
  const findingByQuery = new Map(input.findings.map((f) => [f.queryId, f]));
  const baseline = new Map<string, number>();
  const base = (findingText: string) => {
    if (!input.normalText) return -Infinity;
    if (!baseline.has(findingText)) baseline.set(findingText, cosine(at(input.normalText), at(findingText)));
    return baseline.get(findingText)!;
  };
  /** Similarity of a sentence to a finding's text, and whether that is a mention (threshold and baseline). */
  const mention = (about: string, findingText: string) => {
    const sim = cosine(at(about), at(findingText));
    const margin = sim - base(findingText);
    return { sim, margin, mentions: sim >= input.mentionSimilarity && margin >= MATCH_MARGIN };
  };

  const checks: SentenceCheck[] = sentences.map(({ text, assertion, about }, index) => {
    let best: { q: TriageQuery; sim: number; margin: number } | null = null;
    for (const q of input.queries) {
      const m = mention(about, q.text);
      if (m.mentions && (!best || m.margin > best.margin)) best = { q, sim: m.sim, margin: m.margin };
    }
    const matched = best?.q ?? null;
    const check: SentenceCheck = {
      index, text, assertion, about,
      matchedQueryId: matched?.id ?? null,
      matchSimilarity: best?.sim ?? null,
      matchMargin: best && Number.isFinite(best.margin) ? best.margin : null,
      imageScore: null, threshold: null, supported: null,
    };
    if (matched && assertion === 'present') {
      const score = input.image(at(about)) - (matched.negativeText ? input.image(at(matched.negativeText)) : 0);
      const finding = findingByQuery.get(matched.id);
      // The threshold the worker judged the finding with (a probability), and the sentence's own probability under
      // the query's calibration: the same "P >= threshold" rule as every flag.
      const threshold = finding?.threshold ?? null;
      const probability = matched.calibration ? plattProbability(matched.calibration, score) : null;
      check.imageScore = score;
      check.threshold = threshold;
      // Supported when the worker flagged that finding, or the sentence itself clears the query's threshold.
      check.supported = finding?.flagged === true || (threshold !== null && probability !== null && probability >= threshold);
    }
    return check;
  });

  const notMentioned: FindingGap[] = [];
  const contradicted: FindingGap[] = [];
  for (const f of flagged) {
    let closest: number | null = null;
    let closestSim: number | null = null;
    const mentioning: SentenceCheck[] = [];
    for (const s of checks) {
      const m = mention(s.about, f.text);
      if (closestSim === null || m.sim > closestSim) [closest, closestSim] = [s.index, m.sim];
      if (m.mentions) mentioning.push(s);
    }
    const gap: FindingGap = {
      queryId: f.queryId, text: f.text, priority: f.priority, similarity: f.similarity, probability: f.probability,
      closestSentence: closest, closestSimilarity: closestSim,
    };
    if (mentioning.length === 0) notMentioned.push(gap);
    else if (mentioning.every((s) => s.assertion === 'absent')) contradicted.push(gap);
  }
  return {
    sentences: checks,
    notMentioned,
    contradicted,
    unsupported: checks.filter((s) => s.supported === false).map((s) => s.index),
    mentionSimilarity: input.mentionSimilarity,
  };
}
