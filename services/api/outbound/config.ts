// Outbound settings (HL7 v2 over MLLP, DICOM SR by C-STORE, signed webhook), loaded beside the shared Config with
// loadSection. Each adapter is off until its target is set; targets are parsed here once so a typo fails the
// process at start with a message a PACS or RIS administrator can act on.
import { Type, type Static } from '@sinclair/typebox';
import { ConfigError, loadSection, settingsSource } from '../../../shared/config';
import { PRIORITIES, type Priority } from '../../../shared/model-manifest';

const Ms = Type.Integer({ minimum: 1, maximum: 3_600_000 });
/**
 * MSH-3 to MSH-6 are HD: namespace id, and optionally universal id and its type (`HOSP^1.2.840.114350.1^ISO`, as
 * IHE profiles and many interface engines route on). "^" separates up to three components; no other delimiter.
 */
const Hl7Id = Type.String({
  pattern: '^[^|^~\\\\&\\r\\n]{0,180}(\\^[^|^~\\\\&\\r\\n]{0,199}){0,2}$',
  description: 'HL7 HD: namespace id, optionally ^universal id^universal id type; no other delimiter',
});

export const OutboundSettingsSchema = Type.Object({
  /** host:port of the RIS's MLLP listener. Unset: no HL7. */
  HL7_MLLP_TARGET: Type.Optional(Type.String({ minLength: 1 })),
  HL7_SENDING_APPLICATION: Hl7Id,
  HL7_SENDING_FACILITY: Hl7Id,
  HL7_RECEIVING_APPLICATION: Hl7Id,
  HL7_RECEIVING_FACILITY: Hl7Id,
  /** MSH-11: P production, T training, D debugging. */
  HL7_PROCESSING_ID: Type.Union([Type.Literal('P'), Type.Literal('T'), Type.Literal('D')]),
  /** OMI^O23 (v2.5.1, IHE SWF) or ORM^O01 for receivers that predate OMI. */
  HL7_MESSAGE_TYPE: Type.Union([Type.Literal('OMI^O23'), Type.Literal('ORM^O01')]),
  HL7_CONNECT_TIMEOUT_MS: Ms,
  HL7_ACK_TIMEOUT_MS: Ms,
  /** AE@host:port of the PACS that stores the SR. Unset: no SR. */
  SR_TARGET: Type.Optional(Type.String({ minLength: 1 })),
  SR_CALLING_AE: Type.String({ pattern: '^[ -~]{1,16}$' }),
  SR_TIMEOUT_MS: Ms,
  /** The key images' Key Object Selection document goes in series SR_SERIES_NUMBER + 1. */
  SR_SERIES_NUMBER: Type.Integer({ minimum: 1, maximum: 2_147_483_646 }),
  /** Send a Key Object Selection document of the flagged findings' key slices beside the SR (final results). */
  SR_KEY_IMAGES: Type.Boolean(),
  /** http(s) URL the paging/messaging system listens on. Unset: no webhook. Secret: it may carry a token. */
  WEBHOOK_URL: Type.Optional(Type.String({ minLength: 1, secret: true })),
  /** HMAC-SHA256 key; required with WEBHOOK_URL. Never echoed in a start-up error (loadSection). */
  WEBHOOK_SECRET: Type.Optional(Type.String({ minLength: 16, secret: true })),
  WEBHOOK_TIMEOUT_MS: Ms,
  /** Only results at or above this priority are posted (paging systems rarely want ROUTINE). */
  WEBHOOK_MIN_PRIORITY: Type.Union(PRIORITIES.map((p) => Type.Literal(p))),
  /** Delivery attempts per message per adapter, the first included. */
  OUTBOUND_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 100 }),
  /** First retry delay; doubles each attempt (BullMQ exponential backoff). */
  OUTBOUND_BACKOFF_MS: Type.Integer({ minimum: 0, maximum: 3_600_000 }),
  /** At start, re-enqueue results scored this many minutes back (pub/sub misses what happens while no API runs). 0: off. */
  OUTBOUND_CATCHUP_MINUTES: Type.Number({ minimum: 0, maximum: 1440 }),
});
export type OutboundSettings = Static<typeof OutboundSettingsSchema>;

export const OUTBOUND_DEFAULTS: Omit<OutboundSettings, 'HL7_MLLP_TARGET' | 'SR_TARGET' | 'WEBHOOK_URL' | 'WEBHOOK_SECRET'> = {
  HL7_SENDING_APPLICATION: 'NEUROTRIAGE',
  HL7_SENDING_FACILITY: '',
  HL7_RECEIVING_APPLICATION: 'RIS',
  HL7_RECEIVING_FACILITY: '',
  HL7_PROCESSING_ID: 'P',
  HL7_MESSAGE_TYPE: 'OMI^O23',
  HL7_CONNECT_TIMEOUT_MS: 5_000,
  HL7_ACK_TIMEOUT_MS: 10_000,
  SR_CALLING_AE: 'NEUROTRIAGE',
  SR_TIMEOUT_MS: 30_000,
  SR_SERIES_NUMBER: 9901,
  SR_KEY_IMAGES: true,
  WEBHOOK_TIMEOUT_MS: 5_000,
  WEBHOOK_MIN_PRIORITY: 'ROUTINE',
  OUTBOUND_ATTEMPTS: 8,
  OUTBOUND_BACKOFF_MS: 2_000,
  OUTBOUND_CATCHUP_MINUTES: 60,
};

export interface HostPort {
  host: string;
  port: number;
}

export interface Hl7Target extends HostPort {
  sendingApplication: string;
  sendingFacility: string;
  receivingApplication: string;
  receivingFacility: string;
  processingId: 'P' | 'T' | 'D';
  messageType: 'OMI^O23' | 'ORM^O01';
  connectTimeoutMs: number;
  ackTimeoutMs: number;
}

export interface SrTarget extends HostPort {
  calledAe: string;
  callingAe: string;
  timeoutMs: number;
  seriesNumber: number;
  /** Also send the key images as a Key Object Selection document (series seriesNumber + 1). */
  keyImages: boolean;
}

export interface WebhookTarget {
  /** Without user:password (fetch refuses a URL carrying them): those are in `authorization`. */
  url: URL;
  /** "Basic ..." from WEBHOOK_URL's user:password@, for receivers behind HTTP basic authentication. */
  authorization?: string;
  secret: string;
  timeoutMs: number;
  minPriority: Priority;
}

/** What createOutbound needs: one optional block per adapter plus the retry policy shared by all. */
export interface OutboundConfig {
  hl7?: Hl7Target;
  sr?: SrTarget;
  webhook?: WebhookTarget;
  attempts: number;
  backoffMs: number;
  /** 0: no catch-up at start. */
  catchUpMinutes: number;
}

function parseHostPort(key: string, value: string, problems: string[]): HostPort | undefined {
  // Bracketed IPv6 ([::1]:2575) or host:port; the port is required because HL7/DICOM have no universal default.
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:@\s]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) {
    problems.push(`${key}=${JSON.stringify(value)}: expected host:port with a port from 1 to 65535`);
    return undefined;
  }
  return { host: m[1] ?? m[2], port };
}

type Source = Record<string, string | undefined>;

/**
 * Moves user:password@ out of the URL into a Basic authorization value (as curl does). Node's fetch refuses a URL
 * with credentials, so such a WEBHOOK_URL failed every attempt until dead-lettered.
 */
function basicAuthorization(url: URL, problems: string[]): string | undefined {
  if (!url.username && !url.password) return undefined;
  let credentials: string;
  try {
    credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  } catch {
    problems.push('WEBHOOK_URL: user:password@ is not valid percent-encoding (value not shown)');
    return undefined;
  }
  url.username = '';
  url.password = '';
  return `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
}

/** Validates the settings and turns targets into typed blocks; throws one ConfigError naming every problem. */
export function loadOutboundConfig(env: Source = process.env): OutboundConfig {
  const s = loadSection(OutboundSettingsSchema, OUTBOUND_DEFAULTS, settingsSource(env));
  const problems: string[] = [];
  const config: OutboundConfig = { attempts: s.OUTBOUND_ATTEMPTS, backoffMs: s.OUTBOUND_BACKOFF_MS, catchUpMinutes: s.OUTBOUND_CATCHUP_MINUTES };

  if (s.HL7_MLLP_TARGET) {
    const hp = parseHostPort('HL7_MLLP_TARGET', s.HL7_MLLP_TARGET, problems);
    if (hp) {
      config.hl7 = {
        ...hp,
        sendingApplication: s.HL7_SENDING_APPLICATION,
        sendingFacility: s.HL7_SENDING_FACILITY,
        receivingApplication: s.HL7_RECEIVING_APPLICATION,
        receivingFacility: s.HL7_RECEIVING_FACILITY,
        processingId: s.HL7_PROCESSING_ID,
        messageType: s.HL7_MESSAGE_TYPE,
        connectTimeoutMs: s.HL7_CONNECT_TIMEOUT_MS,
        ackTimeoutMs: s.HL7_ACK_TIMEOUT_MS,
      };
    }
  }

  if (s.SR_TARGET) {
    const at = s.SR_TARGET.indexOf('@');
    const ae = at > 0 ? s.SR_TARGET.slice(0, at) : '';
    if (!/^[ -~]{1,16}$/.test(ae) || ae.trim() === '') {
      problems.push(`SR_TARGET=${JSON.stringify(s.SR_TARGET)}: expected AE@host:port with a 1-16 character AE title`);
    } else {
      const hp = parseHostPort('SR_TARGET', s.SR_TARGET.slice(at + 1), problems);
      if (hp) {
        config.sr = { ...hp, calledAe: ae, callingAe: s.SR_CALLING_AE, timeoutMs: s.SR_TIMEOUT_MS, seriesNumber: s.SR_SERIES_NUMBER, keyImages: s.SR_KEY_IMAGES };
      }
    }
  }

  if (s.WEBHOOK_URL) {
    let url: URL | undefined;
    try {
      url = new URL(s.WEBHOOK_URL);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http(s)');
    } catch {
      // Not echoed: a receiver's token often rides in the URL (a query parameter, user:password@).
      problems.push('WEBHOOK_URL: expected an http:// or https:// URL (value not shown: it may carry a token)');
      url = undefined;
    }
    const authorization = url && basicAuthorization(url, problems);
    if (!s.WEBHOOK_SECRET) problems.push('WEBHOOK_SECRET: required when WEBHOOK_URL is set (at least 16 characters)');
    if (url && s.WEBHOOK_SECRET) {
      config.webhook = { url, ...(authorization ? { authorization } : {}), secret: s.WEBHOOK_SECRET, timeoutMs: s.WEBHOOK_TIMEOUT_MS, minPriority: s.WEBHOOK_MIN_PRIORITY };
    }
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
