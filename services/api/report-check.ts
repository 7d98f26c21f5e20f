// Report check: compares a radiologist's draft report with what the images suggest. Pure logic over injected
// embeddings; the rule is documented in docs/api.md ("Report check") and must stay in step with it. Sentences and
// their assertions come from shared/language/sentences.ts, the same code the report pseudo-labels use.
import type { TriageQuery } from '../../shared/model-manifest';
import type { FindingScore } from '../../shared/results';
import { plattProbability } from '../../shared/models/calibration';
import { readSentence, splitSentences, type Assertion, type ReportSentence } from '../../shared/language/sentences';
import { cosine } from './vectors';

/** Embeds sentences; `user`, for a request's own sentences, counts the run against that user's share (encoder-share.ts). */
export type EmbedText = (texts: string[], user?: string) => Promise<Float32Array[]>;
export type { Assertion };

export const MAX_SENTENCES = 200;
/**
 * A report longer than MAX_SENTENCES is read at its head and its tail: the first MAX_SENTENCES - TAIL_SENTENCES
 * sentences and the last TAIL_SENTENCES, so the impression (at the end of a report) is always read; the answer says
 * which sentences were skipped.
 */
export const TAIL_SENTENCES = 50;
/**
 * A query whose finding can be checked against the images (the study's result has a finding for it with a threshold,
 * and the query has a calibration) takes a sentence's match over one that cannot be checked unless the other is more
 * than this much closer (cosine similarity): a site query created after the study was scored, or
 * not calibrated yet, does not take "Hydrocephalus." away from the hydrocephalus finding the images were judged for.
 */
export const JUDGED_PREFERENCE = 0.05;
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
  /** The sentence scored against the image like a query (minus the query's negativeText similarity): a raw score. */
  imageScore: number | null;
  /**
   * imageScore as a probability under the matched query's calibration: what `threshold` (a probability) is compared
   * with. null when the query has no calibration.
   */
  probability: number | null;
  threshold: number | null;
  /**
   * null when not checked: absent/uncertain, no query matched, or the matched query cannot be judged on this study
   * (no finding for it in the stored result, or no calibration or threshold); `notChecked` says which.
   */
  supported: boolean | null;
  /** Why the sentence was not checked against the images; null when it was. */
  notChecked: string | null;
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
  /** Set when the report had more than MAX_SENTENCES sentences: how many it had and which were not read. */
  truncated: { sentences: number; read: number; skippedFrom: number; skippedTo: number } | null;
  /** Said above the answer: sentences not read, sentences whose matched query cannot be judged on this study. */
  warnings: string[];
}

/** The sentences read: all of them, or the head and the tail of a report over MAX_SENTENCES (see TAIL_SENTENCES). */
export function readSentences(report: string): { sentences: ReportSentence[]; truncated: ReportCheck['truncated'] } {
  // Split once; only the sentences read get their assertion and cue-stripped text.
  const all = splitSentences(report);
  if (all.length <= MAX_SENTENCES) return { sentences: all.map(readSentence), truncated: null };
  const head = MAX_SENTENCES - TAIL_SENTENCES;
  return {
    sentences: [...all.slice(0, head), ...all.slice(all.length - TAIL_SENTENCES)].map(readSentence),
    // 1-based sentence numbers of the report, as a reader counts them.
    truncated: { sentences: all.length, read: MAX_SENTENCES, skippedFrom: head + 1, skippedTo: all.length - TAIL_SENTENCES },
  };
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
  // The reader folds NFKC itself (shared/language/sentences.ts), as the text encoder does for what it embeds.
  const { sentences, truncated } = readSentences(input.report);
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

  /** Why a query's finding cannot be checked against this study's images; null when it can. */
  const unjudgeable = (q: TriageQuery): string | null => {
    const finding = findingByQuery.get(q.id);
    if (!finding) return `the study's result has no finding for "${q.id}" (the query is newer than the study's scoring, or was off then)`;
    if (finding.flagged) return null;
    if (finding.threshold === null) return `"${q.id}" had no threshold when the study was scored (not calibrated), so the images cannot confirm or refute it`;
    if (!q.calibration) return `"${q.id}" has no calibration, so the sentence's image score has no probability to compare with the threshold`;
    return null;
  };

  const checks: SentenceCheck[] = sentences.map(({ text, assertion, about }, index) => {
    const candidates: { q: TriageQuery; sim: number; margin: number; judged: boolean }[] = [];
    for (const q of input.queries) {
      const m = mention(about, q.text);
      if (m.mentions) candidates.push({ q, sim: m.sim, margin: m.margin, judged: unjudgeable(q) === null });
    }
    // Ranked by similarity. The margin over the normal-study sentence only gates a mention: ranking by it let a
    // query far from the normal sentence (an odd site query) win every sentence that passed the gate.
    const bySim = (a: { sim: number }, b: { sim: number }) => b.sim - a.sim;
    const top = [...candidates].sort(bySim)[0] ?? null;
    const topJudged = candidates.filter((c) => c.judged).sort(bySim)[0] ?? null;
    // A query that can be checked wins over a closer one that cannot, unless that one is clearly closer.
    const best = top && !top.judged && topJudged && top.sim - topJudged.sim <= JUDGED_PREFERENCE ? topJudged : top;
    const matched = best?.q ?? null;
    const check: SentenceCheck = {
      index, text, assertion, about,
      matchedQueryId: matched?.id ?? null,
      matchSimilarity: best?.sim ?? null,
      matchMargin: best && Number.isFinite(best.margin) ? best.margin : null,
      imageScore: null, probability: null, threshold: null, supported: null,
      notChecked: !matched ? 'it matches no triage query'
        : assertion === 'absent' ? 'it states absence: only findings the images flag are compared with it'
          : assertion === 'uncertain' ? 'it is uncertain (hedged): not checked'
            : null,
    };
    if (matched && assertion === 'present') {
      const score = input.image(at(about)) - (matched.negativeText ? input.image(at(matched.negativeText)) : 0);
      const finding = findingByQuery.get(matched.id);
      // The threshold the worker judged the finding with (a probability), and the sentence's own probability under
      // the query's calibration: the same "P >= threshold" rule as every flag.
      const threshold = finding?.threshold ?? null;
      const probability = matched.calibration ? plattProbability(matched.calibration, score) : null;
      check.imageScore = score;
      check.probability = probability;
      check.threshold = threshold;
      const why = unjudgeable(matched);
      // Supported when the worker flagged that finding, or the sentence itself clears the query's threshold; not
      // checked (null) when the query has no finding, threshold or calibration to judge it with on this study.
      if (why === null) check.supported = finding?.flagged === true || (threshold !== null && probability !== null && probability >= threshold);
      check.notChecked = why;
    }
    return check;
  });

  // Each sentence against each flagged finding, once: [sentence][finding].
  const mentions = checks.map((s) => flagged.map((f) => mention(s.about, f.text)));
  // A sentence speaks of one flagged finding: the closest of those it mentions. "No haemorrhage." mentions the
  // infarct's text too when the encoder puts the two near each other, but it does not deny the infarct.
  const speaksOf = mentions.map((row) => {
    let best: number | null = null;
    for (let j = 0; j < row.length; j++) {
      if (row[j].mentions && (best === null || row[j].sim > row[best].sim)) best = j;
    }
    return best;
  });
  const notMentioned: FindingGap[] = [];
  const contradicted: FindingGap[] = [];
  flagged.forEach((f, j) => {
    let closest: number | null = null;
    let closestSim: number | null = null;
    const mentioning: SentenceCheck[] = [];
    checks.forEach((s, i) => {
      const m = mentions[i][j];
      if (closestSim === null || m.sim > closestSim) [closest, closestSim] = [s.index, m.sim];
      if (m.mentions && speaksOf[i] === j) mentioning.push(s);
    });
    const gap: FindingGap = {
      queryId: f.queryId, text: f.text, priority: f.priority, similarity: f.similarity, probability: f.probability,
      closestSentence: closest, closestSimilarity: closestSim,
    };
    if (mentioning.length === 0) notMentioned.push(gap);
    else if (mentioning.every((s) => s.assertion === 'absent')) contradicted.push(gap);
  });
  const warnings: string[] = [];
  if (truncated) {
    warnings.push(`The report has ${truncated.sentences} sentences; the check reads at most ${MAX_SENTENCES}: sentences ${truncated.skippedFrom} to ${truncated.skippedTo} were not read (the first ${truncated.skippedFrom - 1} and the last ${TAIL_SENTENCES}, with the impression, were).`);
  }
  const cannot = checks.filter((s) => s.assertion === 'present' && s.matchedQueryId !== null && s.supported === null);
  if (cannot.length > 0) {
    const ids = [...new Set(cannot.map((s) => s.matchedQueryId))];
    warnings.push(`${cannot.length} ${cannot.length === 1 ? 'sentence matches a query' : 'sentences match queries'} that cannot be judged on this study (${ids.map((i) => `"${i}"`).join(', ')}): not checked against the images.`);
  }
  return {
    sentences: checks,
    notMentioned,
    contradicted,
    unsupported: checks.filter((s) => s.supported === false).map((s) => s.index),
    mentionSimilarity: input.mentionSimilarity,
    truncated,
    warnings,
  };
}
