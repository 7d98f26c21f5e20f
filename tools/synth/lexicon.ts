// The neuroradiology lexicon (neuroradiology-lexicon.json, a data file the team reviews without reading code): names, synonyms,
// abbreviations, UK/US spellings and clinicians' shorthand of every finding, report templates, negation and
// uncertainty, sections, anatomy, off-topic English, and the evaluation's held-out phrasings. This module loads and
// checks it, and answers the questions the rest of the repository asks of it: which findings a text asserts, and
// whether a sentence is one of the evaluation's phrasings (which training must never write).
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import lexiconJson from './neuroradiology-lexicon.json';
import { FINDING_TYPES, type FindingType, type PhrasingSet } from './types';

const Split = Type.Object({ train: Type.Array(Type.String()), heldout: Type.Array(Type.String()) });
export type Split = Static<typeof Split>;

const FindingLexiconSchema = Type.Object(
  {
    priority: Type.Union([Type.Literal('STAT'), Type.Literal('URGENT'), Type.Literal('ROUTINE')]),
    names: Type.Object({ formal: Split, short: Split, abbreviation: Split }),
    negatable: Split,
    findings: Split,
    impression: Split,
    negations: Split,
  },
  // Per-finding extras used by its templates (haemorrhage stages, hydrocephalus pv, MS infra/active): a Split or a
  // record of Splits.
  { additionalProperties: Type.Union([Split, Type.Record(Type.String(), Split)]) },
);
export type FindingLexicon = Static<typeof FindingLexiconSchema> & Record<string, unknown>;

const Phrasing = Type.Object({ kind: Type.String(), text: Type.String({ minLength: 1 }) });
export type EvaluationPhrasing = Static<typeof Phrasing>;

const LexiconSchema = Type.Object({
  about: Type.String(),
  version: Type.Integer(),
  hedges: Split,
  uncertainty: Type.Object({ before: Split, sentences: Split }),
  negation: Type.Object({ cues: Type.Array(Type.String()), templates: Split }),
  sections: Type.Record(Type.String(), Split),
  indications: Split,
  comparisons: Split,
  technique: Split,
  sequenceNames: Type.Record(Type.String(), Split),
  sides: Type.Record(Type.String(), Split),
  anatomy: Type.Record(Type.String(), Split),
  findings: Type.Record(Type.String(), FindingLexiconSchema),
  normal: Type.Object({ statements: Split, impressions: Split }),
  incidental: Split,
  structures: Split,
  normalPredicates: Type.Object({ singular: Split, plural: Split }),
  incidentalTemplates: Split,
  incidentalThings: Type.Record(Type.String(), Split),
  offTopic: Split,
  offTopicWords: Type.Object({ subjects: Split, predicates: Split }),
  evaluationPhrasings: Type.Object({ findings: Type.Record(Type.String(), Type.Array(Phrasing)), negated: Type.Array(Phrasing) }),
});
export type Lexicon = Static<typeof LexiconSchema>;

function load(): Lexicon {
  const problems = [...Value.Errors(LexiconSchema, lexiconJson)].map((e) => `${e.path}: ${e.message}`);
  const lex = lexiconJson as unknown as Lexicon;
  for (const t of FINDING_TYPES) if (!lex.findings[t]) problems.push(`/findings: no entry for ${t}`);
  if (problems.length > 0) throw new Error(`tools/synth/neuroradiology-lexicon.json is invalid:\n  - ${problems.slice(0, 20).join('\n  - ')}`);
  return lex;
}

export const LEXICON: Lexicon = load();

export function findingLexicon(type: string): FindingLexicon {
  const f = LEXICON.findings[type];
  if (!f) throw new Error(`the lexicon has no finding "${type}"`);
  return f as FindingLexicon;
}

/** Entries of a split for a phrasing set: training reports use only `train`; held-out reports prefer `heldout`. */
export function entries(split: Split, set: PhrasingSet): string[] {
  return set === 'train' || split.heldout.length === 0 ? split.train : split.heldout;
}

/** Every name of a finding, both splits: what findingMentions looks for. */
export function allNames(type: string): string[] {
  const n = findingLexicon(type).names;
  return [...new Set([...n.formal.train, ...n.formal.heldout, ...n.short.train, ...n.short.heldout, ...n.abbreviation.train, ...n.abbreviation.heldout])];
}

/** Lower case, hyphens and slashes as spaces, other punctuation dropped, spaces collapsed. */
export function normaliseSentence(s: string): string {
  return s.toLowerCase().replace(/[-/]/g, ' ').replace(/[^\p{L}\p{N} ]+/gu, '').replace(/\s+/g, ' ').trim();
}

const EVALUATION_SENTENCES = new Set(Object.values(LEXICON.evaluationPhrasings.findings).flat().map((p) => normaliseSentence(p.text)));

/** True when a sentence is one of the evaluation's held-out phrasings: the report writer never writes one. */
export function isEvaluationPhrasing(sentence: string): boolean {
  return EVALUATION_SENTENCES.has(normaliseSentence(sentence));
}

// ---------- which findings does a text assert? ----------

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Phrases that contain a finding's name without asserting it ("mass effect" is not a mass). */
const NOT_A_MENTION = ['mass effect', 'local mass effect', 'space-occupying effect', 'no mass', 'mass or mass effect'];

interface NameMatcher {
  type: FindingType;
  re: RegExp;
}

// Longest names first, so "extra-axial mass" (meningioma) is taken before "mass" can be.
const MATCHERS: NameMatcher[] = (Object.keys(LEXICON.findings) as FindingType[]).flatMap((type) => allNames(type).map((name) => ({ type, name })))
  .sort((a, b) => b.name.length - a.name.length)
  .map(({ type, name }) => ({ type, re: new RegExp(`(?<![\\w-])${escape(name)}(?![\\w-])`, /^[A-Z]{2,}/.test(name) ? 'g' : 'gi') }));

const NEGATION = new RegExp(`\\b(${LEXICON.negation.cues.map(escape).join('|')})\\b`, 'i');
/** Cues that deny what came before them in the clause ("Hydrocephalus is not present.", "Atrophy: none."). */
const POST_NEGATION = /\b(not|none|absent|excluded|ruled out)\b/i;

/**
 * Finding types a text asserts: a name of the finding in a clause with no negation cue before it (nor a denial such
 * as "is not present" after it). Names are matched
 * longest first and consumed, so a longer name of one finding is never read as a shorter name of another.
 */
export function findingMentions(text: string): Set<FindingType> {
  const out = new Set<FindingType>();
  for (const raw of text.split(/(?<=[.;])\s+|\n+/)) {
    let clause = raw;
    for (const phrase of NOT_A_MENTION) clause = clause.replace(new RegExp(escape(phrase), 'gi'), (m) => ' '.repeat(m.length));
    for (const { type, re } of MATCHERS) {
      re.lastIndex = 0;
      let m: RegExpExecArray | null;
      while ((m = re.exec(clause)) !== null) {
        if (!NEGATION.test(clause.slice(0, m.index)) && !POST_NEGATION.test(clause.slice(m.index + m[0].length))) out.add(type);
        clause = clause.slice(0, m.index) + ' '.repeat(m[0].length) + clause.slice(m.index + m[0].length);
      }
    }
  }
  return out;
}
