// The synthetic cohort's public data shapes: options, ground-truth labels, series descriptions and the in-memory
// study that generateStudy returns. Everything here is plain JSON-able data (except file buffers).

export const FINDING_TYPES = [
  'acute_infarct',
  'hydrocephalus',
  'haemorrhage',
  'mass',
  'white_matter_disease',
  'atrophy',
  'multiple_sclerosis',
  'meningioma',
] as const;
export type FindingType = (typeof FINDING_TYPES)[number];

export type Side = 'left' | 'right' | 'bilateral' | 'midline';

/** A series' true nature. SWI covers susceptibility-weighted imaging and 2D T2* gradient echo (magnitude, SWI-
 *  processed or minimum-intensity projection); SWI_PHASE is the phase image stored beside it (not SWI). */
export type Sequence = 'T2' | 'FLAIR' | 'DWI' | 'ADC' | 'T1' | 'SWI' | 'SWI_PHASE' | 'LOCALIZER';

export type PhrasingSet = 'train' | 'heldout';
export type ScannerSet = 'train' | 'heldout';

export interface SynthOptions {
  /** Small, fast studies for tests: 64x64 in-plane, 12 slices. */
  fast: boolean;
  /** Acquisition matrix of T2/FLAIR (DWI/ADC get about half); undefined = the scanner protocol's own. */
  matrix?: number;
  phrasingSet: PhrasingSet;
  scannerSet: ScannerSet;
  /** Probability that a study has no finding (>= 0.4 by default). */
  normalFraction: number;
  /** Probability that a study has an SWI or T2* gradient-echo series (0.4 by default, as many stroke protocols). */
  swiShare: number;
}

export const DEFAULT_OPTIONS: SynthOptions = {
  fast: false,
  phrasingSet: 'train',
  scannerSet: 'train',
  normalFraction: 0.5,
  swiShare: 0.4,
};

export interface FindingLabel {
  type: FindingType;
  side: Side;
  /** Largest diameter of the lesion (infarct, haemorrhage, mass incl. enhancing part, meningioma, largest WMH or
   *  MS plaque), or the measured width that defines the finding (hydrocephalus: frontal horn span; atrophy: sulcal
   *  width). */
  size_mm: number;
  /** Human-readable location, e.g. "left MCA territory", "right thalamus", "periventricular white matter". */
  location: string;
  /** Centre in patient coordinates (DICOM LPS, mm), where the finding is focal (MS: the largest plaque). */
  center_mm?: [number, number, number];
  /** Infarct: arterial territory. */
  territory?: 'MCA' | 'ACA' | 'PCA' | 'deep';
  /** Lobe or structure: frontal, parietal, temporal, occipital, basal ganglia, thalamus, cerebellum; meningioma:
   *  its site (convexity, parasagittal, falx, sphenoid wing, olfactory groove, posterior fossa). */
  region?: string;
  /** Haemorrhage: blood-product age. */
  stage?: 'acute' | 'early_subacute' | 'late_subacute';
  /** Mass, meningioma: midline shift in mm (positive, towards the opposite side). */
  midline_shift_mm?: number;
  /** Mass: diameter of the surrounding vasogenic oedema. */
  oedema_mm?: number;
  /** White-matter disease: Fazekas grade 1-3. */
  grade?: number;
  /** Hydrocephalus: transependymal (periventricular) FLAIR signal. */
  periventricular_oedema?: boolean;
  /** Hydrocephalus / atrophy: Evans' index (frontal horn span / inner skull width). */
  evans_index?: number;
  /** Multiple sclerosis: number of plaques. */
  count?: number;
  /** Multiple sclerosis: some plaques are active (restrict diffusion: DWI bright, ADC low). */
  active?: boolean;
  /** Meningioma: vasogenic oedema in the adjacent brain. */
  oedema?: boolean;
  /** Meningioma: calcified (dark on T2 and markedly dark on SWI). */
  calcified?: boolean;
}

export interface SeriesLabel {
  SeriesInstanceUID: string;
  SeriesNumber: number;
  SeriesDescription: string;
  sequence: Sequence;
  instances: number;
}

export interface StudyLabels {
  AccessionNumber: string;
  StudyInstanceUID: string;
  normal: boolean;
  findings: FindingLabel[];
  age: number;
  sex: 'F' | 'M';
  manufacturer: string;
  model: string;
  fieldStrength: number;
  series: SeriesLabel[];
}

export interface StudyReport {
  AccessionNumber: string;
  StudyInstanceUID: string;
  text: string;
}

export interface DicomFile {
  /** Relative path: dicom/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm */
  path: string;
  SeriesInstanceUID: string;
  SOPInstanceUID: string;
  data: Uint8Array;
}

/** A middle slice of one series, 8-bit windowed, for the preview montage. */
export interface PreviewSlice {
  sequence: Sequence;
  label: string;
  width: number;
  height: number;
  pixels: Uint8Array;
}

export interface GeneratedStudy {
  index: number;
  StudyInstanceUID: string;
  AccessionNumber: string;
  files: DicomFile[];
  report: StudyReport;
  labels: StudyLabels;
  preview: PreviewSlice[];
}
