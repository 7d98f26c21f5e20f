// Unit tests for API token parsing and the constant-time token check.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError } from '../../shared/config';
import { createTokenVerifier } from './plugins/auth';
import { parseTokens, trustProxy } from './settings';

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
  });
});
