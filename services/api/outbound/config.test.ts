import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { ConfigError } from '../../../shared/config';
import { createLogger } from '../../../shared/logger';
import { loadOutboundConfig } from './config';
import { createOutbound } from './outbound';

describe('loadOutboundConfig', () => {
  it('turns every adapter off when no target is set', () => {
    const c = loadOutboundConfig({});
    expect(c.hl7).toBeUndefined();
    expect(c.sr).toBeUndefined();
    expect(c.webhook).toBeUndefined();
    expect(c.attempts).toBe(8);
    expect(c.backoffMs).toBe(2000);
  });

  it('builds an idle outbound service that connects to nothing when every adapter is off', async () => {
    const o = createOutbound(loadOutboundConfig({}), {
      redisUrl: 'redis://127.0.0.1:1', registry: new Registry(), logger: createLogger('t', 'silent'), dataDir: '/nonexistent',
    });
    await o.start();
    expect(o.adapters).toEqual([]);
    expect(await o.catchUp(60)).toBe(0);
    expect(() => o.queue('hl7')).toThrow(/not configured/);
    await o.close();
  });

  it('parses host:port, AE@host:port and the webhook URL', () => {
    const c = loadOutboundConfig({
      HL7_MLLP_TARGET: 'ris.example.org:2575',
      HL7_SENDING_APPLICATION: 'NT',
      SR_TARGET: 'PACS_AE@[::1]:104',
      WEBHOOK_URL: 'https://pager.example.org/hook',
      WEBHOOK_SECRET: '0123456789abcdef',
      HL7_ACK_TIMEOUT_MS: '2500',
    });
    expect(c.hl7).toMatchObject({ host: 'ris.example.org', port: 2575, sendingApplication: 'NT', ackTimeoutMs: 2500, messageType: 'OMI^O23' });
    expect(c.sr).toMatchObject({ calledAe: 'PACS_AE', host: '::1', port: 104, callingAe: 'NEUROTRIAGE' });
    expect(c.webhook?.url.href).toBe('https://pager.example.org/hook');
  });

  it('names every bad setting at once', () => {
    let err: unknown;
    try {
      loadOutboundConfig({ HL7_MLLP_TARGET: 'ris-without-port', SR_TARGET: 'pacs:104', WEBHOOK_URL: 'ftp://x' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const text = (err as ConfigError).problems.join('\n');
    expect(text).toMatch(/HL7_MLLP_TARGET="ris-without-port"/);
    expect(text).toMatch(/SR_TARGET="pacs:104": expected AE@host:port/);
    expect(text).toMatch(/WEBHOOK_URL: expected an http/);
    expect(text).toMatch(/WEBHOOK_SECRET: required/);
  });

  it('does not echo the webhook key or URL in a start-up error: it goes to the container log', () => {
    // A key one character short, and a URL without its scheme whose query carries the receiver's token.
    const problems = (env: Record<string, string>): string => {
      try {
        loadOutboundConfig(env);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as ConfigError).message;
      }
      throw new Error('accepted');
    };
    const short = problems({ WEBHOOK_URL: 'https://pager.example.org/hook', WEBHOOK_SECRET: 'key-of-15-chars' });
    expect(short).toMatch(/WEBHOOK_SECRET \(value not shown\): .*16/);
    expect(short).not.toMatch(/key-of-15-chars/);
    const noScheme = problems({ WEBHOOK_URL: 'pager.example.org/hook?token=tok-9f2c', WEBHOOK_SECRET: '0123456789abcdef' });
    expect(noScheme).toMatch(/WEBHOOK_URL: expected an http:\/\/ or https:\/\/ URL/);
    expect(noScheme).not.toMatch(/tok-9f2c/);
  });

  it('refuses HL7 delimiters in MSH identifiers', () => {
    expect(() => loadOutboundConfig({ HL7_SENDING_APPLICATION: 'A|B' })).toThrow(/HL7_SENDING_APPLICATION/);
    expect(() => loadOutboundConfig({ HL7_SENDING_FACILITY: 'A~B' })).toThrow(/HL7_SENDING_FACILITY/);
    expect(() => loadOutboundConfig({ HL7_RECEIVING_FACILITY: 'A^B^C^D' })).toThrow(/HL7_RECEIVING_FACILITY/);
  });

  it('takes an MSH identifier with its universal id and type (HD components)', () => {
    const c = loadOutboundConfig({ HL7_MLLP_TARGET: 'ris:2575', HL7_SENDING_FACILITY: 'NT_HOSP^1.2.840.114350.1.13^ISO', HL7_RECEIVING_APPLICATION: 'RIS^^' });
    expect(c.hl7).toMatchObject({ sendingFacility: 'NT_HOSP^1.2.840.114350.1.13^ISO', receivingApplication: 'RIS^^' });
  });

  it('reads NEUROTRIAGE_CONFIG_FILE like loadConfig, the environment winning', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nt-outbound-config-'));
    try {
      const file = path.join(dir, 'config.json');
      writeFileSync(file, JSON.stringify({ HL7_MLLP_TARGET: 'ris:2575', HL7_ACK_TIMEOUT_MS: 3000, OUTBOUND_ATTEMPTS: 4 }));
      const c = loadOutboundConfig({ NEUROTRIAGE_CONFIG_FILE: file, OUTBOUND_ATTEMPTS: '5' });
      expect(c.hl7).toMatchObject({ host: 'ris', port: 2575, ackTimeoutMs: 3000 });
      expect(c.attempts).toBe(5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
