// Report check: compares a radiologist's draft report with what the images suggest. Pure logic over injected
// embeddings; the rule is documented in docs/api.md ("Report check") and must stay in step with it.
import type { TriageQuery } from '../../shared/model-manifest';
import type { FindingScore } from '../../shared/results';
import { plattProbability } from '../../shared/models/calibration';
import { cosine } from './vectors';

export type EmbedText = (texts: string[]) => Promise<Float32Array[]>;

export const MAX_SENTENCES = 200;

/** Words that make a sentence state absence ("No acute infarct.", "Ventricles are normal."). English only. */
const NEGATION = /\b(no|not|without|negative for|free of|absence of|absent|ruled out|resolved|unremarkable|normal)\b/i;
/** Hedges count as a mention (the radiologist considered it) and are neither denials nor assertions. */
const UNCERTAIN = /\b(cannot be excluded|can ?not be (excluded|ruled out)|not excluded|possible|possibly|probable|probably|likely|suspected|suspicious for|may represent|questionable|equivocal|differential)\b/i;

export type Assertion = 'present' | 'absent' | 'uncertain';

export function assertionOf(sentence: string): Assertion {
  if (UNCERTAIN.test(sentence)) return 'uncertain';
  if (NEGATION.test(sentence)) return 'absent';
  return 'present';
}

/**
 * Splits a free-text report into sentences: line breaks and . ! ? ; end one, "but" and "however" start a new
 * clause; section headings and bullets are dropped.
 */
export function splitSentences(report: string): string[] {
  const out: string[] = [];
  for (const line of report.split(/\r?\n/)) {
    const body = line
      .replace(/^\s*([-*\u2022]|\d+[.)])\s+/, '')
      .replace(/^\s*[A-Z][A-Z /]{2,40}:\s*/, '')
      .trim();
    // "but"/"however" start a new clause with its own assertion ("No haemorrhage but an acute infarct").
    for (const part of body.split(/(?<=[.!?;])\s+|,?\s+but\s+|[,;]\s*however,?\s+/i)) {
      const s = part.replace(/[.;]+$/, '').trim();
      if (/[A-Za-z]{2,}/.test(s)) out.push(s);
    }
  }
  return out;
}

export interface SentenceCheck {
  index: number;
  text: string;
  assertion: Assertion;
  /** Closest triage query by text similarity, when at least the mention threshold. */
  matchedQueryId: string | null;
  matchSimilarity: number | null;
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
  embed: EmbedText;
}

export async function checkReport(input: ReportCheckInput): Promise<ReportCheck> {
  const sentences = splitSentences(input.report).slice(0, MAX_SENTENCES);
  const flagged = input.findings.filter((f) => f.flagged);
  const texts = new Set<string>(sentences);
  for (const f of flagged) texts.add(f.text);
  for (const q of input.queries) {
    texts.add(q.text);
    if (q.negativeText) texts.add(q.negativeText);
  }
  const list = [...texts];
  const vectors = list.length > 0 ? await input.embed(list) : [];
  const vec = new Map(list.map((t, i) => [t, vectors[i]]));
  const at = (t: string): Float32Array => vec.get(t) as Float32Array;
  const findingByQuery = new Map(input.findings.map((f) => [f.queryId, f]));

  const checks: SentenceCheck[] = sentences.map((text, index) => {
    const assertion = assertionOf(text);
    let best: TriageQuery | null = null;
    let bestSim = -Infinity;
    for (const q of input.queries) {
      const sim = cosine(at(text), at(q.text));
      if (sim > bestSim) [best, bestSim] = [q, sim];
    }
    const matched = best && bestSim >= input.mentionSimilarity ? best : null;
    const check: SentenceCheck = {
      index, text, assertion,
      matchedQueryId: matched?.id ?? null,
      matchSimilarity: matched ? bestSim : null,
      imageScore: null, threshold: null, supported: null,
    };
    if (matched && assertion === 'present') {
      const score = input.image(at(text)) - (matched.negativeText ? input.image(at(matched.negativeText)) : 0);
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
    for (const s of checks) {
      const sim = cosine(at(s.text), at(f.text));
      if (closestSim === null || sim > closestSim) [closest, closestSim] = [s.index, sim];
    }
    const gap: FindingGap = {
      queryId: f.queryId, text: f.text, priority: f.priority, similarity: f.similarity, probability: f.probability,
      closestSentence: closest, closestSimilarity: closestSim,
    };
    const mentioning = checks.filter((s) => cosine(at(s.text), at(f.text)) >= input.mentionSimilarity);
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
