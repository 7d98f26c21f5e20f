// Settings of the report feed (HL7 v2 ORU^R01 over MLLP, and the POST /api/v1/reports endpoint), loaded beside the
// shared Config with loadSection and validated once at start: a typo stops the API with a message an interface
// engineer can act on instead of rejecting every report later. See docs/hl7-interface.md "Inbound: reports".
import { Type, type Static } from '@sinclair/typebox';
import { ConfigError, loadSection, settingsSource } from '../../../shared/config';

/** Fields that may carry the accession number, tried in the order REPORTS_ACCESSION_FIELDS lists them. */
export const ACCESSION_FIELDS = ['OBR-3', 'OBR-18', 'ORC-3', 'OBR-2', 'ORC-2', 'OBR-19', 'OBR-20'] as const;
export type AccessionField = (typeof ACCESSION_FIELDS)[number];

export const ReportsSettingsSchema = Type.Object({
  /** TCP port of the MLLP listener for the RIS's ORU^R01 feed (2575 is HL7's registered port). Unset: no listener. */
  REPORTS_MLLP_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  REPORTS_MLLP_HOST: Type.String({ minLength: 1 }),
  /** Comma list of sending facilities (MSH-4, namespace ID) whose reports are taken; "*" any; empty: none (fail closed). */
  REPORTS_MLLP_ALLOWED_FACILITIES: Type.String(),
  REPORTS_MLLP_MAX_CONNECTIONS: Type.Integer({ minimum: 1, maximum: 1000 }),
  /** Connections one address may hold at once: a host holding silent connections cannot take every slot. */
  REPORTS_MLLP_MAX_CONNECTIONS_PER_HOST: Type.Integer({ minimum: 1, maximum: 1000 }),
  /** A connection that brings no whole message for this long is closed (RIS feeds reconnect on their own). */
  REPORTS_MLLP_IDLE_TIMEOUT_SECONDS: Type.Number({ exclusiveMinimum: 0, maximum: 86400 }),
  /** Longest message taken, in KiB; a longer one is answered AR and its first 64 KiB kept for review. */
  REPORTS_MLLP_MAX_MESSAGE_KB: Type.Integer({ minimum: 4, maximum: 65536 }),
  /** The ACK is sent within this time: AR "try again" when the durable write has not finished by then. */
  REPORTS_MLLP_ACK_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000 }),
  /** Most messages in one HL7 batch (FHS/BHS ... BTS/FTS in one frame); a larger batch is answered one AR, whole. */
  REPORTS_MLLP_MAX_BATCH_MESSAGES: Type.Integer({ minimum: 1, maximum: 100_000 }),
  /** Comma list from ACCESSION_FIELDS, first non-empty wins. */
  REPORTS_ACCESSION_FIELDS: Type.String({ minLength: 1 }),
  /** A report whose study has not arrived after this many days moves to the rejected store (kept for replay). */
  REPORTS_HOLD_DAYS: Type.Number({ exclusiveMinimum: 0, maximum: 3650 }),
  /** How often held reports are checked against the received studies (besides every scored-study event). */
  REPORTS_MATCH_SWEEP_SECONDS: Type.Number({ minimum: 1, maximum: 86400 }),
  /** How long a message id (MSH-10 per sender, or reportId) is remembered: the same message again is stored once. */
  REPORTS_DEDUPE_DAYS: Type.Number({ exclusiveMinimum: 0, maximum: 3650 }),
  /** Days of the write-ahead journal under DATA_DIR/reports/journal kept and replayed at start. */
  REPORTS_JOURNAL_DAYS: Type.Number({ exclusiveMinimum: 0, maximum: 3650 }),
  /** Most messages kept in DATA_DIR/reports/rejected; when full, further bad messages get AR "try again" and are not kept. */
  REPORTS_REJECTED_MAX: Type.Integer({ minimum: 1, maximum: 10_000_000 }),
  /** Most MiB the kept messages take together (on DATA_DIR, beside the studies); when reached, as when full. */
  REPORTS_REJECTED_MAX_MB: Type.Number({ exclusiveMinimum: 0, maximum: 10_000_000 }),
});
export type ReportsSettings = Static<typeof ReportsSettingsSchema>;

export const REPORTS_DEFAULTS: Omit<ReportsSettings, 'REPORTS_MLLP_PORT'> = {
  REPORTS_MLLP_HOST: '127.0.0.1',
  REPORTS_MLLP_ALLOWED_FACILITIES: '',
  REPORTS_MLLP_MAX_CONNECTIONS: 16,
  REPORTS_MLLP_MAX_CONNECTIONS_PER_HOST: 4,
  REPORTS_MLLP_IDLE_TIMEOUT_SECONDS: 600,
  REPORTS_MLLP_MAX_MESSAGE_KB: 1024,
  REPORTS_MLLP_ACK_TIMEOUT_MS: 10_000,
  REPORTS_MLLP_MAX_BATCH_MESSAGES: 500,
  REPORTS_ACCESSION_FIELDS: 'OBR-3,OBR-18,ORC-3',
  REPORTS_HOLD_DAYS: 14,
  REPORTS_MATCH_SWEEP_SECONDS: 300,
  REPORTS_DEDUPE_DAYS: 30,
  REPORTS_JOURNAL_DAYS: 7,
  REPORTS_REJECTED_MAX: 10_000,
  REPORTS_REJECTED_MAX_MB: 1024,
};

export interface MllpListenConfig {
  host: string;
  port: number;
  maxConnections: number;
  maxConnectionsPerHost: number;
  idleTimeoutMs: number;
  maxMessageBytes: number;
  ackTimeoutMs: number;
  maxBatchMessages: number;
}

/** What the report feed needs, typed: the MLLP block only when REPORTS_MLLP_PORT is set. */
export interface ReportsConfig {
  mllp?: MllpListenConfig;
  /** Upper-case MSH-4 namespace IDs; null: any facility ("*"). */
  allowedFacilities: Set<string> | null;
  accessionFields: AccessionField[];
  holdMs: number;
  sweepMs: number;
  dedupeSeconds: number;
  journalDays: number;
  rejectedMax: number;
  rejectedMaxBytes: number;
}

type Source = Record<string, string | undefined>;

const DAY_MS = 86_400_000;

/** Validates the settings; throws one ConfigError naming every problem. */
export function loadReportsConfig(env: Source = process.env): ReportsConfig {
  const s = loadSection(ReportsSettingsSchema, REPORTS_DEFAULTS, settingsSource(env));
  const problems: string[] = [];

  const fields = s.REPORTS_ACCESSION_FIELDS.split(',').map((f) => f.trim().toUpperCase()).filter(Boolean);
  const unknown = fields.filter((f) => !(ACCESSION_FIELDS as readonly string[]).includes(f));
  if (unknown.length > 0 || fields.length === 0) {
    problems.push(`REPORTS_ACCESSION_FIELDS=${JSON.stringify(s.REPORTS_ACCESSION_FIELDS)}: expected a comma list of ${ACCESSION_FIELDS.join(', ')}`);
  }

  const list = s.REPORTS_MLLP_ALLOWED_FACILITIES.split(',').map((f) => f.trim()).filter(Boolean);
  const allowedFacilities = list.includes('*') ? null : new Set(list.map((f) => f.toUpperCase()));
  if (s.REPORTS_DEDUPE_DAYS < s.REPORTS_JOURNAL_DAYS) {
    problems.push(
      `REPORTS_DEDUPE_DAYS=${s.REPORTS_DEDUPE_DAYS} is shorter than REPORTS_JOURNAL_DAYS=${s.REPORTS_JOURNAL_DAYS}: ` +
        'a journal replayed at start would store reports again whose message ids were forgotten',
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    ...(s.REPORTS_MLLP_PORT !== undefined
      ? {
          mllp: {
            host: s.REPORTS_MLLP_HOST,
            port: s.REPORTS_MLLP_PORT,
            maxConnections: s.REPORTS_MLLP_MAX_CONNECTIONS,
            maxConnectionsPerHost: s.REPORTS_MLLP_MAX_CONNECTIONS_PER_HOST,
            idleTimeoutMs: s.REPORTS_MLLP_IDLE_TIMEOUT_SECONDS * 1000,
            maxMessageBytes: s.REPORTS_MLLP_MAX_MESSAGE_KB * 1024,
            ackTimeoutMs: s.REPORTS_MLLP_ACK_TIMEOUT_MS,
            maxBatchMessages: s.REPORTS_MLLP_MAX_BATCH_MESSAGES,
          },
        }
      : {}),
    allowedFacilities,
    accessionFields: fields as AccessionField[],
    holdMs: s.REPORTS_HOLD_DAYS * DAY_MS,
    sweepMs: s.REPORTS_MATCH_SWEEP_SECONDS * 1000,
    dedupeSeconds: Math.round(s.REPORTS_DEDUPE_DAYS * 86_400),
    journalDays: s.REPORTS_JOURNAL_DAYS,
    rejectedMax: s.REPORTS_REJECTED_MAX,
    rejectedMaxBytes: Math.round(s.REPORTS_REJECTED_MAX_MB * 1024 * 1024),
  };
}
