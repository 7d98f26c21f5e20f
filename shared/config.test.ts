import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig, ConfigError, settingsSource } from './config';

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig({});
    expect(c.DICOM_PORT).toBe(11112);
    expect(c.DICOM_AE_TITLE).toBe('NEUROTRIAGE');
    expect(c.API_PORT).toBe(8080);
    expect(c.DATA_DIR).toBe('./var');
    expect(c.STUDY_QUIET_SECONDS).toBe(5);
    expect(c.REDIS_URL).toBeUndefined();
  });

  it('converts strings from the environment', () => {
    const c = loadConfig({ DICOM_PORT: '104', STUDY_QUIET_SECONDS: '2.5', STUDY_COMPLETE_ON_RELEASE: 'true' });
    expect(c.DICOM_PORT).toBe(104);
    expect(c.STUDY_QUIET_SECONDS).toBe(2.5);
    expect(c.STUDY_COMPLETE_ON_RELEASE).toBe(true);
  });

  it('names every bad setting in one readable error', () => {
    expect(() => loadConfig({ DICOM_PORT: 'eleven', DICOM_AE_TITLE: 'WAY_TOO_LONG_AE_TITLE_X' })).toThrow(ConfigError);
    try {
      loadConfig({ DICOM_PORT: 'eleven', DICOM_AE_TITLE: 'WAY_TOO_LONG_AE_TITLE_X' });
    } catch (err) {
      expect((err as ConfigError).problems.join('\n')).toMatch(/DICOM_PORT="eleven"/);
      expect((err as ConfigError).problems.join('\n')).toMatch(/DICOM_AE_TITLE=/);
    }
  });
});

describe('settingsSource', () => {
  it('reads NEUROTRIAGE_CONFIG_FILE and lets the environment win', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nt-config-'));
    const file = `${dir}/neurotriage.json`;
    writeFileSync(file, JSON.stringify({ DICOM_PORT: 104, WORKER_CONCURRENCY: 4, STUDY_QUIET_SECONDS: 9 }));
    const source = settingsSource({ NEUROTRIAGE_CONFIG_FILE: file, STUDY_QUIET_SECONDS: '2' });
    expect(source.WORKER_CONCURRENCY).toBe('4');
    expect(loadConfig({ NEUROTRIAGE_CONFIG_FILE: file, STUDY_QUIET_SECONDS: '2' })).toMatchObject({ DICOM_PORT: 104, STUDY_QUIET_SECONDS: 2 });
  });

  it('names the file when it is not a JSON object', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nt-config-'));
    writeFileSync(`${dir}/bad.json`, '[1, 2]');
    expect(() => settingsSource({ NEUROTRIAGE_CONFIG_FILE: `${dir}/bad.json` })).toThrow(/bad\.json: must hold a JSON object/);
  });
});
