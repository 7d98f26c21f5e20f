// Value representations as DICOM defines them (PS3.5): the tables both structure walks read, the listener's check
// before Success (services/listener/dataset-check.ts) and the worker's checks of a stored file (part10.ts).

/** Standard VRs (PS3.5 6.2); anything else on the wire is corruption. */
export const VRS: ReadonlySet<string> = new Set([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'PN',
  'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV',
]);

/** Explicit VRs with 2 reserved bytes and a 32-bit length (PS3.5 7.1.2, Table 7.1-1). */
export const LONG_VRS: ReadonlySet<string> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
