// Structure limits both DICOM walks apply (the listener's check before Success, services/listener/dataset-check.ts,
// and the worker's check before parsing, shared/imaging/part10.ts), so an instance the listener acknowledges is
// never refused by the worker for the same reason.

/** Sequences nested within sequences beyond this many levels are refused: real MR objects nest 3-4 (functional groups). */
export const MAX_SEQUENCE_DEPTH = 16;

/** A deflated data set inflating beyond this is refused: a zip bomb, not an MR instance (the worker holds it in memory). */
export const MAX_INFLATED_BYTES = 1024 ** 3;
