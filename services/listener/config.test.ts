import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError } from '../../shared/config';
import { loadListenerSettings } from './config';

test('listener settings: safe defaults, environment and settings file, readable errors', () => {
  const defaults = loadListenerSettings({});
  expect(defaults).toMatchObject({ DICOM_ALLOWED_CALLING_AES: '', METRICS_HOST: '127.0.0.1', DICOM_MAX_PDU_LENGTH: 65536, DICOM_HOST: '127.0.0.1' });
  expect(path.isAbsolute(defaults.DATA_DIR)).toBe(true);

  const dir = mkdtempSync(path.join(tmpdir(), 'nt-cfg-'));
  try {
    const file = path.join(dir, 'settings.json');
    writeFileSync(file, JSON.stringify({ DICOM_MAX_PDU_LENGTH: 131072, METRICS_HOST: '0.0.0.0' }));
    const fromFile = loadListenerSettings({ NEUROTRIAGE_CONFIG_FILE: file, METRICS_HOST: '127.0.0.2' });
    expect(fromFile.DICOM_MAX_PDU_LENGTH).toBe(131072);
    expect(fromFile.METRICS_HOST).toBe('127.0.0.2');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  expect(() => loadListenerSettings({ DICOM_MAX_PDU_LENGTH: '1000000' })).toThrow(ConfigError);
  expect(() => loadListenerSettings({ DICOM_MAX_PDU_LENGTH: '1000000' })).toThrow(/DICOM_MAX_PDU_LENGTH/);
});

test('DICOM TLS needs its certificate and key, and TLS-only needs the TLS port', () => {
  expect(loadListenerSettings({}).DICOM_TLS_PORT).toBeUndefined();
  expect(() => loadListenerSettings({ DICOM_TLS_PORT: '2762' })).toThrow(/DICOM_TLS_CERT_FILE and DICOM_TLS_KEY_FILE are required/);
  expect(() => loadListenerSettings({ DICOM_TLS_ONLY: 'true' })).toThrow(/DICOM_TLS_ONLY=true needs DICOM_TLS_PORT/);
  const s = loadListenerSettings({ DICOM_TLS_PORT: '2762', DICOM_TLS_CERT_FILE: '/etc/tls/tls.crt', DICOM_TLS_KEY_FILE: '/etc/tls/tls.key' });
  expect(s).toMatchObject({ DICOM_TLS_PORT: 2762, DICOM_TLS_CLIENT_CERT: 'require', DICOM_TLS_ONLY: false });
});
