// Report text as sentences with an assertion, one implementation for everything that reads radiology free text:
// the draft-report check, search and zero-label calibration (report pseudo-labels, shared/models/pseudo-labels.ts),
// in the service and in the evaluation. English cue words, NegEx-style; the rules are stated in docs/api.md
// ("Report check") and must stay in step with it.

/**
 * What makes a sentence state absence: denial words anywhere ("No acute infarct.", "Haemorrhage is excluded.",
 * "Ventricles are normal."); "nil", "nothing" and "none" only opening the sentence or after a colon or dash
 * ("Nothing to suggest an infarct.", "Hydrocephalus: none."), not "Acute infarct, nothing else of note"; and
 * "preserved", "intact", "maintained" only as what the sentence says of its subject ("Grey-white differentiation is
 * preserved.", "Cortical ribbon intact."), not "Large infarct with preserved flow voids". DENIALS are the explicit
 * ones (deniesOnly); NORMALITY states a normal finding, a concept a query may ask for.
 */
const DENIALS = [
  '\\b(no|not|without|negative for|free of|absence of|absent|excluded|ruled out)\\b',
  '^\\s*(nil|nothing|none)\\b',
  '[:\u2013\u2014-]\\s*(nil|nothing|none)\\b',
];
const NORMALITY = [
  '\\b(resolved|unremarkable|normal)\\b',
  '\\b(is|are|remains?|remain|appears?|looks?|seems?)\\s+(\\w+\\s+)?(preserved|intact|maintained)\\b',
  '\\b(preserved|intact|maintained)\\s*[.!]?\\s*$',
];
const NEGATION = new RegExp([...DENIALS, ...NORMALITY].join('|'), 'i');
/**
 * Hedges count as a mention (the radiologist considered it) and are neither denials nor assertions; "cannot be
 * (entirely) excluded" is a hedge, not a denial.
 */
const UNCERTAIN = /\b((can ?not|could not|not) (be )?(\w+ )?(excluded|ruled out)|possible|possibly|probable|probably|likely|suspected|suspicious for|may represent|questionable|equivocal|differential)\b/i;

export type Assertion = 'present' | 'absent' | 'uncertain';

export function assertionOf(sentence: string): Assertion {
  if (UNCERTAIN.test(sentence)) return 'uncertain';
  if (NEGATION.test(sentence)) return 'absent';
  return 'present';
}

/**
 * The sentence without its assertion cue words ("No intracranial haemorrhage" -> "intracranial haemorrhage";
 * "Small infarct cannot be excluded" -> "Small infarct"): what the sentence is ABOUT, so that a statement of
 * absence is matched to the finding it denies, by text similarity, and the assertion is kept separately.
 */
export function stripCues(sentence: string): string {
  const g = (re: RegExp) => new RegExp(re.source, 'gi');
  const stripped = sentence.replace(g(UNCERTAIN), ' ').replace(g(NEGATION), ' ').replace(/\s+/g, ' ').replace(/^[\s,;:]+|[\s,;:]+$/g, '').trim();
  // A sentence that was nothing but cues ("Normal.") keeps its words: there is nothing else to match on.
  return /[A-Za-z]{2,}/.test(stripped) ? stripped : sentence.trim();
}

/** Explicit denials only (DENIALS above, not NORMALITY). */
const EXPLICIT_DENIAL = new RegExp(DENIALS.join('|'), 'i');

/**
 * A text that only states absence ("No haemorrhage.", "Without hydrocephalus"): every clause is an explicit denial.
 * As a query or a search it asks for the studies WITHOUT the finding it names (shared/models/scoring.ts
 * scoredSentences); "Normal MRI brain. No intracranial abnormality." is not one (its first clause asserts normality).
 */
export function deniesOnly(text: string): boolean {
  const clauses = splitSentences(text);
  return clauses.length > 0 && clauses.every((c) => assertionOf(c) === 'absent' && EXPLICIT_DENIAL.test(c));
}

/**
 * Report sections that describe the request, the procedure or earlier studies, not these images ("Clinical
 * history: sudden headache", "Technique: ...", "Comparison: CT earlier today"): their sentences are left out.
 */
const NOT_FINDINGS = new RegExp(
  '^(' +
    [
      'clinical( history| details| information| indications?| question| notes)?', 'history', 'indications?', 'request', 'question',
      'reason( for (the )?(exam|examination|study|scan|referral|request))?', 'referral( question| reason)?', 'presenting complaint',
      'technique', 'methods?', 'protocol', 'procedure', 'sequences', 'examination', 'exam',
      'comparisons?', '(previous|prior)( studies| study| imaging| exams?| examinations?)?',
    ].join('|') +
    ')$',
  'i',
);
/** Section names that hold what the images show ("Findings and impression", "Findings/Conclusion" too). */
const FINDINGS = /^(findings|observations|report|impressions?|conclusions?|opinion|comments?|summary|assessment|interpretation|results?|diagnosis)((\s+and\s+|\s*[/&]\s*)(impressions?|conclusions?|opinion|comments?|summary))?$/i;
/** "Name:" at the start of a line; a section only when the name is one of the above or written in capitals. */
const HEADING = /^\s*([A-Za-z][A-Za-z /&-]{1,40}?)\s*:\s*/;

/**
 * Splits a free-text report into sentences: line breaks and . ! ? ; end one, "but" and "however" start a new
 * clause; bullets and section headings are dropped, and so are sections about the request, the technique or a
 * comparison (NOT_FINDINGS): a heading with its text on the same line ("Clinical history: headache.") drops that
 * line; a heading alone on its line ("CLINICAL HISTORY:") drops the lines under it up to a blank line or the next
 * heading. "Hydrocephalus: none." is a sentence, not a heading.
 */
export function splitSentences(report: string): string[] {
  const out: string[] = [];
  let skipping = false;
  for (const line of report.split(/\r?\n/)) {
    const bare = line.trim().replace(/:$/, '').trim();
    if (bare === '') {
      skipping = false;
      continue;
    }
    if (NOT_FINDINGS.test(bare) || FINDINGS.test(bare)) {
      skipping = NOT_FINDINGS.test(bare);
      continue;
    }
    let text = line.replace(/^\s*([-*\u2022]|\d+[.)])\s+/, '');
    const heading = HEADING.exec(text);
    if (heading) {
      const name = heading[1].trim();
      if (NOT_FINDINGS.test(name)) {
        skipping = false;
        continue;
      }
      if (FINDINGS.test(name) || /^[A-Z][A-Z /&-]+$/.test(name)) {
        skipping = false;
        text = text.slice(heading[0].length);
      }
    }
    if (skipping) continue;
    const body = text.trim();
    // "but"/"however" start a new clause with its own assertion ("No haemorrhage but an acute infarct").
    for (const part of body.split(/(?<=[.!?;])\s+|,?\s+but\s+|[,;]\s*however,?\s+/i)) {
      const s = part.replace(/[.;]+$/, '').trim();
      if (/[A-Za-z]{2,}/.test(s)) out.push(s);
    }
  }
  return out;
}

export interface ReportSentence {
  text: string;
  assertion: Assertion;
  /** stripCues(text): what gets embedded and compared with a query's text. */
  about: string;
}

/** Every sentence of a report with its assertion and cue-stripped text, at most `max` sentences. */
export function reportSentences(report: string, max = 200): ReportSentence[] {
  return splitSentences(report)
    .slice(0, max)
    .map((text) => ({ text, assertion: assertionOf(text), about: stripCues(text) }));
}
