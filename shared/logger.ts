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

/**
 * pino's error serializer, except that a JSON.parse failure keeps its kind and not its message: V8 quotes the start
 * of the text it could not parse (Node 22: `Unexpected token 'A', "Acute infa"... is not valid JSON`), and stored
 * reports and HL7 messages hold free text.
 */
export function serializeError(err: unknown): unknown {
  const out = pino.stdSerializers.err(err as Error);
  if (!(err instanceof SyntaxError) || !/JSON/.test(err.message)) return out;
  const message = 'not valid JSON (the text is not logged: it may quote the data)';
  const frames = (out.stack ?? '').split('\n').filter((line) => /^\s+at /.test(line));
  return { ...out, message, stack: [`SyntaxError: ${message}`, ...frames].join('\n') };
}

export function createLogger(name: string, level = 'info', destination?: pino.DestinationStream): Logger {
  const paths = PHI_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);
  return pino(
    {
      name,
      level,
      base: { service: name },
      redact: { paths, censor: '[redacted]' },
      serializers: { err: serializeError },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
