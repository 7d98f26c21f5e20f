// Unit tests for API token parsing, the local admin token, trustProxy, the constant-time token check and the
// API's Redis command bound.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, loadSection } from '../../shared/config';
import { createTokenVerifier } from './plugins/auth';
import { API_DEFAULTS, ApiSettingsSchema, LOCAL_ADMIN_TOKEN_FILE, apiRedisOptions, parseTokens, tokensFor, trustProxy } from './settings';

describe('parseTokens', () => {
  test('reads "token:role:name" lists', () => {
    expect(parseTokens('aaaaaaaaaaaaaaaa1:reader:dr-a, bbbbbbbbbbbbbbbb2:admin:ris admin')).toEqual([
      { token: 'aaaaaaaaaaaaaaaa1', role: 'reader', name: 'dr-a' },
      { token: 'bbbbbbbbbbbbbbbb2', role: 'admin', name: 'ris admin' },
    ]);
  });

  test('reads a JSON file', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'nt-tokens-')), 'tokens.json');
    writeFileSync(file, JSON.stringify([{ token: 'cccccccccccccccc3', role: 'reader', name: 'wall-screen' }]));
    expect(parseTokens(file)).toEqual([{ token: 'cccccccccccccccc3', role: 'reader', name: 'wall-screen' }]);
  });

  test('names every bad entry without echoing the secret, and refuses an empty list and reused tokens', () => {
    let err: unknown;
    try {
      parseTokens('short:reader:a,dddddddddddddddd4:owner:b');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).toContain('entry 1: token');
    expect(msg).toContain('entry 2: role');
    expect(msg).not.toContain('dddddddddddddddd4');
    expect(() => parseTokens('')).toThrow(/no tokens configured/);
    expect(() => parseTokens('eeeeeeeeeeeeeeee5:reader:a,eeeeeeeeeeeeeeee5:admin:b')).toThrow(/used twice/);
  });
});

describe('createTokenVerifier', () => {
  const verify = createTokenVerifier([
    { token: 'ffffffffffffffff6', role: 'reader', name: 'r' },
    { token: 'gggggggggggggggg7', role: 'admin', name: 'a' },
  ]);
  test('finds the user of a known token and nobody for others, whatever their length', () => {
    expect(verify('gggggggggggggggg7')).toEqual({ name: 'a', role: 'admin' });
    expect(verify('ffffffffffffffff6')).toEqual({ name: 'r', role: 'reader' });
    expect(verify('ffffffffffffffff')).toBeNull();
    expect(verify('x'.repeat(1000))).toBeNull();
  });
});

describe('trustProxy', () => {
  test('off by default, "true" for any proxy, else the listed addresses', () => {
    expect(trustProxy('')).toBe(false);
    expect(trustProxy('true')).toBe(true);
    expect(trustProxy('10.0.0.1, 10.1.0.0/16')).toEqual(['10.0.0.1', '10.1.0.0/16']);
    expect(trustProxy('loopback, fd00::/8, 10.0.0.0/255.0.0.0, ::1')).toEqual(['loopback', 'fd00::/8', '10.0.0.0/255.0.0.0', '::1']);
  });

  test('an entry that is not an address is a ConfigError naming API_TRUST_PROXY', () => {
    for (const bad of ['ingress.local', '10.0.0.300', '10.0.0.0/33', '::1/129', 'ffff::/255.0.0.0']) {
      expect(() => trustProxy(`10.0.0.1,${bad}`)).toThrow(ConfigError);
      expect(() => trustProxy(`10.0.0.1,${bad}`)).toThrow(`API_TRUST_PROXY: "${bad}" is not an address`);
    }
  });

  test('a number trusts that many nearest hops, whatever their address', () => {
    const one = trustProxy('1') as (address: string, hop: number) => boolean;
    expect([one('10.244.1.7', 0), one('10.244.1.7', 1), one('6.6.6.6', 2)]).toEqual([true, false, false]);
    expect(trustProxy('0')).toEqual(expect.any(Function));
  });
});

describe('tokensFor without API_TOKENS', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'nt-admin-token-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('a loopback API writes one admin token (0600) and reuses it at every later start', () => {
    const said: string[] = [];
    const [first] = tokensFor('', '127.0.0.1', dir, (m) => said.push(m));
    expect(first).toMatchObject({ role: 'admin', name: 'local-admin' });
    const file = path.join(dir, LOCAL_ADMIN_TOKEN_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8').trim()).toBe(first.token);
    // The next start (a restart) signs nobody out: same token, nothing new written or said.
    const [again] = tokensFor('', '127.0.0.1', dir, (m) => said.push(m));
    expect(again.token).toBe(first.token);
    expect(said).toHaveLength(1);
    expect(said[0]).not.toContain(first.token);
  });

  test('a file that holds no valid token is replaced; other addresses need API_TOKENS', () => {
    writeFileSync(path.join(dir, LOCAL_ADMIN_TOKEN_FILE), 'short\n', { mode: 0o644 });
    const [token] = tokensFor('', '::1', dir, () => undefined);
    expect(token.token).not.toBe('short');
    expect(readFileSync(path.join(dir, LOCAL_ADMIN_TOKEN_FILE), 'utf8').trim()).toBe(token.token);
    expect(statSync(path.join(dir, LOCAL_ADMIN_TOKEN_FILE)).mode & 0o777).toBe(0o600);
    expect(() => tokensFor('', '0.0.0.0', dir, () => undefined)).toThrow(/API_TOKENS is empty and API_HOST=0.0.0.0/);
  });
});

describe('API_REDIS_TIMEOUT_MS', () => {
  test('3000 ms by default, read as an integer, and the bound of every command on the API\'s connection', () => {
    expect(loadSection(ApiSettingsSchema, API_DEFAULTS, {}).API_REDIS_TIMEOUT_MS).toBe(3000);
    const settings = loadSection(ApiSettingsSchema, API_DEFAULTS, { API_REDIS_TIMEOUT_MS: '1500' });
    expect(apiRedisOptions(settings)).toEqual({ commandTimeout: 1500 });
  });

  test.each(['0', '50', '60001', '2.5', 'soon'])('%s stops the start with a message naming the setting', (value) => {
    expect(() => loadSection(ApiSettingsSchema, API_DEFAULTS, { API_REDIS_TIMEOUT_MS: value })).toThrow(ConfigError);
    expect(() => loadSection(ApiSettingsSchema, API_DEFAULTS, { API_REDIS_TIMEOUT_MS: value })).toThrow(/API_REDIS_TIMEOUT_MS/);
  });
});

describe('live-update stream bounds', () => {
  test('20 streams per user, 1,000 per process and 1 MiB unsent by default; each read as an integer', () => {
    const defaults = loadSection(ApiSettingsSchema, API_DEFAULTS, {});
    expect([defaults.API_LIVE_MAX_STREAMS_PER_USER, defaults.API_LIVE_MAX_STREAMS, defaults.API_LIVE_MAX_UNSENT_BYTES]).toEqual([20, 1000, 1024 * 1024]);
    const set = loadSection(ApiSettingsSchema, API_DEFAULTS, { API_LIVE_MAX_STREAMS_PER_USER: '5', API_LIVE_MAX_STREAMS: '200', API_LIVE_MAX_UNSENT_BYTES: '65536' });
    expect([set.API_LIVE_MAX_STREAMS_PER_USER, set.API_LIVE_MAX_STREAMS, set.API_LIVE_MAX_UNSENT_BYTES]).toEqual([5, 200, 65536]);
  });

  test.each([
    ['API_LIVE_MAX_STREAMS_PER_USER', '0'],
    ['API_LIVE_MAX_STREAMS', '-1'],
    ['API_LIVE_MAX_STREAMS', 'many'],
    ['API_LIVE_MAX_UNSENT_BYTES', '100'],
    ['API_LIVE_MAX_UNSENT_BYTES', '1.5'],
  ])('%s=%s stops the start with a message naming the setting', (name, value) => {
    expect(() => loadSection(ApiSettingsSchema, API_DEFAULTS, { [name]: value })).toThrow(ConfigError);
    expect(() => loadSection(ApiSettingsSchema, API_DEFAULTS, { [name]: value })).toThrow(new RegExp(name));
  });
});
