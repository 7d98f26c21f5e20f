// The SOP classes and transfer syntaxes this listener negotiates (docs/dicom-conformance.md), by their PS3.6 names.

export const SopClass = {
  Verification: '1.2.840.10008.1.1',
  MRImageStorage: '1.2.840.10008.5.1.4.1.1.4',
  EnhancedMRImageStorage: '1.2.840.10008.5.1.4.1.1.4.1',
  LegacyConvertedEnhancedMRImageStorage: '1.2.840.10008.5.1.4.1.1.4.4',
} as const;

/** The multi-frame MR classes: NumberOfFrames is required (PS3.3 C.7.6.6). shared/imaging decodes both. */
export const ENHANCED_MR_CLASSES: readonly string[] = [SopClass.EnhancedMRImageStorage, SopClass.LegacyConvertedEnhancedMRImageStorage];

/** The storage SOP classes whose instances are stored and scored. */
export const MR_STORAGE_CLASSES: readonly string[] = [SopClass.MRImageStorage, ...ENHANCED_MR_CLASSES];

export const TransferSyntax = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  JPEGLossless: '1.2.840.10008.1.2.4.57',
  JPEGLosslessSV1: '1.2.840.10008.1.2.4.70',
  JPEGLSLossless: '1.2.840.10008.1.2.4.80',
  JPEG2000Lossless: '1.2.840.10008.1.2.4.90',
  RLELossless: '1.2.840.10008.1.2.5',
} as const;

/** Accepted for storage; compressed ones are stored as received (the worker decodes). */
export const STORAGE_TRANSFER_SYNTAXES: readonly string[] = [
  TransferSyntax.ExplicitVRLittleEndian,
  TransferSyntax.ImplicitVRLittleEndian,
  TransferSyntax.DeflatedExplicitVRLittleEndian,
  TransferSyntax.JPEGLosslessSV1,
  // Process 14 with any predictor (dcmcjpeg +el, some older modalities and archives): lossless, decoded by the worker.
  TransferSyntax.JPEGLossless,
  TransferSyntax.JPEGLSLossless,
  TransferSyntax.JPEG2000Lossless,
  TransferSyntax.RLELossless,
];

/** Verification needs no data set; the two uncompressed syntaxes every SCU can offer. */
export const VERIFICATION_TRANSFER_SYNTAXES: readonly string[] = [
  TransferSyntax.ExplicitVRLittleEndian,
  TransferSyntax.ImplicitVRLittleEndian,
];
