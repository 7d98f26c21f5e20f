// npm start's allow-list for a loopback listener: only when the site set none, in the environment or in the
// NEUROTRIAGE_CONFIG_FILE (an allow-list in the file was replaced by the local senders, since the environment
// npm start hands its services overrides the file).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LOCAL_SENDERS, localAllowList } from './local-senders';

let dir: string;
beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'nt-local-senders-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const file = (settings: Record<string, unknown>): string => {
  const f = path.join(dir, `${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(f, JSON.stringify(settings));
  return f;
};

test('unset everywhere on a loopback listener: the local senders', () => {
  expect(localAllowList({}, '127.0.0.1')).toBe(LOCAL_SENDERS);
  expect(localAllowList({}, '::1')).toBe(LOCAL_SENDERS);
  expect(localAllowList({ NEUROTRIAGE_CONFIG_FILE: file({ LOG_LEVEL: 'warn' }) }, 'localhost')).toBe(LOCAL_SENDERS);
});

test('a listener on another address keeps the empty default', () => {
  expect(localAllowList({}, '0.0.0.0')).toBeUndefined();
  expect(localAllowList({}, '10.1.2.3')).toBeUndefined();
});

test('an allow-list in the environment or in NEUROTRIAGE_CONFIG_FILE is kept, empty included', () => {
  expect(localAllowList({ DICOM_ALLOWED_CALLING_AES: 'PACS@127.0.0.1' }, '127.0.0.1')).toBeUndefined();
  expect(localAllowList({ DICOM_ALLOWED_CALLING_AES: '' }, '127.0.0.1')).toBeUndefined();
  expect(localAllowList({ NEUROTRIAGE_CONFIG_FILE: file({ DICOM_ALLOWED_CALLING_AES: 'PACS@127.0.0.1' }) }, '127.0.0.1')).toBeUndefined();
  expect(localAllowList({ NEUROTRIAGE_CONFIG_FILE: file({ DICOM_ALLOWED_CALLING_AES: '' }) }, '127.0.0.1')).toBeUndefined();
});
