import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError } from '../../shared/config';
import { executionProviders, loadWorkerConfig, sensitivitySettings, WORKER_DEFAULTS } from './config';

describe('worker settings', () => {
  it('defaults: CUDA then CPU, the bundle in ./onnx-models, one ONNX Runtime thread per session', () => {
    const c = loadWorkerConfig({});
    expect(c).toEqual(WORKER_DEFAULTS);
    expect(executionProviders(c)).toEqual(['cuda', 'cpu']);
    expect(c.MODELS_DIR).toBe('./onnx-models');
    expect(c.WORKER_ORT_THREADS).toBe(1);
  });

  it('refuses an execution provider the worker does not know, naming the known ones', () => {
    expect(() => loadWorkerConfig({ EXECUTION_PROVIDERS: 'gpu,cpu' })).toThrow(ConfigError);
    expect(() => loadWorkerConfig({ EXECUTION_PROVIDERS: 'gpu,cpu' })).toThrow(/EXECUTION_PROVIDERS="gpu,cpu": unknown provider\(s\) gpu; expected a comma list of cuda, cpu/);
    expect(executionProviders(loadWorkerConfig({ EXECUTION_PROVIDERS: 'cpu' }))).toEqual(['cpu']);
  });

  it('converts the environment\'s strings', () => {
    const c = loadWorkerConfig({ WORKER_CONCURRENCY: '16', WORKER_BATCH_SIZE: '8', EXECUTION_PROVIDERS: 'cpu', WORKER_METRICS_PORT: '0' });
    expect([c.WORKER_CONCURRENCY, c.WORKER_BATCH_SIZE, c.WORKER_METRICS_PORT]).toEqual([16, 8, 0]);
    expect(executionProviders(c)).toEqual(['cpu']);
  });

  it('names every bad setting', () => {
    try {
      loadWorkerConfig({ WORKER_CONCURRENCY: '0', EXECUTION_PROVIDERS: 'cuda;cpu', WORKER_LOCK_DURATION_MS: 'soon' });
      throw new Error('accepted bad settings');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const text = (err as ConfigError).problems.join('\n');
      expect(text).toMatch(/WORKER_CONCURRENCY=.?0.?: /);
      expect(text).toMatch(/EXECUTION_PROVIDERS="cuda;cpu"/);
      expect(text).toMatch(/WORKER_LOCK_DURATION_MS="soon"/);
    }
  });

  it('reads NEUROTRIAGE_CONFIG_FILE like loadConfig, the environment winning', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nt-worker-cfg-'));
    try {
      const file = path.join(dir, 'config.json');
      writeFileSync(file, JSON.stringify({ WORKER_BATCH_SIZE: 16, EXECUTION_PROVIDERS: 'cuda,cpu', WORKER_CONCURRENCY: 8 }));
      const c = loadWorkerConfig({ NEUROTRIAGE_CONFIG_FILE: file, WORKER_CONCURRENCY: '4' });
      expect([c.WORKER_BATCH_SIZE, c.WORKER_CONCURRENCY]).toEqual([16, 4]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('WORKER_LOAD_THREADS (the old name) still sets the loader process count; WORKER_LOAD_PROCESSES wins', () => {
    expect(loadWorkerConfig({ WORKER_LOAD_THREADS: '4' }).WORKER_LOAD_PROCESSES).toBe(4);
    expect(loadWorkerConfig({ WORKER_LOAD_THREADS: '4', WORKER_LOAD_PROCESSES: '1' }).WORKER_LOAD_PROCESSES).toBe(1);
    const env = { WORKER_LOAD_THREADS: '3' };
    loadWorkerConfig(env);
    expect(env).toEqual({ WORKER_LOAD_THREADS: '3' }); // the caller's environment is not changed
  });

  it('reads the site\'s operating points and the partial-study wait, refusing a sensitivity out of range', () => {
    const c = loadWorkerConfig({ TRIAGE_STAT_SENSITIVITY: '0.975', WORKER_PARTIAL_WAIT_SECONDS: '60' });
    expect(sensitivitySettings(c)).toEqual({ STAT: 0.975 });
    expect(c.WORKER_PARTIAL_WAIT_SECONDS).toBe(60);
    expect(sensitivitySettings(loadWorkerConfig({}))).toEqual({});
    expect(() => loadWorkerConfig({ TRIAGE_URGENT_SENSITIVITY: '1.5' })).toThrow(/TRIAGE_URGENT_SENSITIVITY=.?1\.5.?: /);
    expect(() => loadWorkerConfig({ TRIAGE_STAT_SENSITIVITY: 'high' })).toThrow(ConfigError);
  });
});
