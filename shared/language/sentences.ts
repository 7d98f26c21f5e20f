// Report text as sentences with an assertion, one implementation for everything that reads radiology free text:
// the draft-report check, search and zero-label calibration (report pseudo-labels, shared/models/pseudo-labels.ts),
// in the service and in the evaluation. English cue words, NegEx-style; the rules are stated in docs/api.md
// ("Report check") and must stay in step with it.

/**
 * What makes a sentence state absence: denial words anywhere ("No acute infarct.", "Haemorrhage is excluded.",
 * "No longer any hydrocephalus.", "Ventricles are normal.", "Neither haemorrhage nor infarct.", "w/o haemorrhage";
 * "negative" after a colon or a spaced dash: "ICH: negative."); "nil", "nothing" and "none" only opening the sentence
 * or after a colon or dash ("Nothing to suggest an infarct.", "Hydrocephalus: none."), not "Acute infarct, nothing
 * else of note"; and "preserved", "intact", "maintained" only as what the sentence says of its subject
 * ("Grey-white differentiation is preserved.", "Cortical ribbon intact."), not "Large infarct with preserved flow
 * voids". DENIALS are the explicit ones (deniesOnly); NORMALITY states a normal finding, a concept a query may ask
 * for. Both are read after NOT_CUES below are taken out.
 */
const DENIALS = [
  '\\bno longer(\\s+(any|an?))?\\b',
  '\\b(no|not|without|negative for|free of|absence of|absent|excluded|ruled out|neither)\\b',
  // "w/o haemorrhage"; "ICH: negative", "SAH - negative" (not "FLAIR-negative lesion", a finding's description)
  '\\bw/o\\b',
  '(:|\\s[\u2013\u2014-]|\u2013|\u2014)\\s*negative\\b',
  '^\\s*(nil|nothing|none)\\b',
  '[:\u2013\u2014-]\\s*(nil|nothing|none)\\b',
];
const NORMALITY = [
  '\\b(resolved|unremarkable|normal)\\b',
  '\\b(is|are|remains?|remain|appears?|looks?|seems?)\\s+(\\w+\\s+)?(preserved|intact|maintained)\\b',
  '\\b(preserved|intact|maintained)\\s*[.!]?\\s*$',
  // A normal description as what the sentence ends by saying of its subject: "The paranasal sinuses are clear.",
  // "The sulci are symmetrical.", "Flow voids are patent." (not "There is clear evidence of infarct.", "Symmetrical
  // high signal in both thalami": the word must close the sentence after its verb).
  '\\b(is|are|remains?|appears?|looks?)\\s+(\\w+\\s+)?(clear|symmetrical|symmetric|patent|well aerated)\\s*[.!]?\\s*$',
  // "Brain volume is appropriate for age.", "age-appropriate volume", "within (normal) limits"
  '\\bappropriate for (the )?(patient\'?s )?age\\b',
  '\\bage[- ]appropriate\\b',
  '\\bwithin (normal )?limits\\b',
];
const NEGATION = new RegExp([...DENIALS, ...NORMALITY].join('|'), 'i');
/**
 * Hedges count as a mention (the radiologist considered it) and are neither denials nor assertions: "cannot be
 * (entirely) excluded", "not excluded" and the active "Cannot exclude", "Can not rule out", "unable to exclude";
 * "possible", "probable", "likely", "unlikely", "not likely", "may represent", "query", a question mark
 * ("?haemorrhage", "Hydrocephalus?"), "questionable", "equivocal", "indeterminate", "differential", "versus"/"vs"
 * ("Tumour vs. abscess").
 */
const UNCERTAIN = new RegExp(
  [
    '\\b(can ?not|can\u2019?t|can\'t|could not|couldn\'?t|unable to|not possible to|difficult to|not)\\s+(be\\s+)?(\\w+\\s+)?(exclude|excluded|rule out|ruled out)\\b',
    '\\b(un|not\\s+|less\\s+)?likely(\\s+to\\s+(represent|reflect|be|indicate))?\\b',
    '\\b(may|might|could)\\s+(represent|reflect|indicate)\\b',
    '\\b(possible|possibly|probable|probably|suspected|suspicious for|questionable|equivocal|indeterminate|differential|query|versus)\\b',
    '\\bvs\\b\\.?',
    '\\?+',
  ].join('|'),
  'i',
);

/**
 * Phrases with a cue word in them that are not cues (NegEx's pseudo-triggers), read before the cues.
 * KEPT: a cue word inside a finding's name ("Normal pressure hydrocephalus.") or a number ("lesion no. 3"): kept in
 * `about`.
 * NOT_CUES: a change, a comparison or a qualifier, not a statement of absence ("No interval change in the
 * hydrocephalus.", "No change in the left MCA infarct.", "Hydrocephalus has not resolved.", "not improved", "not
 * significantly changed", "larger than normal", "above the upper limit of normal"): left out of the assertion and
 * of `about`, so these sentences assert the finding they name. "No longer" and "resolved" still deny.
 */
const KEPT = /\bnormal[\s-]+pressure\s+hydrocephalus\b|\bno\.\s*(?=\d)/gi;
const DEGREE = '(significant|interval|appreciable|definite|substantial|major|material|measurable|further|new)';
const CHANGE = '(change|progression|increase|decrease|improvement|worsening|enlargement|growth|regression)';
const CHANGED = '(changed|improved|resolved|increased|decreased|progressed|worsened|regressed|altered)';
const NOT_CUES = new RegExp(
  [
    // "No (significant) (interval) change in (the size of) the ...", "without progression of"
    `\\b(no|without)\\s+(${DEGREE}\\s+){0,2}${CHANGE}(\\s+(in|of|to)(\\s+(the|size|appearance|extent|degree|its)(\\s+of)?)*)?\\b`,
    // "has not resolved", "not significantly changed"
    `\\b((has|have|had|is|are|was|were)\\s+)?not\\s+(\\w+ly\\s+)?${CHANGED}\\b`,
    // "larger than normal", "above the upper limit of normal"
    '\\b(than|above|below|beyond|outside|exceeds?|exceeding)\\s+(the\\s+)?((upper|lower)\\s+limits?\\s+of\\s+)?normal(\\s+(range|limits?|size|values?))?\\b',
  ].join('|'),
  'gi',
);
/**
 * "normal for age" after a comma qualifies a finding the clause has just stated ("Mild small vessel disease, normal
 * for age."): left out like NOT_CUES when the clause before it names a graded or typical age-related finding;
 * "Ventricles and sulci are normal for age." states normality.
 */
const AGE_QUALIFIER =
  /,\s*((is|are|which is)\s+)?(normal|within normal limits|unremarkable|appropriate|in keeping|as expected)\s+for\s+(the\s+)?(patient'?s\s+)?age\b/gi;
const STATED_FINDING = new RegExp(
  '\\b(mild|mildly|minimal|minor|slight|moderate|few|several|some|scattered|occasional|small|tiny|chronic|prominent|age[\\s-]related' +
    '|disease|changes?|atrophy|volume loss|hyperintens\\w*|foci|lesions?|calcifications?)\\b',
  'i',
);

/** Placeholders for KEPT while the cues are read (private-use characters, never in a report). */
const HIDE = '\uE000';
const protectNames = (s: string): { text: string; names: string[] } => {
  const names: string[] = [];
  const text = s.replace(KEPT, (m) => `${HIDE}${names.push(m) - 1}${HIDE}`);
  return { text, names };
};
const restoreNames = (s: string, names: string[]): string => s.replace(new RegExp(`${HIDE}(\\d+)${HIDE}`, 'g'), (_, i: string) => names[Number(i)]);

/** The sentence with its pseudo-cues taken out and finding names hidden: what the cue words are read on. */
function cueText(sentence: string): { text: string; names: string[] } {
  const { text, names } = protectNames(sentence);
  const qualified = text.replace(AGE_QUALIFIER, (m, ...rest: unknown[]) => {
    const at = rest[rest.length - 2] as number;
    return STATED_FINDING.test(text.slice(Math.max(0, at - 200), at)) ? ' ' : m;
  });
  return { text: qualified.replace(NOT_CUES, ' '), names };
}

export type Assertion = 'present' | 'absent' | 'uncertain';

export function assertionOf(sentence: string): Assertion {
  const { text } = cueText(sentence);
  if (UNCERTAIN.test(text)) return 'uncertain';
  if (NEGATION.test(text)) return 'absent';
  return 'present';
}

/** Verbs left dangling at the end once the cue after them is gone ("Haemorrhage is [not likely]"). */
const DANGLING = /^(is|are|was|were|be|been|has|have|had|appears?|seems?|looks?|remains?)$/i;

/** `text` (single-spaced) without the verbs at its end; a word loop, not a regex (a run of " is" must stay linear). */
function dropDanglingVerbs(text: string): string {
  const words = text.split(' ');
  while (words.length > 1 && DANGLING.test(words[words.length - 1])) words.pop();
  return words.join(' ');
}

/** `text` without the characters of `chars` at either end (by hand: `[...]+$` is quadratic on a long run). */
function trimChars(text: string, chars: string): string {
  let a = 0;
  let b = text.length;
  while (a < b && chars.includes(text[a])) a++;
  while (b > a && chars.includes(text[b - 1])) b--;
  return text.slice(a, b);
}

/**
 * The sentence without its assertion cue words ("No intracranial haemorrhage" -> "intracranial haemorrhage";
 * "Small infarct cannot be excluded" -> "Small infarct"; "Haemorrhage is not likely" -> "Haemorrhage"): what the
 * sentence is ABOUT, so that a statement of absence is matched to the finding it denies, by text similarity, and the
 * assertion is kept separately.
 */
export function stripCues(sentence: string): string {
  const g = (re: RegExp) => new RegExp(re.source, 'gi');
  const { text, names } = cueText(sentence);
  const stripped = restoreNames(
    dropDanglingVerbs(trimChars(text.replace(g(UNCERTAIN), ' ').replace(g(NEGATION), ' ').replace(/\s+/g, ' '), ' ,;:')),
    names,
  ).trim();
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
  return clauses.length > 0 && clauses.every((c) => assertionOf(c) === 'absent' && EXPLICIT_DENIAL.test(cueText(c).text));
}

/**
 * Report sections that describe the request, the procedure or earlier studies, not these images ("Clinical
 * history: sudden headache", "Hx: fall", "Technique: ...", "Comparison: CT earlier today"): their sentences are
 * left out.
 */
const NOT_FINDINGS_NAMES = [
  'clinical( history| hx| details| info| information| indications?| question| notes| data| summary| background)?', 'history', 'hx',
  '(relevant|patient|medical|past medical|provided)( clinical)? history', 'indications?', 'requests?', 'question',
  'reason( for (the )?(exam|examination|study|scan|referral|request|imaging))?', 'referral( question| reason)?', 'presenting complaint',
  'technique', 'methods?', 'protocol', 'procedure', 'sequences', 'examination', 'exam', 'contrast agent',
  'comparisons?( stud(y|ies)| exams?| examinations?| imaging| scans?)?', '(previous|prior)( studies| study| imaging| exams?| examinations?| scans?)?',
];
/** Section names that hold what the images show ("Findings and impression", "Findings/Conclusion" too). */
const FINDINGS_NAMES = [
  '(findings|observations|report|impressions?|conclusions?|opinion|comments?|summary|assessment|interpretation|results?|diagnosis)' +
    '((\\s+and\\s+|\\s*[/&]\\s*)(impressions?|conclusions?|opinion|comments?|summary))?',
];
const NOT_FINDINGS = new RegExp(`^(${NOT_FINDINGS_NAMES.join('|')})$`, 'i');
const FINDINGS = new RegExp(`^(${FINDINGS_NAMES.join('|')})$`, 'i');
const isSectionName = (name: string): boolean => NOT_FINDINGS.test(name) || FINDINGS.test(name);
/**
 * "Name:" opening a line or a sentence; a section heading only when the name is one of the above, in any case.
 * Any other "Name:" is part of its sentence: "SAH: none.", "ICH: no.", "Brain: acute infarct".
 */
const HEADING = /^\s*([A-Za-z][A-Za-z /&-]{0,40}?)\s*:\s*/;
/**
 * A known heading, capitalised, inside a sentence ("No acute infarct IMPRESSION: normal") starts a new one; the
 * longest name that ends at the colon is the heading, so "Clinical Hx:" is not cut before "Hx".
 */
function cutAtHeadings(text: string): string[] {
  const cuts: number[] = [];
  for (const colon of text.matchAll(/\s*:/g)) {
    // Section names are at most five words (and well under 80 characters) long.
    const from = Math.max(0, colon.index - 80);
    const words = [...text.slice(from, colon.index).matchAll(/(?<=^|\s)\S+/g)].slice(-5);
    const start = words.map((w) => from + w.index).find((at) => isSectionName(text.slice(at, colon.index)));
    if (start !== undefined && start > (cuts.at(-1) ?? 0) && /[A-Z]/.test(text[start])) cuts.push(start);
  }
  return [0, ...cuts].map((at, i) => text.slice(at, cuts[i])).filter((p) => p.trim() !== '');
}

/**
 * An examination title ("MRI BRAIN WITHOUT CONTRAST", "MRI head", "CT head non-contrast"): a line or sentence
 * made only of these words (and numbers or dates), one of them a modality. Not a finding.
 */
const MODALITY = new Set(['mri', 'mr', 'mra', 'mrv', 'ct', 'cta', 'ctv', 'ctp', 'pet', 'spect', 'magnetic', 'computed']);
const TITLE_WORDS = new Set([
  ...MODALITY, 'resonance', 'imaging', 'tomography', 'tomographic', 'angiography', 'angiogram', 'venography', 'venogram', 'perfusion',
  'spectroscopy', 'brain', 'head', 'neuro', 'cranial', 'intracranial', 'skull', 'orbits', 'pituitary', 'iams', 'iam', 'face', 'neck',
  'and', 'or', 'of', 'the', 'with', 'without', 'w', 'o', 'wo', 'pre', 'post', 'iv', 'contrast', 'gadolinium', 'gad', 'enhanced', 'non',
  'unenhanced', 'noncontrast', 'plain', 'scan', 'study', 'examination', 'exam', 'report', 'protocol', 'stroke', 'routine', 'urgent',
]);
function isTitle(text: string): boolean {
  const words = text.toLowerCase().split(/[^a-z0-9]+/).filter((w) => w !== '' && !/^\d+$/.test(w));
  return words.some((w) => MODALITY.has(w)) && words.every((w) => TITLE_WORDS.has(w));
}

/**
 * A "." that does not end a sentence: after an abbreviation ("approx. 3 cm", "e.g. vasogenic", "Dr. Smith",
 * "vs. tumour", "cf."), after "no." before a number ("lesion no. 3"), and after a single letter before a lower-case
 * word, a number or an abbreviation in capitals ("L. frontal lobe", "R. MCA"; in a line all in capitals only before
 * a number). "etc.", "approx.", "mm." and the like end a sentence unless a lower-case word or a number follows.
 * Decimals ("4.1 cm") have no space after the point.
 */
const ABBREVIATIONS = new Set(['e.g', 'eg', 'i.e', 'ie', 'viz', 'vs', 'cf', 'c.f', 'dr', 'drs', 'prof', 'fig', 'figs']);
const SOFT_ABBREVIATIONS = new Set(['approx', 'appr', 'etc', 'ca', 'incl', 'esp', 'resp', 'max', 'min', 'mm', 'cm', 'yr', 'yrs', 'sec', 'seq', 'ant', 'post', 'sup', 'inf', 'lat', 'med']);

/** Whether the punctuation `mark` that ends `before` (the sentence so far) and is followed by `next` ends it. */
function endsSentence(before: string, mark: string, next: string, capitals: boolean): boolean {
  if (mark.startsWith('?') && /(^|\s)$/.test(before)) return false; // "? bleed": the mark opens a word
  if (mark !== '.') return true;
  const word = (/([A-Za-z.]+)$/.exec(before)?.[1] ?? '').toLowerCase();
  if (ABBREVIATIONS.has(word)) return false;
  if (word === 'no') return !/^\d/.test(next);
  const continues = /^[a-z0-9(]/.test(next);
  if (/^[a-z]$/.test(word)) return !(continues || (!capitals && /^[A-Z]{2,}\b/.test(next)));
  return !(SOFT_ABBREVIATIONS.has(word) && continues);
}

/** One line cut after `.` `!` `?` `;` followed by white space, where that ends a sentence (endsSentence). */
function cutSentences(line: string): string[] {
  const parts: string[] = [];
  const capitals = !/[a-z]/.test(line);
  let start = 0;
  for (const m of line.matchAll(/([.!?;]+)(\s+)/g)) {
    const end = m.index + m[1].length;
    const before = line.slice(Math.max(start, m.index - 20), m.index);
    const next = line.slice(end + m[2].length, end + m[2].length + 4).split(/\s/)[0];
    if (endsSentence(m.index === start ? '' : before, m[1], next, capitals)) {
      parts.push(line.slice(start, end));
      start = end + m[2].length;
    }
  }
  parts.push(line.slice(start));
  return parts.flatMap(cutAtHeadings);
}

/**
 * What every rule below reads: compatibility forms folded (NFKC: fullwidth letters, ligatures), each run of
 * horizontal white space one space, and each run of punctuation its first mark ("..." is ".", "?!" is "?"). Real
 * reports lose nothing by it, and no rule then meets a long run of one character class, which several regular
 * expressions would take quadratic time over (a 60,000-character run took seconds of the API's event loop).
 */
function readable(text: string): string {
  return text.normalize('NFKC').replace(/[^\S\r\n]+/g, ' ').replace(/([.!?;:,])[.!?;:,]+/g, '$1');
}

/**
 * Splits a free-text report into sentences: line breaks and . ! ? ; end one (not after an abbreviation or an
 * initial, endsSentence), "but" and "however" start a new clause; bullets, section headings and examination titles
 * are dropped, and so are sections about the request, the technique or a comparison (NOT_FINDINGS): a heading with
 * its text on the same line ("Clinical history: headache.") drops that line, or that line up to the next heading
 * ("History: fall. Findings: acute SDH."); a heading alone on its line ("CLINICAL HISTORY:") drops the lines under
 * it up to a blank line or the next heading. A heading may follow a sentence on its line ("FINDINGS: No acute
 * infarct. IMPRESSION: Normal study."). "Hydrocephalus: none." and "SAH: none." are sentences, not headings.
 */
export function splitSentences(report: string): string[] {
  const out: string[] = [];
  let skipping = false;
  let label = '';
  for (const line of readable(report).split(/\r?\n/)) {
    const text = line.replace(/^\s*([-*\u2022]|\d+[.)])\s+/, '').trim();
    const bare = text.replace(/:$/, '').trim();
    const pending = label;
    label = '';
    if (bare === '') {
      skipping = false;
      continue;
    }
    if (isSectionName(bare)) {
      skipping = NOT_FINDINGS.test(bare);
      continue;
    }
    // "VENTRICLES:" alone on its line names what the next line says of it ("VENTRICLES:\nNormal." is one sentence).
    if (/^[^.!?;]{1,60}:$/.test(text)) {
      label = `${text} `;
      continue;
    }
    // Within the line, a heading rules the sentences after it; before any, the section the line is in does.
    let dropping = skipping;
    for (const [i, sentence] of cutSentences(text).entries()) {
      let body = sentence.trim();
      const heading = HEADING.exec(body);
      const name = heading?.[1].trim() ?? '';
      if (heading && isSectionName(name)) {
        dropping = NOT_FINDINGS.test(name);
        skipping = false;
        body = body.slice(heading[0].length);
      } else if (i === 0) {
        body = pending + body;
      }
      if (dropping || isTitle(body)) continue;
      // "but"/"however" start a new clause with its own assertion ("No haemorrhage but an acute infarct").
      for (const part of body.split(/,?\s+but\s+|[,;]\s*however,?\s+/i)) {
        const s = part.replace(/[.;]+$/, '').trim();
        if (/[A-Za-z]{2,}/.test(s)) out.push(s);
      }
    }
  }
  return out;
}

/**
 * The version of these reading rules: part of the key of cached report sentence vectors (shared/models/
 * pseudo-labels.ts textModelVersion), so stored reports are read again after a change here. Raise it with any
 * change to what reportSentences returns.
 */
export const SENTENCE_RULES_VERSION = 4;

export interface ReportSentence {
  text: string;
  assertion: Assertion;
  /** stripCues(text): what gets embedded and compared with a query's text. */
  about: string;
}

/** One sentence (as splitSentences gives it) with its assertion and cue-stripped text. */
export function readSentence(text: string): ReportSentence {
  return { text, assertion: assertionOf(text), about: stripCues(text) };
}

/** Every sentence of a report with its assertion and cue-stripped text, at most `max` sentences. */
export function reportSentences(report: string, max = 200): ReportSentence[] {
  return splitSentences(report).slice(0, max).map(readSentence);
}
