// The lexicon data file keeps its promises: every finding has its names, templates and negations in both splits,
// held-out phrasings marked "unseen word" really contain a word no training text uses, no training report ever
// contains an evaluation phrasing as a sentence, and negations are read as negations.
import { corpus } from './corpus';
import { allNames, findingMentions, isEvaluationPhrasing, LEXICON, normaliseSentence } from './lexicon';
import { FINDING_TYPES } from './types';

/** Every string of a train split anywhere in the lexicon (what training can see). */
function trainStrings(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) return out;
  if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === 'train' && Array.isArray(v)) out.push(...(v as string[]));
      else if (k !== 'heldout' && k !== 'evaluationPhrasings') trainStrings(v, out);
    }
  }
  return out;
}

const words = (s: string): string[] => s.toLowerCase().match(/[a-z0-9]+/g) ?? [];

describe('lexicon', () => {
  it('covers every finding type with names, templates and negations', () => {
    for (const t of FINDING_TYPES) {
      const f = LEXICON.findings[t]!;
      expect(f).toBeDefined();
      expect(f.names.formal.train.length).toBeGreaterThan(3);
      expect(f.findings.train.length).toBeGreaterThan(1);
      expect(f.findings.heldout.length).toBeGreaterThan(0);
      expect(f.impression.train.length).toBeGreaterThan(1);
      expect(f.negations.train.length).toBeGreaterThan(1);
      expect(allNames(t).length).toBeGreaterThan(5);
    }
  });

  it('has at least 8 evaluation phrasings per default finding, of several kinds', () => {
    for (const t of ['acute_infarct', 'haemorrhage', 'hydrocephalus', 'mass', 'white_matter_disease', 'atrophy']) {
      const ps = LEXICON.evaluationPhrasings.findings[t]!;
      expect(ps.length).toBeGreaterThanOrEqual(8);
      expect(new Set(ps.map((p) => p.kind)).size).toBeGreaterThanOrEqual(4);
    }
  });

  it('keeps "unseen word" phrasings unseen: one of their words appears in no training text', () => {
    const seen = new Set(trainStrings(LEXICON).flatMap(words));
    for (const ps of Object.values(LEXICON.evaluationPhrasings.findings)) {
      for (const p of ps.filter((x) => x.kind === 'unseen word')) expect(words(p.text).some((w) => !seen.has(w))).toBe(true);
    }
  });

  it('never writes an evaluation phrasing as a sentence of a training report', () => {
    for (const row of corpus(1500, 'lexicon-test', 'train')) {
      for (const sentence of row.text.split(/(?<=[.;:])\s+|\n+/)) {
        const s = sentence.replace(/^\s*(\d+\.|-)\s*/, '');
        if (isEvaluationPhrasing(s)) throw new Error(`a training report wrote the evaluation phrasing "${s}"`);
      }
    }
    expect(isEvaluationPhrasing('Stroke.')).toBe(true);
    expect(normaliseSentence('Dural-based  lesion!')).toBe('dural based lesion');
  });

  it('reads negations and denials as absence, and longer names before shorter ones', () => {
    expect(findingMentions('No intracranial haemorrhage.')).toEqual(new Set());
    expect(findingMentions('Hydrocephalus is not present.')).toEqual(new Set());
    expect(findingMentions('Atrophy: none.')).toEqual(new Set());
    expect(findingMentions('Acute left MCA stroke.')).toEqual(new Set(['acute_infarct']));
    expect(findingMentions('There is local mass effect from the haematoma.')).toEqual(new Set(['haemorrhage']));
    expect([...findingMentions('Extra-axial mass at the left convexity.')]).toEqual(['meningioma']);
  });
});
