// Sequence classification and usability of a series. The rules are the table in classifier-rules.ts; this file
// only evaluates them (header phase, then text on SeriesDescription, then on ProtocolName, then physics) and
// decides whether a series can be used at all (modality, SOP class, body part, colour, localiser).
import { SEQUENCES, type Sequence } from '../model-manifest';
import { CLASSIFIER_RULES, type ClassifierRule, type SeriesSequence } from './classifier-rules';
import type { UnusableReason } from './errors';

export interface ClassifierInput {
  SeriesDescription?: string;
  ProtocolName?: string;
  SequenceName?: string;
  ScanningSequence?: readonly string[];
  SequenceVariant?: readonly string[];
  ImageType?: readonly string[];
  AcquisitionContrast?: string;
  EchoTime?: number;
  RepetitionTime?: number;
  InversionTime?: number;
  /** b-value of this (sub-)series, standard or vendor tag. */
  DiffusionBValue?: number;
  ContrastBolusAgent?: string;
}

export interface Classification {
  sequence: SeriesSequence;
  /** Id of the rule that decided, or 'fallback'. */
  rule: string;
  /** Post-contrast (ContrastBolusAgent present or named so): preferred last when choosing a series. */
  contrastEnhanced: boolean;
}

/** Lower case; every run of characters other than a-z, 0-9 and '*' becomes one space. */
export function normaliseText(s: string | undefined): string {
  return (s ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9*]+/g, ' ')
    .trim();
}

const inRange = (v: number | undefined, r: readonly [number, number] | undefined): boolean => r === undefined || (v !== undefined && v >= r[0] && v <= r[1]);

function anyOf(have: readonly string[] | undefined, want: readonly string[] | undefined): boolean {
  if (!want) return true;
  const set = new Set((have ?? []).map((s) => s.toUpperCase().trim()));
  return want.some((w) => set.has(w));
}

function physicsMatch(rule: ClassifierRule, x: ClassifierInput): boolean {
  return (
    inRange(x.RepetitionTime, rule.tr) &&
    inRange(x.EchoTime, rule.te) &&
    inRange(x.InversionTime, rule.ti) &&
    inRange(x.DiffusionBValue, rule.b) &&
    anyOf(x.ScanningSequence, rule.scanning) &&
    !(rule.notScanning && anyOf(x.ScanningSequence, rule.notScanning))
  );
}

function ruleMatches(rule: ClassifierRule, x: ClassifierInput, text: string | undefined): boolean {
  if (rule.text && (text === undefined || !rule.text.every((re) => re.test(text)))) return false;
  if (rule.notNames && [x.SeriesDescription, x.ProtocolName].some((n) => rule.notNames!.some((re) => re.test(normaliseText(n))))) return false;
  if (rule.imageType && !anyOf(x.ImageType, rule.imageType)) return false;
  if (rule.acquisitionContrast && !anyOf(x.AcquisitionContrast ? [x.AcquisitionContrast] : [], rule.acquisitionContrast)) return false;
  return physicsMatch(rule, x);
}

const CONTRAST_WORDS = /(?:^| )(?:post|gad|gado|gd|ce|contrast|postcontrast|kontrast|km|mdc)(?= |$)/;

export function isContrastEnhanced(x: ClassifierInput): boolean {
  if (x.ContrastBolusAgent && x.ContrastBolusAgent.trim() !== '') return true;
  const raw = `${x.SeriesDescription ?? ''} ${x.ProtocolName ?? ''}`.toLowerCase();
  if (/\+ ?(?:c|gd|gad|contrast)\b/.test(raw)) return true;
  const text = `${normaliseText(x.SeriesDescription)} ${normaliseText(x.ProtocolName)}`;
  // A bare "c" only counts right after T1 ("T1 C AX"); elsewhere it is too ambiguous.
  return CONTRAST_WORDS.test(text) || /(?:^| )s?t1w? c(?= |$)/.test(text);
}

/** Classifies one series (or one b-value part of a diffusion series) by the rule table. Pure. */
export function classifySeries(x: ClassifierInput, rules: readonly ClassifierRule[] = CLASSIFIER_RULES): Classification {
  const contrastEnhanced = isContrastEnhanced(x);
  const decide = (rule: ClassifierRule): Classification => {
    // A diffusion series' b=0 part is kept apart from the diffusion-weighted image.
    const b0 = rule.sequence === 'DWI' && x.DiffusionBValue !== undefined && x.DiffusionBValue < 50;
    return { sequence: b0 ? 'DWI_B0' : rule.sequence, rule: rule.id, contrastEnhanced };
  };
  for (const rule of rules) if (rule.phase === 'header' && ruleMatches(rule, x, undefined)) return decide(rule);
  for (const source of [x.SeriesDescription, x.ProtocolName]) {
    const text = normaliseText(source);
    if (!text) continue;
    for (const rule of rules) if (rule.phase === 'text' && ruleMatches(rule, x, text)) return decide(rule);
  }
  for (const rule of rules) if (rule.phase === 'physics' && ruleMatches(rule, x, undefined)) return decide(rule);
  return { sequence: 'OTHER', rule: 'fallback', contrastEnhanced };
}

/** What tells one acquisition from another, for examLevelProtocols. */
export interface ProtocolInput {
  ProtocolName?: string;
  ScanningSequence?: readonly string[];
  RepetitionTime?: number;
  EchoTime?: number;
  InversionTime?: number;
}

/**
 * ProtocolNames (normalised) that name the exam, not a series: GE writes the exam's protocol ("BRAIN STROKE/DWI",
 * "ROUTINE BRAIN W/WO") into (0018,1030) of every series. A ProtocolName carried by series of different acquisitions
 * (ScanningSequence, TR, TE, TI) is one of those and must not classify a series whose description says nothing (nor
 * mark it post-contrast or another body part). Derived series of one acquisition (Siemens TRACEW, ADC) share theirs.
 */
export function examLevelProtocols(series: readonly ProtocolInput[]): Set<string> {
  const acquisitions = new Map<string, Set<string>>();
  for (const x of series) {
    const p = normaliseText(x.ProtocolName);
    if (!p) continue;
    const round = (v: number | undefined) => (v === undefined ? '' : String(Math.round(v)));
    const acq = [(x.ScanningSequence ?? []).join('\\'), round(x.RepetitionTime), round(x.EchoTime), round(x.InversionTime)].join('|');
    const set = acquisitions.get(p) ?? new Set<string>();
    set.add(acq);
    acquisitions.set(p, set);
  }
  return new Set([...acquisitions].filter(([, acq]) => acq.size > 1).map(([p]) => p));
}

export interface UsabilityInput {
  Modality?: string;
  isImageStorage: boolean;
  hasPixelData: boolean;
  SamplesPerPixel?: number;
  PhotometricInterpretation?: string;
  BodyPartExamined?: string;
  SeriesDescription?: string;
  ProtocolName?: string;
}

const NOT_HEAD_BODY_PART = /SPINE|^NECK$|CHEST|THORAX|BREAST|ABDOMEN|PELVIS|PROSTATE|KNEE|SHOULDER|HIP|ANKLE|FOOT|WRIST|HAND|ELBOW|HEART|CARDIAC|LIVER|KIDNEY|EXTREMITY|^LEG$|^ARM$|SACRUM|COCCYX/;
const NOT_HEAD_TEXT = /(?:^| )(?:c ?spine|t ?spine|l ?spine|cspine|tspine|lspine|spine|spinal|cervical|thoracic|lumbar|sacrum|sacral|whole spine|knee|shoulder|hip|ankle|wrist|elbow|pelvis|abdomen|liver|prostate|breast|cardiac|heart|mrcp|enterography|femur)(?= |$)/;

/** A reason the series can never give a volume, or undefined. Localisers and sequences without encoder are decided from the classification. */
export function unusableReason(x: UsabilityInput, c: Classification): UnusableReason | undefined {
  if ((x.Modality ?? '').toUpperCase() !== 'MR') return 'not-mr';
  if (!x.isImageStorage || !x.hasPixelData) return 'not-image';
  if ((x.SamplesPerPixel ?? 1) !== 1) return 'colour';
  // One sample per pixel can still be colour: PALETTE COLOR indexes a lookup table (absent or not, the values are
  // not intensities). Only MONOCHROME1/2 (or none given) are grey levels.
  if (x.PhotometricInterpretation && !/^MONOCHROME[12]$/.test(x.PhotometricInterpretation.trim())) return 'colour';
  const part = (x.BodyPartExamined ?? '').toUpperCase().replace(/[^A-Z]/g, '');
  if (part && NOT_HEAD_BODY_PART.test(part) && !/HEAD|BRAIN/.test(part)) return 'not-head';
  if (NOT_HEAD_TEXT.test(normaliseText(x.SeriesDescription)) || NOT_HEAD_TEXT.test(normaliseText(x.ProtocolName))) return 'not-head';
  if (c.sequence === 'LOCALISER') return 'localiser';
  if (!isEncoderSequence(c.sequence)) return 'unsupported-sequence';
  return undefined;
}

export function isEncoderSequence(s: SeriesSequence): s is Sequence {
  return (SEQUENCES as readonly string[]).includes(s);
}
