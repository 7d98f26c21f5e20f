// pino JSON logs. Patient identifiers never belong in a log line: callers log UIDs and counts, and the
// redaction list below is a safety net for the DICOM/HL7 field names that carry identity.
import pino, { type Logger } from 'pino';

export type { Logger };

/** Keys that hold patient identity in DICOM (keyword) or HL7 (PID field) terms, at any depth we log. */
export const PHI_KEYS = [
  'PatientName', 'PatientID', 'PatientBirthDate', 'PatientAddress', 'OtherPatientIDs', 'OtherPatientNames',
  'PatientMotherBirthName', 'PatientTelephoneNumbers', 'ReferringPhysicianName', 'InstitutionName',
  'patientName', 'patientId', 'birthDate', 'PID',
];

export function createLogger(name: string, level = 'info', destination?: pino.DestinationStream): Logger {
  const paths = PHI_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);
  return pino(
    {
      name,
      level,
      base: { service: name },
      redact: { paths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
