// The sequence classifier's rule table: data, not code. Rules are tried in phases (see classifier.ts):
//   1. 'header' rules on ImageType / AcquisitionContrast (set by the scanner, most reliable);
//   2. 'text' rules on the normalised SeriesDescription, then on ProtocolName (what radiographers and vendors
//      name things: Siemens t2_tse_tra, GE Ax T2 FRFSE, Philips T2W_TSE, ...);
//   3. 'physics' rules on ScanningSequence, TR/TE/TI and b-value, for series whose names say nothing.
// Within a phase the first matching rule wins, so order matters: ADC before DWI ("ep2d_diff_..._ADC"), T1-FLAIR
// before FLAIR (GE "Sag T1 FLAIR" is T1-weighted), T2* before T2 ("t2_fl2d_hemo"), phase before SWI (an SWI
// acquisition's phase image carries the same names), exclusions early.
// Text is normalised before matching: lower case, every character other than a-z 0-9 * becomes one space,
// so `tok('t2 tse')` matches "T2_TSE", "t2-tse" and "Ax T2 TSE" alike.

/** What a series is, as radiologists say it. DWI_B0 is the b=0 part of a diffusion series. */
export const SERIES_SEQUENCES = ['T1', 'T2', 'FLAIR', 'DWI', 'ADC', 'SWI', 'DWI_B0', 'LOCALISER', 'OTHER'] as const;
export type SeriesSequence = (typeof SERIES_SEQUENCES)[number];

type Range = readonly [number, number];

export interface ClassifierRule {
  id: string;
  sequence: SeriesSequence;
  phase: 'header' | 'text' | 'physics';
  /** Every pattern must match the normalised text (description, or protocol name). */
  text?: readonly RegExp[];
  /** The rule does not match when any of these matches the normalised SeriesDescription or ProtocolName (any phase). */
  notNames?: readonly RegExp[];
  /** Any of these values in ImageType (or Enhanced MR FrameType). */
  imageType?: readonly string[];
  /** Any of these AcquisitionContrast values (Enhanced MR). */
  acquisitionContrast?: readonly string[];
  /** Any of these in ScanningSequence (SE, IR, GR, EP, RM). */
  scanning?: readonly string[];
  /** None of these in ScanningSequence. */
  notScanning?: readonly string[];
  /** Inclusive ranges; a rule with a range does not match when the attribute is absent. */
  tr?: Range;
  te?: Range;
  ti?: Range;
  b?: Range;
  /** Why the rule exists (shown in docs/imaging.md). */
  why: string;
}

/** Whole-token alternatives: tok('t2 tse', 'frfse') matches those words anywhere in the normalised text. */
export function tok(...alternatives: string[]): RegExp {
  const esc = alternatives.map((a) => a.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`(?:^| )(?:${esc.join('|')})(?= |$)`);
}

const INF = Number.POSITIVE_INFINITY;

export const CLASSIFIER_RULES: readonly ClassifierRule[] = [
  // ---- header: ImageType / FrameType / AcquisitionContrast -------------------------------------------------
  { id: 'it-localiser', phase: 'header', sequence: 'LOCALISER', imageType: ['LOCALIZER'], why: 'scanner-flagged localiser' },
  {
    id: 'it-phase', phase: 'header', sequence: 'OTHER', imageType: ['P', 'PHASE', 'P_FFE', 'P_SE', 'P_IR', 'R', 'I', 'R_FFE', 'I_FFE', 'REAL', 'IMAGINARY'],
    why: 'phase, real or imaginary images (Siemens ...\\P\\ND, Philips P_FFE\\P, UIH PHASE): not a magnitude image',
  },
  { id: 'it-swi', phase: 'header', sequence: 'SWI', imageType: ['SWI', 'MNIP'], why: 'Siemens SWI-processed and minimum-intensity projection images' },
  { id: 'it-diffusion-maps', phase: 'header', sequence: 'OTHER', imageType: ['FA', 'EADC', 'EXP', 'TENSOR', 'COLFA', 'TRACE_EXP'], why: 'FA / exponential ADC / tensor maps are not ADC' },
  {
    id: 'it-adc', phase: 'header', sequence: 'ADC', imageType: ['ADC'], notNames: [tok('exponential', 'eadc', 'exp')],
    why: 'Siemens/Philips DERIVED\\...\\ADC (not an exponential ADC that kept the ADC ImageType)',
  },
  { id: 'it-tracew', phase: 'header', sequence: 'DWI', imageType: ['TRACEW', 'ISOTROPIC'], why: 'Siemens TRACEW, Philips isotropic trace' },
  { id: 'ac-diffusion', phase: 'header', sequence: 'DWI', acquisitionContrast: ['DIFFUSION'], why: 'Enhanced MR acquisition contrast' },
  { id: 'ac-flair', phase: 'header', sequence: 'FLAIR', acquisitionContrast: ['FLUID_ATTENUATED'], why: 'Enhanced MR acquisition contrast' },
  { id: 'ac-t1', phase: 'header', sequence: 'T1', acquisitionContrast: ['T1'], why: 'Enhanced MR acquisition contrast' },
  { id: 'ac-t2', phase: 'header', sequence: 'T2', acquisitionContrast: ['T2'], why: 'Enhanced MR acquisition contrast' },
  { id: 'ac-t2star', phase: 'header', sequence: 'SWI', acquisitionContrast: ['T2_STAR'], why: 'Enhanced MR acquisition contrast' },
  {
    id: 'ac-other', phase: 'header', sequence: 'OTHER',
    acquisitionContrast: ['PROTON_DENSITY', 'ANGIO', 'TOF', 'PERFUSION', 'FLOW_ENCODED', 'STIR', 'TAGGING'],
    why: 'Enhanced MR acquisition contrast without an encoder',
  },

  // ---- text: SeriesDescription, then ProtocolName ----------------------------------------------------------
  {
    id: 'txt-localiser', phase: 'text', sequence: 'LOCALISER',
    text: [tok('loc', 'localiser', 'localizer', 'locator', 'scout', 'survey', 'scanogram', '3 plane', '3plane', 'tri pilot', 'tripilot', 'aascout', 'aahead scout', 'aahscout', 'pilot', 'smartbrain', 'auto align', 'autoalign', 'plan', 'planning')],
    why: 'Siemens localizer/AAHead_Scout, GE 3-Plane Loc, Philips Survey, Canon Locator, Hitachi Scanogram',
  },
  {
    id: 'txt-calibration', phase: 'text', sequence: 'OTHER',
    text: [tok('calibration', 'cal', 'asset cal', 'refscan', 'ref scan', 'sense ref', 'coil survey', 'coilsurvey', 'prescan', 'pure cal', 'b1 map', 'b0 map', 'shim')],
    why: 'coil sensitivity / reference scans',
  },
  {
    id: 'txt-phase', phase: 'text', sequence: 'OTHER',
    text: [tok('pha', 'phase', 'phs', 'filt phase', 'filtered phase', 'pha images', 'phase images', 'phase map')],
    why: 'phase image of an SWI or gradient-echo acquisition (Pha_Images, SWAN Filt_Phase, swi_tra_PHA)',
  },
  {
    id: 'txt-swi', phase: 'text', sequence: 'SWI',
    text: [tok('swi', 'swan', 'swip', 'sw', 'swi images', 'minip', 'min ip', 'mip images sw', 'mag images', 't2*', 't2 *', 't2star', 't2 star', 'hemo', 'hemosiderin', 'susc', 'susceptibility', 'medic', 'me2d', 'venobold', 'ven bold', 'mffe', 'swi3d', 'esweep', 't2 fl2d', 'fl2d t2', 't2 gre', 'gre t2', 't2 ffe', 't2 fe', 't2*w', 't2*wi', 't2* ffe', 'fsbb', 'bsi')],
    why: 'SWI/SWAN/SWIp, Canon FSBB, Hitachi BSI and 2D T2* gradient echo (t2_fl2d_hemo, T2* FFE, Ax T2* GRE)',
  },
  {
    id: 'txt-exclude', phase: 'text', sequence: 'OTHER',
    text: [tok('perf', 'perfusion', 'dsc', 'dce', 'asl', 'pcasl', 'pasl', 'bold', 'fmri', 'resting', 'rs fmri', 'tof', 'mra', 'angio', 'angiography', 'pc3d', 'phase contrast', 'venogram', 'mrv', 'spectro', 'spectroscopy', 'svs', 'csi', 'cine', 'dti', 'tensor', 'mddw', 'fa map', 'colfa', 'eadc', 'exp', 'exponential', 'tractography', 'dose report', 'screen save', 'screensave', 'report', 'qsm', 'mip', 'cest', 't1 map', 't2 map', 'mapping', 'relaxometry')],
    why: 'perfusion, BOLD, angiography, spectroscopy, DTI, quantitative maps: no encoder',
  },
  { id: 'txt-adc', phase: 'text', sequence: 'ADC', text: [tok('adc', 'dadc', 'adc map', 'apparent diffusion', 'apparent diffusion coefficient', 'average dc', 'avdc')], why: 'ep2d_diff_..._ADC, GE "ADC (10^-6 mm2/s)", Philips dADC' },
  { id: 'txt-dwi', phase: 'text', sequence: 'DWI', text: [tok('dwi', 'diff', 'diffusion', 'dw', 'trace', 'tracew', 'resolve', 'isodwi', 'b1000', 'b 1000', 'dwi sense', 'dwi ssh', 'dw ssh', 'epi dwi', 'diffusion weighted')], why: 'ep2d_diff_*_TRACEW, DWI Asset, DWI_SENSE, RESOLVE' },
  { id: 'txt-t1-flair', phase: 'text', sequence: 'T1', text: [/(?:^| )s?t1/, /flair/], why: 'GE/Siemens T1 FLAIR is T1-weighted inversion recovery' },
  { id: 'txt-t1-ir', phase: 'text', sequence: 'T1', text: [tok('t1 ir', 't1w ir', 't1ir', 'ir t1', 'ir fspgr', 'irfspgr', 'mprage', 'mp rage', 'mp2rage', 'ir tfe')], why: 'inversion-prepared T1 (not FLAIR)' },
  { id: 'txt-flair', phase: 'text', sequence: 'FLAIR', text: [/flair|dark ?fluid|(?:^| )df(?= |$)|fluid att|(?:^| )tirm(?: .*)? dark/], why: 'FLAIR, FLAIR_longTR, tirm_tra_dark-fluid, SPACE dark fluid' },
  { id: 'txt-pd', phase: 'text', sequence: 'OTHER', text: [tok('pd', 'pdw', 'pd tse', 'pd fse', 'proton density', 'pdfs', 'pd fs', 'spd')], why: 'proton density: no encoder' },
  { id: 'txt-tirm-long-ti', phase: 'text', sequence: 'FLAIR', text: [tok('tirm', 'tir', 'ir fse', 'irfse')], ti: [1500, INF], why: 'TIRM / IR named without dark-fluid but with a CSF-nulling TI (t2_tirm_tra, TI 2500) is FLAIR' },
  { id: 'txt-stir', phase: 'text', sequence: 'OTHER', text: [tok('stir', 'tirm', 'tir', 'ir fse')], why: 'STIR / TIRM without dark-fluid: fat-suppressed IR, not FLAIR' },
  {
    id: 'txt-t1', phase: 'text', sequence: 'T1',
    text: [/(?:^| )s?t1(?:w|wi|ce|c|post|pre|gd|mpr|se|fse|tse|\+)?(?= |$)|(?:^| )(?:bravo|fspgr|spgr|tfe|3d tfe|vibe|flash|fl3d|tfl|tfl3d|t1w|thrive|lava|mpr t1|fl2d t1|ffe t1)(?= |$)/],
    why: 'T1 / T1W / T1WI / sT1W, MPRAGE, BRAVO, FSPGR, 3D_T1_TFE, VIBE',
  },
  {
    id: 'txt-t2', phase: 'text', sequence: 'T2',
    text: [/(?:^| )s?t2(?:w|wi|tse|fse)?(?= |$)|(?:^| )(?:frfse|fse|tse|propeller|blade|space|cube|vista|haste|ssfse|ssh tse|fiesta|ciss|drive|trufi|t2w)(?= |$)/],
    why: 'T2 / T2W_TSE / T2WI, Ax T2 FRFSE, t2_tse_tra, PROPELLER/BLADE, SPACE/CUBE/VISTA',
  },
  { id: 'txt-gre-long-te', phase: 'text', sequence: 'SWI', text: [tok('gre', 'ffe', 'fe', 'fl2d', 'fl3d', 'mgre', 'megre', 'me gre', 'gre ax', 'ax gre')], te: [10, INF], why: 'gradient echo with long TE is T2*-weighted' },

  // ---- physics: when names say nothing -----------------------------------------------------------------------
  { id: 'ph-dwi-b', phase: 'physics', sequence: 'DWI', b: [50, INF], why: 'diffusion weighting present' },
  { id: 'ph-dwi-b0', phase: 'physics', sequence: 'DWI', b: [0, 49], scanning: ['EP'], why: 'b=0 EPI of a diffusion series' },
  { id: 'ph-flair', phase: 'physics', sequence: 'FLAIR', scanning: ['IR'], ti: [1500, INF], why: 'long-TI inversion recovery nulls CSF' },
  { id: 'ph-t1-ir', phase: 'physics', sequence: 'T1', scanning: ['IR'], ti: [300, 1499], te: [0, 30], why: 'MPRAGE / T1-FLAIR-like inversion timing' },
  { id: 'ph-stir', phase: 'physics', sequence: 'OTHER', scanning: ['IR'], ti: [0, 299], why: 'short-TI inversion recovery (STIR)' },
  { id: 'ph-epi', phase: 'physics', sequence: 'OTHER', scanning: ['EP'], why: 'EPI without diffusion weighting: perfusion / BOLD' },
  { id: 'ph-t2star', phase: 'physics', sequence: 'SWI', scanning: ['GR'], te: [15, INF], why: 'long-TE gradient echo' },
  { id: 'ph-t1-gre', phase: 'physics', sequence: 'T1', scanning: ['GR'], te: [0, 10], tr: [0, 1000], why: 'spoiled gradient echo, short TE' },
  { id: 'ph-t1-se', phase: 'physics', sequence: 'T1', scanning: ['SE'], tr: [0, 1000], te: [0, 30], why: 'short TR, short TE spin echo' },
  { id: 'ph-t2-se', phase: 'physics', sequence: 'T2', scanning: ['SE'], tr: [2000, INF], te: [60, INF], why: 'long TR, long TE spin echo' },
  { id: 'ph-pd-se', phase: 'physics', sequence: 'OTHER', scanning: ['SE'], tr: [2000, INF], te: [0, 59], why: 'long TR, short TE: proton density' },
];
