// Free-text neuroradiology reports written from the ground truth, in the words of the lexicon (neuroradiology-lexicon.json):
// indication, technique, comparison, FINDINGS and IMPRESSION under the usual section names, each finding in varied
// wording (formal names, synonyms, abbreviations, UK and US spellings, clinicians' shorthand), laterality and
// measurements, hedges, negations of a random subset of absent findings, normal-structure statements, incidental
// findings, several findings in one report. Two phrasing sets: 'train' uses only the lexicon's train entries;
// 'heldout' uses its held-out templates, hedges and sections (sentence frames training never sees) and sometimes
// its held-out names. No report ever contains a sentence equal to one of the evaluation's phrasings.
import { allNames, entries, findingLexicon, isEvaluationPhrasing, LEXICON, type Split } from './lexicon';
import type { Rng } from './prng';
import type { FindingLabel, FindingType, PhrasingSet, Sequence, StudyLabels } from './types';

export { findingMentions } from './lexicon';

type Fill = Record<string, string>;

/** Finding types the lexicon writes (a superset of what a generator version may draw). */
type AnyFinding = FindingType | 'multiple_sclerosis' | 'meningioma';
/** Label fields some findings carry beyond the common ones (multiple sclerosis, meningioma). */
type Label = Omit<FindingLabel, 'type'> & { type: AnyFinding; count?: number; active?: boolean; oedema?: boolean };

const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
/** "a" or "an" before a word as it is spoken (an MCA infarct, an 8 mm focus, a unilateral ...). */
const article = (s: string): string =>
  (/^([aeio]|u(?!n[iu]|s)|8|11|18|h(?=aem|em)|[AEFHILMNORSX](?:[A-Z]{1,4})?\b)/i.test(s) && !/^(one|uni|eu|hem(?!orr)|haem(?!orr))/i.test(s)) || /^(hour|honest)/i.test(s) ? `an ${s}` : `a ${s}`;

/** Head nouns that take an article ("consistent with an acute infarct"); mass nouns do not ("with hydrocephalus"). */
const COUNTABLE = /\b(infarct|infarction|stroke|haematoma|hematoma|haemorrhage|hemorrhage|bleed|mass|tumou?r|neoplasm|lesion|glioma|glioblastoma|metastasis|meningioma|CVA|ICH|insult|growth|process)$/i;
const withArticle = (name: string): string => (COUNTABLE.test(name) ? article(name) : name);
/** "is" or "are" for a name ("No dilated ventricles are seen"). */
const verb = (name: string): string => (/[^su]s$/i.test(name) && !/(sis|ss)$/i.test(name) ? 'are' : 'is');

/** Fills {slot}s; a slot written with a capital first letter gets its value capitalised. */
function fill(t: string, v: Fill): string {
  return t
    .replace(/\{(\w+)\}/g, (_, k: string) => {
      const direct = v[k];
      if (direct !== undefined) return direct;
      const lower = v[k.charAt(0).toLowerCase() + k.slice(1)];
      return lower !== undefined ? cap(lower) : '';
    })
    .replace(/ {2,}/g, ' ')
    .replace(/ ([,.;)])/g, '$1')
    .replace(/\( /g, '(');
}

interface Ctx {
  rng: Rng;
  set: PhrasingSet;
}

function pick(c: Ctx, split: Split): string {
  return c.rng.pick(entries(split, c.set));
}

/** A name of a finding: held-out reports mostly use the common (train) names too, sometimes a held-out one. */
function pickName(c: Ctx, split: Split): string {
  if (c.set === 'heldout' && split.heldout.length > 0 && c.rng.chance(0.3)) return c.rng.pick(split.heldout);
  return c.rng.pick(split.train.length > 0 ? split.train : split.heldout);
}

function sizeText(c: Ctx, mm: number, second?: number): string {
  const { rng, set } = c;
  const cm = (v: number): string => (v / 10).toFixed(1);
  const r = Math.round(mm);
  const r2 = second ? Math.round(second) : Math.round(mm * rng.uniform(0.6, 0.9));
  if (set === 'train') return rng.pick([`${r} mm`, `${cm(mm)} cm`, `${r} x ${r2} mm`, `up to ${r} mm`, `approximately ${r} mm`, `${r}mm`]);
  return rng.pick([`${cm(mm)} x ${cm(r2)} cm`, `about ${cm(mm)} cm`, `${r}mm in maximal dimension`, `roughly ${r} by ${r2} mm`]);
}

function anatomy(c: Ctx, key: string | undefined): string {
  if (!key) return '';
  const a = LEXICON.anatomy[key];
  return a ? pickName(c, a) : key;
}

function sideWord(c: Ctx, side: string): string {
  const s = LEXICON.sides[side];
  if (!s || (side !== 'left' && side !== 'right')) return '';
  // "L"/"R" only where a clinician writes it, before a noun; reports otherwise spell the side out (tests look for it)
  const w = pickName(c, s);
  return w.length === 1 ? side : w.replace(/-sided$/, '');
}

function values(c: Ctx, f: Label): Fill {
  const { rng, set } = c;
  const lex = findingLexicon(f.type);
  const side = sideWord(c, f.side);
  const terr = f.territory ? anatomy(c, f.territory) : '';
  const region = f.region ? anatomy(c, f.region).replace(/ lobe$/, '') : '';
  let loc = f.location;
  if (f.type === 'acute_infarct' && f.territory && f.territory !== 'deep') {
    loc = rng.pick(set === 'train'
      ? [`${side} ${terr} territory`, `${side} ${region} lobe (${terr} territory)`.replace(' lobe lobe', ' lobe'), `${side} ${terr} territory, ${region} region`]
      : [`${side} ${region} cortex and white matter`, `${terr} distribution on the ${side}`]);
  } else if (f.side === 'left' || f.side === 'right') {
    loc = loc.replace(/^(left|right)\b/, side || f.side);
  }
  const size = sizeText(c, f.size_mm);
  // a size before a noun ("a 27 mm lesion") takes only a plain measurement
  const sizeAdj = rng.chance(0.7) ? `${Math.round(f.size_mm)} mm` : `${(f.size_mm / 10).toFixed(1)} cm`;
  const shiftMm = f.midline_shift_mm ?? 0;
  const shift = shiftMm >= 2
    ? rng.pick(set === 'train' ? [` and ${Math.round(shiftMm)} mm of midline shift to the ${f.side === 'left' ? 'right' : 'left'}`, `, with ${Math.round(shiftMm)} mm midline shift`] : [`; the midline is displaced by ${Math.round(shiftMm)} mm`])
    : rng.pick(set === 'train' ? [', without significant midline shift', ''] : ['; no midline displacement', '']);
  const stages = (lex as { stages?: Record<string, Split> }).stages;
  const stage = f.stage && stages?.[f.stage] ? pick(c, stages[f.stage]) : '';
  const stageWord = f.stage === 'acute' ? 'acute' : f.stage === 'early_subacute' ? 'early subacute' : 'late subacute';
  const big = f.size_mm > 30;
  const grade = f.grade ?? 1;
  const count = f.count ?? rng.int(6, 20);
  const name = pickName(c, lex.names.formal);
  const shortPool: Split = {
    train: [...lex.names.short.train, ...lex.names.abbreviation.train],
    heldout: [...lex.names.short.heldout, ...lex.names.abbreviation.heldout],
  };
  const short = shortPool.train.length + shortPool.heldout.length > 0 ? pickName(c, shortPool) : name;
  const descriptors = (lex as { descriptors?: Split }).descriptors;
  const descriptor = descriptors ? pick(c, descriptors) : '';
  const optional = (key: string): string => {
    const split = (lex as Record<string, unknown>)[key] as Split | undefined;
    return split ? pick(c, split) : '';
  };
  return {
    loc,
    side,
    side_of: side ? `on the ${side}` : '',
    region,
    terr,
    size,
    size_adj: sizeAdj,
    a_size_adj: article(sizeAdj),
    hedge: pick(c, LEXICON.hedges),
    descriptor,
    a_descriptor: descriptor ? article(descriptor) : 'an',
    name,
    a_name: withArticle(name),
    is: verb(name),
    short,
    stage,
    stage_text: stage,
    stage_word: stageWord,
    bloom_seq: rng.pick(['EPI', 'DWI', 'SWI', 'gradient echo']),
    effect: big ? rng.pick(set === 'train' ? [' and local mass effect', ', causing local mass effect'] : ['; there is regional sulcal effacement']) : '',
    necrosis: rng.chance(0.5) ? (set === 'train' ? ' and a central area of necrosis' : ' and central cystic change') : '',
    necrosis_adj: rng.chance(0.5) ? ' and necrotic' : '',
    shift,
    shift_imp: shiftMm >= 2 ? (set === 'train' ? ` and ${Math.round(shiftMm)} mm midline shift` : `, ${Math.round(shiftMm)} mm shift of the midline`) : '',
    evans: (f.evans_index ?? 0.35).toFixed(2),
    span: String(Math.round(f.size_mm)),
    fourth: f.location.includes('fourth') ? (set === 'train' ? ' and the fourth ventricle is also enlarged' : ', including the fourth ventricle') : '',
    pv: f.periventricular_oedema ? optional('pv') : '',
    pv_imp: f.periventricular_oedema ? (set === 'train' ? ' with transependymal oedema' : ' with periventricular interstitial oedema') : '',
    comm: f.location.includes('fourth') ? 'communicating' : 'obstructive',
    comm_h: f.location.includes('fourth') ? 'probably communicating' : 'likely obstructive at the level of the aqueduct',
    grade: String(grade),
    count: grade === 1 ? 'a few' : grade === 2 ? 'multiple' : 'numerous confluent',
    conf: grade === 1 ? 'scattered punctate' : grade === 2 ? 'multiple, beginning to confluence' : 'extensive confluent',
    conf_cap: grade === 1 ? 'Scattered punctate' : grade === 2 ? 'Multiple' : 'Extensive confluent',
    sev: grade === 1 ? 'mild' : grade === 2 ? 'moderate' : 'severe',
    dist: f.location !== 'generalised' && f.type === 'atrophy' ? `, ${f.location}` : '',
    ...(f.type === 'multiple_sclerosis'
      ? {
          count: String(count),
          count_cap: cap(String(count)),
          infra: optional('infra'),
          active: f.active ? optional('active') : '',
          active_imp: f.active ? (set === 'train' ? ', with features of activity' : '; some lesions appear active') : '',
        }
      : {}),
    oedema: f.oedema ? (set === 'train' ? ', with vasogenic oedema in the adjacent brain' : '; the adjacent parenchyma is oedematous') : '',
  };
}

/** A sentence from a template that is not one of the evaluation's phrasings (re-drawn when it would be). */
function sentence(c: Ctx, templates: Split, v: () => Fill): string {
  for (let i = 0; i < 12; i++) {
    const s = cap(fill(pick(c, templates), v()));
    if (!isEvaluationPhrasing(s) && !isEvaluationPhrasing(s.replace(/\.$/, ''))) return s;
  }
  return cap(fill(entries(templates, c.set)[0]!, v()));
}

const ORDER: AnyFinding[] = ['haemorrhage', 'acute_infarct', 'mass', 'meningioma', 'hydrocephalus', 'multiple_sclerosis', 'white_matter_disease', 'atrophy'];

export interface ReportContext {
  sequences: Sequence[];
  fieldT: number;
}

/** Negation of an absent finding: a listed sentence, or a negation template with one of its negatable names. */
function negation(c: Ctx, type: AnyFinding): string {
  const lex = findingLexicon(type);
  if (c.rng.chance(0.6)) return pick(c, lex.negations);
  const name = pickName(c, lex.negatable);
  return sentence(c, LEXICON.negation.templates, () => ({ name, is: verb(name) }));
}

/** "The {structure} {is normal}.": a normal statement about one of the lexicon's structures. */
function structureStatement(c: Ctx): string {
  const structure = pick(c, LEXICON.structures);
  const plural = verb(structure) === 'are' || /\b(thalami|hippocampi|amygdalae|meati|putamina|nuclei|ganglia|sulci|meninges)$/i.test(structure);
  const predicate = pick(c, plural ? LEXICON.normalPredicates.plural : LEXICON.normalPredicates.singular);
  return `${cap(/^[A-Z]/.test(structure) && !/^(Sylvian|Meckel)/.test(structure) ? structure : `the ${structure}`)} ${predicate}.`;
}

/** An incidental finding the images do not contain, at a site where it occurs. */
function incidentalStatement(c: Ctx): string {
  const site = c.rng.pick(Object.keys(LEXICON.incidentalThings));
  const thing = pick(c, LEXICON.incidentalThings[site]!);
  return cap(fill(pick(c, LEXICON.incidentalTemplates), { incidental: thing, a_incidental: article(thing), incidental_site: site }));
}

function technique(c: Ctx, rc: ReportContext): string {
  const seqs = [...new Set(rc.sequences.filter((s) => s !== 'LOCALIZER'))];
  const names = seqs.map((s) => (LEXICON.sequenceNames[s] ? pick(c, LEXICON.sequenceNames[s]!) : s));
  const list = c.set === 'train' ? names.join(', ') : names.join('; ');
  return fill(pick(c, LEXICON.technique), { field: String(rc.fieldT), sequences: list });
}

export function writeReport(labels: StudyLabels, rng: Rng, set: PhrasingSet, rc: ReportContext): string {
  const c: Ctx = { rng, set };
  const known = (t: AnyFinding) => (LEXICON.findings[t] ? true : false);
  const findings = ([...labels.findings] as Label[]).filter((f) => known(f.type)).sort((a, b) => ORDER.indexOf(a.type) - ORDER.indexOf(b.type));
  const present = new Set(findings.map((f) => f.type));

  // FINDINGS: positive statements first (the same random draw for a finding's Findings and Impression lines), then
  // negatives for a random subset of absent findings, normal-structure statements, sometimes an incidental finding.
  const lines: string[] = [];
  const filled = findings.map((f) => values(c, f));
  findings.forEach((f, i) => lines.push(sentence(c, findingLexicon(f.type).findings, () => filled[i]!)));
  const absent = ORDER.filter((t) => !present.has(t) && known(t));
  const negCount = labels.normal ? rng.int(3, absent.length) : rng.int(1, Math.max(1, absent.length - 2));
  for (const t of rng.shuffle(absent).slice(0, negCount)) {
    // a mass, bleed or enlarged ventricles already bring mass effect or ventricular size into the text
    if ((t === 'mass' || t === 'meningioma') && (present.has('haemorrhage') || present.has('hydrocephalus') || present.has('mass') || present.has('meningioma'))) continue;
    if (t === 'atrophy' && present.has('hydrocephalus')) continue;
    if (t === 'hydrocephalus' && present.has('atrophy')) continue;
    if ((t === 'white_matter_disease' && present.has('multiple_sclerosis')) || (t === 'multiple_sclerosis' && present.has('white_matter_disease'))) continue;
    lines.push(negation(c, t));
  }
  const normalCount = rng.int(1, labels.normal ? 4 : 2);
  for (let i = 0; i < normalCount; i++) lines.push(rng.chance(0.5) ? pick(c, LEXICON.normal.statements) : structureStatement(c));
  if (rng.chance(0.35)) lines.push(rng.chance(0.4) ? pick(c, LEXICON.incidental) : incidentalStatement(c));
  const findingsText = set === 'train' && rng.chance(0.5) ? lines.join('\n') : lines.join(' ');

  // IMPRESSION: one line per finding (sometimes hedged), sometimes the pertinent negatives
  let impression: string[];
  if (labels.normal) {
    impression = [pick(c, LEXICON.normal.impressions)];
  } else {
    impression = findings.map((f, i) => sentence(c, findingLexicon(f.type).impression, () => filled[i]!));
    if (!present.has('acute_infarct') && rng.chance(0.4)) impression.push(negation(c, 'acute_infarct'));
    if (!present.has('haemorrhage') && rng.chance(0.3)) impression.push(negation(c, 'haemorrhage'));
  }
  const style = rng.int(0, 2);
  const impressionText = impression.length === 1 || style === 0 ? impression.join(' ') : style === 1 ? impression.map((l, i) => `${i + 1}. ${l}`).join('\n') : impression.map((l) => `- ${l}`).join('\n');

  const heading = (key: string) => pick(c, LEXICON.sections[key]!);
  const head: string[] = [];
  if (rng.chance(0.7)) head.push(`${heading('indication')}: ${pick(c, LEXICON.indications)}`);
  if (rng.chance(0.8)) head.push(`${heading('technique')}: ${technique(c, rc)}`);
  if (rng.chance(0.5)) head.push(`${heading('comparison')}: ${pick(c, LEXICON.comparisons)}`);
  return [...head, `${heading('findings')}:\n${findingsText}`, `${heading('impression')}:\n${impressionText}`].join('\n\n');
}

// Section headings as the lexicon lists them (hospitals differ: FINDINGS or REPORT, IMPRESSION or CONCLUSION ...),
// each at the start of a line and followed by a colon. The training recipe splits reports on the same lists.
const headingRe = (key: string): RegExp => {
  const s = LEXICON.sections[key]!;
  const names = [...s.train, ...s.heldout].map((h) => h.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^(?:${names.join('|')}):[ \\t]*$`, 'm');
};
const FINDINGS_RE = headingRe('findings');
const IMPRESSION_RE = headingRe('impression');

/** The FINDINGS and IMPRESSION sections with their headings (the clinical indication may name a finding as a question). */
export function bodyOf(text: string): string {
  const m = FINDINGS_RE.exec(text);
  return m ? text.slice(m.index) : '';
}

/** The IMPRESSION section of a report without its heading (or '' if missing). */
export function impressionOf(text: string): string {
  const m = IMPRESSION_RE.exec(text);
  return m ? text.slice(m.index + m[0].length) : '';
}

/** A report without its section headings (what tests compare sentence by sentence). */
export function withoutHeadings(text: string): string {
  return text.replace(new RegExp(FINDINGS_RE.source, 'gm'), '').replace(new RegExp(IMPRESSION_RE.source, 'gm'), '');
}

/** Every name the lexicon knows for a finding (for tests and the evaluation). */
export const namesOf = allNames;
