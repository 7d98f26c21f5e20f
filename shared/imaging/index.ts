// Public surface of the imaging module: DICOM study -> canonical volumes per the model manifest's preprocessing
// spec. Used by the worker (scoring) and by tools/volumes.ts (training tensors), so the two cannot drift.
export * from './errors';
export { fileSource, hasLossyHistory, LOSSY_TRANSFER_SYNTAXES, memorySource, readInstance, readInstanceHeader, SOP_CLASS, TRANSFER_SYNTAX, type ByteSource, type DicomInstance, type Frame, type InstanceHeader, type Vec3 } from './dicom-header';
export { encapsulatedItems, scanPart10, type Part10Layout, type PixelDataLocation } from './part10';
export { CLASSIFIER_RULES, SERIES_SEQUENCES, type ClassifierRule, type SeriesSequence } from './classifier-rules';
export { classifySeries, isEncoderSequence, normaliseText, unusableReason, type Classification, type ClassifierInput } from './classifier';
export { buildStack, DEFAULT_STACK_OPTIONS, voxelToPatient, type Stack, type StackNotes, type StackOptions } from './geometry';
export { createPixelDecoder, SUPPORTED_TRANSFER_SYNTAXES, type PixelDecoder } from './pixels';
export { canonicalToPatient, foregroundCentroid, resampleToCanonical, volumeCentre, type SourceVolume } from './resample';
export { imageToPatient, locateInSource, sourceGeometry, type SliceLocation, type SourceGeometry, type SourceSlice } from './locate';
export { otsuThreshold, percentileScale, zscoreForeground } from './intensity';
export { groupSeries, type SeriesFrame, type SeriesGroup } from './series';
export { DEFAULT_PREPROCESSING, parsePreprocessing } from './spec';
export {
  decodeStack, DEFAULT_STACK_LIMITS, DROP_REASONS, INCOMPLETE_DROP_REASONS, loadStudyVolumes, planeOf, preprocessVolume, stackOfSeries,
  type DroppedImages, type DropReason, type InstanceSource, type LoadOptions, type Plane, type SeriesReport, type StackLimits, type StudyVolumes, type UnreadableFile, type VolumeInfo,
} from './study';
