// Free-text neuroradiology reports written from the ground truth: indication, technique, comparison, FINDINGS
// and IMPRESSION, with varied vocabulary, laterality, measurements in mm or cm, hedging, negations of what is
// absent, incidental findings and normal-study phrasings. Two disjoint phrasing sets: 'train' and 'heldout'
// (templates and synonyms never used in training), so a text model can be tested on unseen wording.
// Also exports the lexicon (findingMentions) that tests use to check report and labels agree.
import type { Rng } from './prng';
import type { FindingLabel, FindingType, PhrasingSet, Sequence, StudyLabels } from './types';

type Phr = Record<PhrasingSet, string[]>;
type Fill = Record<string, string>;

const fill = (t: string, v: Fill): string => t.replace(/\{(\w+)\}/g, (_, k: string) => v[k] ?? '');
const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

function sizeText(rng: Rng, set: PhrasingSet, mm: number, second?: number): string {
  const cm = (v: number): string => (v / 10).toFixed(1);
  const r = Math.round(mm);
  const r2 = second ? Math.round(second) : Math.round(mm * rng.uniform(0.6, 0.9));
  if (set === 'train') {
    return rng.pick([`${r} mm`, `${cm(mm)} cm`, `${r} x ${r2} mm`, `up to ${r} mm`, `approximately ${r} mm`]);
  }
  return rng.pick([`${cm(mm)} x ${cm(r2)} cm`, `about ${cm(mm)} cm`, `${r}mm in maximal dimension`, `roughly ${r} by ${r2} mm`]);
}

const HEDGE: Phr = {
  train: ['consistent with', 'in keeping with', 'most likely representing', 'suggestive of', 'likely'],
  heldout: ['compatible with', 'favoured to represent', 'characteristic of', 'typical of'],
};

// ---------- positive statements, per finding ----------

const INFARCT_FINDINGS: Phr = {
  train: [
    'There is an area of restricted diffusion in the {loc}, bright on DWI with corresponding low ADC values, measuring {size}, {hedge} an acute infarct.',
    'Restricted diffusion involving the {region} {side_of} measuring {size}, with low signal on the ADC map and subtle T2/FLAIR hyperintensity, {hedge} acute infarction in the {terr} territory.',
    'A {size} focus of diffusion restriction is present in the {loc}, {hedge} an acute ischaemic infarct.',
    'DWI hyperintensity with matching ADC hypointensity in the {loc} ({size}) indicates acute infarction.',
      'Focal high signal on the b1000 images in the {loc} with corresponding ADC hypointensity ({size}), {hedge} acute infarction.',
    'The {loc} shows restricted diffusion over {size} with mild swelling of the involved gyri, {hedge} an acute infarct.',
],
  heldout: [
    'Within the {loc} there is cortical and subcortical diffusion restriction ({size}) with reduced ADC, {hedge} acute ischemic stroke.',
    'Cytotoxic oedema is seen in the {loc}, spanning {size}, representing recent infarction.',
    'An acute ischemic lesion of {size} is present in the {loc}, hyperintense on b1000 and dark on ADC.',
  ],
};
const INFARCT_IMPRESSION: Phr = {
  train: [
    'Acute infarct in the {loc}.',
    'Acute {side} {terr} territory infarct measuring {size}.',
    'Findings {hedge} acute ischaemic infarction in the {loc}.',
    'Acute {side} {region} infarction.',
  ],
  heldout: [
    'Recent ischemic stroke, {loc}.',
    'Acute infarction involving the {loc}; no haemorrhagic transformation.',
    'Diffusion-restricting lesion in the {loc} {hedge} acute infarct.',
  ],
};
const TERRITORY: Record<string, Phr> = {
  MCA: { train: ['MCA', 'middle cerebral artery'], heldout: ['middle cerebral arterial', 'MCA'] },
  ACA: { train: ['ACA', 'anterior cerebral artery'], heldout: ['anterior cerebral arterial', 'ACA'] },
  PCA: { train: ['PCA', 'posterior cerebral artery'], heldout: ['posterior cerebral arterial', 'PCA'] },
  deep: { train: ['lenticulostriate', 'perforator'], heldout: ['deep perforating', 'small vessel perforator'] },
};

const HAEM_FINDINGS: Phr = {
  train: [
    'There is an intraparenchymal haematoma in the {loc} measuring {size}, {stage}, with a thin rim of surrounding oedema.',
    'A {size} intracerebral haemorrhage is present in the {loc}. {stage_cap}. There is surrounding vasogenic oedema{effect}.',
    'Acute haemorrhage centred in the {loc}, measuring {size}, with blooming on the EPI images{effect}.',
      'In the {loc} there is a {size} haematoma, {stage}, with surrounding oedema{effect}.',
],
  heldout: [
    'A parenchymal bleed of {size} occupies the {loc}; {stage}, with perilesional oedema{effect}.',
    'Blood products are present within the {loc} forming a hematoma of {size}{effect}.',
    'Intra-axial hemorrhage in the {loc} ({size}), {stage}.',
  ],
};
const HAEM_STAGE: Record<string, Phr> = {
  acute: { train: ['markedly hypointense on T2 in keeping with acute blood products', 'T2 dark, consistent with deoxyhaemoglobin'], heldout: ['showing low T2 signal of acute blood', 'T2 hypointense in keeping with an acute bleed'] },
  early_subacute: { train: ['T1 hyperintense and T2 hypointense, consistent with early subacute blood', 'with intracellular methaemoglobin signal'], heldout: ['with signal characteristics of early subacute blood', 'T1 bright and T2 dark'] },
  late_subacute: { train: ['T1 and T2 hyperintense, consistent with late subacute blood products', 'with extracellular methaemoglobin signal'], heldout: ['bright on both T1 and T2 in keeping with late subacute blood', 'showing late subacute signal'] },
};
const HAEM_IMPRESSION: Phr = {
  train: [
    'Intraparenchymal haemorrhage in the {loc} measuring {size}.',
    '{Stage} intracerebral haematoma, {loc}.',
    '{size} haemorrhage in the {loc}{effect}.',
  ],
  heldout: [
    'Hemorrhage within the {loc} ({size}).',
    'Intracerebral bleed, {loc}, {size}.',
    '{Stage} parenchymal hematoma of the {loc}.',
  ],
};

const MASS_FINDINGS: Phr = {
  train: [
    'There is a {size} intra-axial mass in the {loc} with heterogeneous T2 signal{necrosis}, surrounded by extensive vasogenic oedema{shift}.',
    'A heterogeneous mass lesion centred in the {loc} measures {size}{necrosis}. There is surrounding vasogenic oedema with local mass effect{shift}.',
    'Space-occupying lesion in the {loc} measuring {size}, with finger-like vasogenic oedema in the adjacent white matter{shift}.',
      'Centred in the {loc} is a {size} lesion of mixed T2 signal{necrosis} with surrounding vasogenic oedema{shift}, {hedge} a mass.',
],
  heldout: [
    'An infiltrative tumour occupies the {loc}, {size} across{necrosis}, with considerable perilesional white matter oedema{shift}.',
    'Within the {loc} is a neoplasm of {size} with surrounding oedema{shift}.',
    'A solid{necrosis_adj} mass of {size} arises in the {loc}, with vasogenic oedema tracking through the white matter{shift}.',
  ],
};
const MASS_IMPRESSION: Phr = {
  train: [
    '{Size} mass in the {loc} with vasogenic oedema{shift_imp}, {hedge} a primary neoplasm or metastasis.',
    'Intra-axial mass lesion in the {loc}{shift_imp}. Further characterisation with contrast-enhanced imaging is recommended.',
    'Mass in the {loc} with surrounding oedema and mass effect{shift_imp}.',
  ],
  heldout: [
    'Tumour of the {loc} ({size}) with perilesional oedema{shift_imp}; contrast-enhanced MRI advised.',
    'Neoplastic lesion in the {loc}{shift_imp}.',
    '{Size} intra-axial neoplasm, {loc}, {hedge} high-grade glioma or metastasis.',
  ],
};

const HYDRO_FINDINGS: Phr = {
  train: [
    'The lateral and third ventricles are dilated{fourth}, out of proportion to the cerebral sulci, with an Evans index of {evans}.{pv}',
    'There is ventriculomegaly involving the lateral and third ventricles{fourth} with effacement of the cortical sulci (Evans index {evans}).{pv}',
    'Dilatation of the lateral ventricles with rounding of the frontal horns and enlargement of the third ventricle{fourth}. The sulci are effaced.{pv}',
      'Enlarged lateral and third ventricles{fourth} with dilated temporal horns; the cortical sulci are narrow. Evans index {evans}.{pv}',
],
  heldout: [
    'Marked ventricular enlargement is present (frontal horn span {span} mm, Evans ratio {evans}){fourth}, disproportionate to the sulcal spaces.{pv}',
    'The ventricular system is enlarged{fourth}, with ballooning of the frontal and temporal horns; sulci are not widened.{pv}',
  ],
};
const HYDRO_PV: Phr = {
  train: [' There is periventricular T2/FLAIR hyperintensity in keeping with transependymal CSF flow.', ' Smooth periventricular FLAIR signal suggests transependymal oedema.'],
  heldout: [' A smooth periventricular halo on FLAIR indicates interstitial oedema from transependymal flow.', ' Periventricular high signal reflects transependymal seepage.'],
};
const HYDRO_IMPRESSION: Phr = {
  train: ['Hydrocephalus{pv_imp}.', 'Dilated lateral and third ventricles out of proportion to the sulci, {hedge} hydrocephalus{pv_imp}.', '{Comm} hydrocephalus{pv_imp}.'],
  heldout: ['Ventriculomegaly disproportionate to sulcal size, compatible with hydrocephalus{pv_imp}.', 'Hydrocephalus, {comm_h}{pv_imp}.'],
};

const WMD_FINDINGS: Phr = {
  train: [
    '{Count} T2/FLAIR hyperintense foci in the periventricular and deep white matter, the largest measuring {size}, {hedge} chronic small vessel ischaemic change (Fazekas grade {grade}).',
    'There are {conf} white matter hyperintensities in the periventricular and subcortical white matter (Fazekas {grade}), {hedge} small vessel disease.',
    'Periventricular and deep white matter FLAIR hyperintensities are present, {conf}, {hedge} microangiopathic change. Fazekas grade {grade}.',
      'Patchy FLAIR hyperintensities in the cerebral white matter, {conf}, the largest {size}, {hedge} small vessel ischaemic change (Fazekas {grade}).',
],
  heldout: [
    'Scattered and {conf} leukoaraiosis is seen in the cerebral white matter (Fazekas {grade}), the largest focus {size}.',
    'The cerebral white matter shows {conf} FLAIR signal abnormality typical of chronic small-vessel disease, Fazekas {grade}.',
  ],
};
const WMD_IMPRESSION: Phr = {
  train: ['Chronic small vessel ischaemic change, Fazekas grade {grade}.', '{Sev} white matter hyperintensities {hedge} small vessel disease.', 'Small vessel disease (Fazekas {grade}).'],
  heldout: ['{Sev} leukoaraiosis of presumed microvascular origin.', 'Cerebral small-vessel disease, Fazekas {grade}.'],
};

const ATROPHY_FINDINGS: Phr = {
  train: [
    'There is generalised cerebral volume loss with prominence of the cortical sulci and ventricles, more than expected for the patient\'s age{dist}.',
    'Diffuse cerebral atrophy with widened sulci and proportionate prominence of the ventricles{dist}.',
    'The sulci and ventricles are prominent, in keeping with global atrophy{dist}.',
      'Generalised cerebral volume loss: the cortical sulci are widened and the ventricles are prominent in proportion{dist}.',
],
  heldout: [
    'Parenchymal volume is reduced throughout, with sulcal widening and ex vacuo ventricular prominence{dist}.',
    'Cerebral involution beyond that expected for age: the sulci are widened and the ventricles prominent{dist}.',
  ],
};
const ATROPHY_IMPRESSION: Phr = {
  train: ['Generalised cerebral atrophy{dist}.', 'Cerebral volume loss, more than expected for age.', 'Global atrophy.'],
  heldout: ['Advanced parenchymal volume loss for age{dist}.', 'Diffuse brain atrophy.'],
};

// ---------- negations and normal statements ----------

const NEG: Record<FindingType, Phr> = {
  acute_infarct: {
    train: ['No restricted diffusion to suggest acute infarction.', 'No acute infarct.', 'There is no diffusion restriction.', 'No evidence of acute ischaemia on diffusion-weighted imaging.', 'DWI shows no evidence of acute infarction.',
],
    heldout: ['Diffusion imaging is negative for acute ischemic stroke.', 'No cytotoxic oedema.', 'Absence of diffusion restriction.'],
  },
  haemorrhage: {
    train: ['No intracranial haemorrhage.', 'No evidence of haemorrhage.', 'There is no intracranial blood.', 'No intra- or extra-axial haemorrhage.',
],
    heldout: ['Negative for intracranial hemorrhage.', 'No bleed is identified.', 'No blood products are seen.'],
  },
  mass: {
    train: ['No mass lesion.', 'No intracranial mass, midline shift or mass effect.', 'There is no space-occupying lesion.', 'No mass or mass effect.',
],
    heldout: ['No tumour or mass effect is demonstrated.', 'No neoplasm is seen.'],
  },
  hydrocephalus: {
    train: ['No hydrocephalus.', 'The ventricles are normal in size; no hydrocephalus.'],
    heldout: ['The ventricular system is of normal calibre.', 'No ventriculomegaly.'],
  },
  white_matter_disease: {
    train: ['No significant white matter signal abnormality.', 'The white matter is normal in signal.', 'No white matter hyperintensities of note.',
],
    heldout: ['White matter signal is preserved.', 'No leukoaraiosis.'],
  },
  atrophy: {
    train: ['Brain volume is appropriate for age.', 'No significant cerebral atrophy.'],
    heldout: ['Parenchymal volume is within normal limits for age.', 'Sulcal pattern is age-appropriate.'],
  },
};

const NORMAL_EXTRA: Phr = {
  train: [
    'Normal grey-white matter differentiation.',
    'No extra-axial collection.',
    'The posterior fossa structures are unremarkable.',
    'Normal major intracranial arterial flow voids.',
    'The pituitary gland and craniocervical junction are unremarkable.',
    'The brainstem and cerebellum appear normal.',
      'The basal ganglia and thalami are normal.',
    'The corpus callosum is intact.',
    'No abnormality at the craniocervical junction.',
],
  heldout: [
    'Cortical ribbon and deep grey nuclei are of normal signal.',
    'There are no subdural or extradural collections.',
    'The cerebellum, brainstem and fourth ventricle look normal.',
    'Vascular flow voids are preserved.',
  ],
};

const INCIDENTAL: Phr = {
  train: [
    'Incidental mucosal thickening in the left maxillary sinus.',
    'Mild mucosal thickening of the ethmoid air cells.',
    'Small pineal cyst, of no clinical significance.',
    'Incidental mega cisterna magna.',
    'Fluid in the right mastoid air cells.',
    'Prominent perivascular spaces in the basal ganglia.',
    'Cavum septum pellucidum, a normal variant.',
    'The visualised orbits, paranasal sinuses and mastoid air cells are clear.',
  ],
  heldout: [
    'Retention cyst in the right maxillary antrum.',
    'Partial opacification of the left mastoid tip.',
    'A small arachnoid cyst in the left middle cranial fossa, incidental.',
    'Orbits and paranasal sinuses are unremarkable.',
  ],
};

const NORMAL_IMPRESSION: Phr = {
  train: ['Normal MRI brain.', 'No acute intracranial abnormality.', 'Unremarkable MRI of the brain.', 'No intracranial abnormality demonstrated.', 'Normal study.', 'Normal appearances of the brain for age.',
    'No acute intracranial pathology.',
],
  heldout: ['MR brain within normal limits.', 'No significant intracranial pathology.', 'Normal appearances of the brain.'],
};

const INDICATION: Phr = {
  train: ['Headache.', 'Sudden onset weakness.', '? stroke.', 'Dizziness and unsteadiness.', 'Confusion.', 'Seizure.', 'Memory decline.', 'Fall.', 'Visual disturbance.', 'Follow-up.'],
  heldout: ['Acute neurological deficit.', 'New onset seizures.', 'Cognitive impairment, query cause.', 'Worsening headaches.', 'Gait disturbance.'],
};

const COMPARISON: Phr = {
  train: ['None.', 'No prior imaging available.', 'CT head from the same day.', 'None available.'],
  heldout: ['No previous studies.', 'Prior CT reviewed.', 'Not available.'],
};

// ---------- the lexicon: which findings does a text assert? ----------

const LEXICON: Record<FindingType, RegExp> = {
  acute_infarct: /\binfarct|acute ischa?emi|ischa?emic stroke|\bstroke\b|restricted diffusion|diffusion restriction|diffusion-restricting|cytotoxic o?edema/i,
  haemorrhage: /ha?emorrhag|ha?ematoma|\bbleed\b|blood products|intracranial blood|acute blood/i,
  mass: /\bmass\b(?! effect)|tumou?r|neoplas|space-occupying|glioma|metastas/i,
  hydrocephalus: /hydrocephal|ventriculomegaly|ventricular enlargement|ventricles are dilated|dilatation of the lateral ventricles/i,
  white_matter_disease: /white matter hyperintensit|small.vessel|microangiopath|leukoaraiosis|fazekas|t2\/flair hyperintense foci|white matter flair hyperintensit/i,
  atrophy: /atroph|volume loss|involution|sulcal widening|widened sulci|sulci are widened|prominence of the cortical sulci/i,
};
const NEGATION = /\b(no|not|without|negative for|absence of|nor|free of)\b/i;

/** Finding types a text asserts: a lexicon term in a sentence or clause with no negation cue before it. */
export function findingMentions(text: string): Set<FindingType> {
  const out = new Set<FindingType>();
  const clauses = text.split(/(?<=[.;:])\s+|\n+/);
  for (const clause of clauses) {
    for (const [type, re] of Object.entries(LEXICON) as Array<[FindingType, RegExp]>) {
      const m = re.exec(clause);
      if (!m) continue;
      const before = clause.slice(0, m.index);
      if (!NEGATION.test(before)) out.add(type);
    }
  }
  return out;
}

/** FINDINGS and IMPRESSION sections (the clinical indication may name a finding as a question). */
export function bodyOf(text: string): string {
  const i = text.indexOf('FINDINGS:');
  return i < 0 ? '' : text.slice(i);
}

/** The IMPRESSION section of a report (or '' if missing). */
export function impressionOf(text: string): string {
  const i = text.indexOf('IMPRESSION:');
  return i < 0 ? '' : text.slice(i + 'IMPRESSION:'.length);
}

// ---------- writing ----------

const ORDER: FindingType[] = ['haemorrhage', 'acute_infarct', 'mass', 'hydrocephalus', 'white_matter_disease', 'atrophy'];

interface Ctx {
  rng: Rng;
  set: PhrasingSet;
}

function pickP(c: Ctx, p: Phr): string {
  return c.rng.pick(p[c.set]);
}

function values(c: Ctx, f: FindingLabel): Fill {
  const { rng, set } = c;
  const side = f.side === 'left' || f.side === 'right' ? f.side : '';
  const terr = f.territory ? pickP(c, TERRITORY[f.territory]!) : '';
  let loc = f.location;
  if (f.type === 'acute_infarct' && f.territory && f.territory !== 'deep') {
    loc = rng.pick(set === 'train'
      ? [`${side} ${terr} territory`, `${side} ${f.region ?? ''} lobe (${terr} territory)`.replace(' lobe lobe', ' lobe'), `${side} ${terr} territory, ${f.region ?? ''} region`]
      : [`${side} ${f.region ?? ''} cortex and white matter`, `${terr} distribution on the ${side}`]);
  }
  const size = sizeText(rng, set, f.size_mm);
  const shiftMm = f.midline_shift_mm ?? 0;
  const shift = shiftMm >= 2
    ? rng.pick(set === 'train' ? [` and ${Math.round(shiftMm)} mm of midline shift to the ${f.side === 'left' ? 'right' : 'left'}`, `, with ${Math.round(shiftMm)} mm midline shift`] : [`; the midline is displaced by ${Math.round(shiftMm)} mm`])
    : rng.pick(set === 'train' ? [', without significant midline shift', ''] : ['; no midline displacement', '']);
  const stage = f.stage ? pickP(c, HAEM_STAGE[f.stage]!) : '';
  const stageWord = f.stage === 'acute' ? 'acute' : f.stage === 'early_subacute' ? 'early subacute' : 'late subacute';
  const big = f.size_mm > 30;
  const grade = f.grade ?? 1;
  return {
    loc,
    side,
    side_of: side ? `on the ${side}` : '',
    region: f.region ?? '',
    terr,
    size,
    Size: cap(size),
    hedge: pickP(c, HEDGE),
    stage,
    stage_cap: cap(stage),
    Stage: cap(stageWord),
    effect: big ? rng.pick(set === 'train' ? [' and local mass effect', ', causing local mass effect'] : ['; there is regional sulcal effacement']) : '',
    necrosis: rng.chance(0.5) ? (set === 'train' ? ' and a central area of necrosis' : ' and central cystic change') : '',
    necrosis_adj: rng.chance(0.5) ? ' and necrotic' : '',
    shift,
    shift_imp: shiftMm >= 2 ? (set === 'train' ? ` and ${Math.round(shiftMm)} mm midline shift` : `, ${Math.round(shiftMm)} mm shift of the midline`) : '',
    evans: (f.evans_index ?? 0.35).toFixed(2),
    span: String(Math.round(f.size_mm)),
    fourth: f.location.includes('fourth') ? (set === 'train' ? ' and the fourth ventricle is also enlarged' : ', including the fourth ventricle') : '',
    pv: f.periventricular_oedema ? pickP(c, HYDRO_PV) : '',
    pv_imp: f.periventricular_oedema ? (set === 'train' ? ' with transependymal oedema' : ' with periventricular interstitial oedema') : '',
    Comm: f.location.includes('fourth') ? 'Communicating' : 'Obstructive',
    comm_h: f.location.includes('fourth') ? 'probably communicating' : 'likely obstructive at the level of the aqueduct',
    grade: String(grade),
    Count: grade === 1 ? 'A few' : grade === 2 ? 'Multiple' : 'Numerous confluent',
    conf: grade === 1 ? 'scattered punctate' : grade === 2 ? 'multiple, beginning to confluence' : 'extensive confluent',
    Sev: grade === 1 ? 'Mild' : grade === 2 ? 'Moderate' : 'Severe',
    dist: f.location !== 'generalised' ? `, ${f.location}` : '',
  };
}

const FINDINGS_TEMPLATES: Record<FindingType, [Phr, Phr]> = {
  acute_infarct: [INFARCT_FINDINGS, INFARCT_IMPRESSION],
  haemorrhage: [HAEM_FINDINGS, HAEM_IMPRESSION],
  mass: [MASS_FINDINGS, MASS_IMPRESSION],
  hydrocephalus: [HYDRO_FINDINGS, HYDRO_IMPRESSION],
  white_matter_disease: [WMD_FINDINGS, WMD_IMPRESSION],
  atrophy: [ATROPHY_FINDINGS, ATROPHY_IMPRESSION],
};

export interface ReportContext {
  sequences: Sequence[];
  fieldT: number;
}

export function writeReport(labels: StudyLabels, rng: Rng, set: PhrasingSet, rc: ReportContext): string {
  const c: Ctx = { rng, set };
  const present = new Set(labels.findings.map((f) => f.type));
  const findings = [...labels.findings].sort((a, b) => ORDER.indexOf(a.type) - ORDER.indexOf(b.type));

  const seqNames = [...new Set(rc.sequences.filter((s) => s !== 'LOCALIZER'))].map((s) =>
    s === 'T1' ? (set === 'train' ? 'sagittal T1' : 'T1-weighted') : s === 'T2' ? (set === 'train' ? 'axial T2' : 'T2-weighted') : s === 'FLAIR' ? (set === 'train' ? 'axial FLAIR' : 'FLAIR') : s === 'DWI' ? (set === 'train' ? 'DWI' : 'diffusion-weighted') : 'ADC map');
  const technique = set === 'train'
    ? rng.pick([`Multiplanar multisequence MRI of the brain at ${rc.fieldT} T including ${seqNames.join(', ')}.`, `${seqNames.join(', ')} sequences of the brain without contrast.`, `Non-contrast MRI brain: ${seqNames.join(', ')}.`])
    : rng.pick([`Unenhanced ${rc.fieldT}T MR of the head with ${seqNames.join(', ')} imaging.`, `Sequences: ${seqNames.join('; ')}. No gadolinium given.`]);

  // FINDINGS: positive statements first, then negatives for absent findings (a random subset, as radiologists
  // do), normal-structure statements, and sometimes an incidental finding
  const lines: string[] = [];
  for (const f of findings) lines.push(fill(pickP(c, FINDINGS_TEMPLATES[f.type][0]), values(c, f)));
  const absent = ORDER.filter((t) => !present.has(t));
  const negCount = labels.normal ? rng.int(3, absent.length) : rng.int(1, Math.max(1, absent.length - 1));
  for (const t of rng.shuffle(absent).slice(0, negCount)) {
    // an acute mass or bleed already brings mass effect into the text: skip the contradictory negative
    if (t === 'mass' && (present.has('haemorrhage') || present.has('hydrocephalus'))) continue;
    if (t === 'atrophy' && present.has('hydrocephalus')) continue;
    if (t === 'hydrocephalus' && present.has('atrophy')) continue;
    lines.push(pickP(c, NEG[t]));
  }
  const extras = rng.shuffle(NORMAL_EXTRA[set]).slice(0, rng.int(1, labels.normal ? 4 : 2));
  lines.push(...extras);
  if (rng.chance(0.35)) lines.push(pickP(c, INCIDENTAL));
  const findingsText = set === 'train' && rng.chance(0.5) ? lines.join('\n') : lines.join(' ');

  // IMPRESSION
  let impression: string[];
  if (labels.normal) {
    impression = [pickP(c, NORMAL_IMPRESSION)];
  } else {
    impression = findings.map((f) => cap(fill(pickP(c, FINDINGS_TEMPLATES[f.type][1]), values(c, f))));
    if (!present.has('acute_infarct') && rng.chance(0.4)) impression.push(set === 'train' ? 'No acute infarct.' : 'No acute ischemic lesion.');
    if (!present.has('haemorrhage') && rng.chance(0.3)) impression.push(set === 'train' ? 'No haemorrhage.' : 'No hemorrhage.');
  }
  const style = rng.int(0, 2);
  const impressionText = impression.length === 1 || style === 0 ? impression.join(' ') : style === 1 ? impression.map((l, i) => `${i + 1}. ${l}`).join('\n') : impression.map((l) => `- ${l}`).join('\n');

  const head: string[] = [];
  if (rng.chance(0.7)) head.push(`${set === 'train' ? rng.pick(['CLINICAL INDICATION', 'HISTORY', 'INDICATION']) : rng.pick(['CLINICAL DETAILS', 'REASON FOR STUDY'])}: ${pickP(c, INDICATION)}`);
  if (rng.chance(0.8)) head.push(`TECHNIQUE: ${technique}`);
  if (rng.chance(0.5)) head.push(`COMPARISON: ${pickP(c, COMPARISON)}`);
  return [...head, `FINDINGS:\n${findingsText}`, `IMPRESSION:\n${impressionText}`].join('\n\n');
}
