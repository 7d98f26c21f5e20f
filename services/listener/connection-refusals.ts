// Why the DICOM listener refuses or closes a connection (the `reason` label of
// neurotriage_listener_refused_connections_total): admission by shared/connection-guard.ts (DICOM_MAX_CONNECTIONS,
// DICOM_MAX_CONNECTIONS_PER_PEER), plus what the listener itself closes before or instead of an association.
import { ADMISSION_REFUSALS } from '../../shared/connection-guard';

export const REFUSAL_REASONS = [
  'artim-timeout',
  ...ADMISSION_REFUSALS,
  'shutting-down',
  'pdu-too-long',
  'unexpected-pdu',
  'unknown-pdu',
  'invalid-pdu',
  'unaccepted-context',
  'dimse-violation',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];
