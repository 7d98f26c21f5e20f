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

describe('settings of a fixed set', () => {
  const problems = (env: Record<string, string>): string => {
    try {
      loadConfig(env);
    } catch (err) {
      return (err as ConfigError).problems.join('\n');
    }
    throw new Error('accepted');
  };

  it('a bad value names the values allowed, not only "Expected union value"', () => {
    expect(problems({ LOG_LEVEL: 'verbose' })).toBe('LOG_LEVEL="verbose": expected one of fatal, error, warn, info, debug, trace, silent');
    expect(problems({ DICOM_OTHER_STORAGE: 'drop' })).toBe('DICOM_OTHER_STORAGE="drop": expected one of reject, accept-and-ignore');
  });

  it('a boolean that is not one says true or false', () => {
    expect(problems({ STUDY_COMPLETE_ON_RELEASE: 'yes' })).toBe('STUDY_COMPLETE_ON_RELEASE="yes": expected true or false');
  });
});

describe('durations', () => {
  it.each(['SHUTDOWN_TIMEOUT_SECONDS', 'DICOM_IDLE_TIMEOUT_SECONDS'])('%s is refused past a day (a Node timer past 2^31-1 ms fires at once)', (key) => {
    expect(loadConfig({ [key]: '86400' })[key as 'SHUTDOWN_TIMEOUT_SECONDS']).toBe(86400);
    expect(() => loadConfig({ [key]: '3000000' })).toThrow(new RegExp(`${key}=`));
  });
});

describe('TZ', () => {
  it.each(['Europe/London', 'UTC', 'America/New_York', ':Europe/London', 'EST5EDT'])('takes %s', (tz) => {
    expect(() => loadConfig({ TZ: tz })).not.toThrow();
  });

  it.each(['Europe/Londn', 'UTC0', 'GMT+0100'])('refuses %s, naming the setting (it was taken as UTC without a word)', (tz) => {
    expect(() => loadConfig({ TZ: tz })).toThrow(ConfigError);
    expect(() => loadConfig({ TZ: tz })).toThrow(/TZ: ".*" is not a time zone this runtime knows/);
  });
});

describe('REDIS_URL', () => {
  it.each(['redis://127.0.0.1:6379', 'redis://:0a1b2c@neurotriage-redis:6379/0', 'rediss://user:pw@redis.example:6380/2?family=6', 'unix:///tmp/nt/redis.sock'])(
    'takes %s',
    (url) => expect(loadConfig({ REDIS_URL: url }).REDIS_URL).toBe(url),
  );

  it.each(['http://127.0.0.1:6379', 'localhost:6379', 'redis://', 'unix://relative.sock'])('refuses %s, naming the setting', (url) => {
    expect(() => loadConfig({ REDIS_URL: url })).toThrow(ConfigError);
    expect(() => loadConfig({ REDIS_URL: url })).toThrow(/REDIS_URL: expected redis:\/\//);
  });

  it('never echoes the value (it may carry a password)', () => {
    expect(() => loadConfig({ REDIS_URL: 'http://:s3cretpass@redis:6379' })).toThrow(ConfigError);
    try {
      loadConfig({ REDIS_URL: 'http://:s3cretpass@redis:6379' });
    } catch (err) {
      expect((err as ConfigError).message).not.toContain('s3cretpass');
    }
  });

  it('empty is unset (npm start runs its private Redis)', () => {
    expect(loadConfig({ REDIS_URL: '' }).REDIS_URL).toBeUndefined();
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
