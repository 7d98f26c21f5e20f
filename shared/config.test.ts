import { loadConfig, ConfigError } from './config';

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
