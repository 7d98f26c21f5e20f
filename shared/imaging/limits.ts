// Structure limits both DICOM walks apply (the listener's check before Success, services/listener/dataset-check.ts,
// and the worker's check before parsing, shared/imaging/part10.ts), so an instance the listener acknowledges is
// never refused by the worker for the same reason.

/** Sequences nested within sequences beyond this many levels are refused: real MR objects nest 3-4 (functional groups). */
export const MAX_SEQUENCE_DEPTH = 16;

/** A deflated data set inflating beyond this is refused: a zip bomb, not an MR instance (the worker holds it in memory). */
export const MAX_INFLATED_BYTES = 1024 ** 3;

/**
 * The worker reads an instance's header (the file up to Pixel Data) into memory, doubling from 16 KB; a header
 * larger than this is refused (`too-large`) rather than parsed.
 */
export const MAX_HEADER_BYTES = 64 * 1024 * 1024;

/**
 * The listener's bound for the data set's elements before (and including the header of) Pixel Data: the worker's
 * bound less room for the preamble and the file meta group the listener writes before the data set.
 */
export const MAX_DATASET_HEADER_BYTES = MAX_HEADER_BYTES - 4096;
