// docker-compose.yml, validated without a Docker engine: Debian's docker-compose 1.29 resolves and checks the
// file (`docker-compose config`, every profile on), then the resolved services are checked against what the code
// expects: settings each service accepts, ports Prometheus scrapes, secrets that exist as compose secrets, Redis
// durability, the GPU reservation, and the images' Dockerfile targets.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { loadConfig, loadSection, ConfigSchema } from '../../shared/config';
import { ListenerSectionSchema, loadListenerSettings } from '../../services/listener/config';
import { WorkerConfigSchema, loadWorkerConfig } from '../../services/worker/config';
import { ApiSettingsSchema, API_DEFAULTS } from '../../services/api/settings';
import { loadReportsConfig, ReportsSettingsSchema } from '../../services/api/inbound/config';
import { OutboundSettingsSchema } from '../../services/api/outbound/config';
import { RetentionSettingsSchema } from '../../tools/retention';
import { ROOT } from './manifests';

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string; target: string };
  command?: string[];
  environment?: Record<string, string | number>;
  ports?: (string | { target: number; published: number; host_ip?: string })[];
  profiles?: string[];
  secrets?: (string | { source: string })[];
  volumes?: (string | { type: string; source: string; target: string })[];
  read_only?: boolean;
  cap_drop?: string[];
  deploy?: { resources?: { reservations?: { devices?: { driver: string; count: number; capabilities: string[] }[] } } };
  healthcheck?: { test: string[] };
  mem_limit?: string | number;
}
interface Compose {
  services: Record<string, Service>;
  secrets: Record<string, { file: string }>;
  volumes: Record<string, unknown>;
}

/** An empty env file, so a developer's .env beside docker-compose.yml cannot change what is checked. */
const EMPTY_ENV = path.join(mkdtempSync(path.join(tmpdir(), 'nt-compose-')), 'empty.env');
writeFileSync(EMPTY_ENV, '');
afterAll(() => rmSync(path.dirname(EMPTY_ENV), { recursive: true, force: true }));

function composeConfig(args: string[] = []): Compose {
  let out: string;
  try {
    out = execFileSync('docker-compose', ['-f', path.join(ROOT, 'docker-compose.yml'), '--env-file', EMPTY_ENV, ...args, 'config'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      // Nor may the developer's environment.
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      cwd: ROOT,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error('docker-compose not found: npm run setup installs Debian\'s docker-compose');
    throw new Error(`docker-compose config failed: ${e.stderr ?? e.message}`);
  }
  return YAML.parse(out) as Compose;
}

const all = composeConfig(['--profile', 'gpu', '--profile', 'demo']);
const plain = composeConfig();
const APP = ['listener', 'worker', 'worker-gpu', 'api'];
const KNOWN = new Set(
  [ConfigSchema, ListenerSectionSchema, WorkerConfigSchema, ApiSettingsSchema, OutboundSettingsSchema, ReportsSettingsSchema, RetentionSettingsSchema].flatMap((s) => Object.keys(s.properties)),
);
const env = (s: string) => Object.fromEntries(Object.entries(all.services[s].environment ?? {}).map(([k, v]) => [k, String(v)]));

test('docker-compose config accepts the file; the default run has no GPU worker and no demo PACS', () => {
  // docker-compose 1.29 lists every service in `config` and keeps their profiles; `up` starts those without one.
  const byDefault = Object.entries(plain.services).filter(([, s]) => !s.profiles).map(([n]) => n).sort();
  expect(byDefault).toEqual(['api', 'grafana', 'listener', 'prometheus', 'redis', 'worker']);
  expect(all.services.orthanc.profiles).toEqual(['demo']);
  expect(Object.keys(all.services).sort()).toEqual(['api', 'grafana', 'listener', 'orthanc', 'prometheus', 'redis', 'worker', 'worker-gpu']);
});

test.each(APP)('%s gets only settings the services know, and they pass validation', (name) => {
  const e = env(name);
  expect(Object.keys(e).filter((k) => !KNOWN.has(k) && k !== 'TZ')).toEqual([]);
  expect(() => loadConfig(e)).not.toThrow();
  if (name === 'listener') expect(loadListenerSettings(e).METRICS_HOST).toBe('0.0.0.0');
  if (name.startsWith('worker')) expect(loadWorkerConfig(e).WORKER_METRICS_HOST).toBe('0.0.0.0');
  if (name === 'api') expect(loadSection(ApiSettingsSchema, API_DEFAULTS, e).API_TOKENS).toBe('/run/secrets/api_tokens');
});

test.each(APP)('%s runs its own entry point from the runtime image, read-only and without capabilities', (name) => {
  const s = all.services[name];
  const entry = name.startsWith('worker') ? 'worker' : name;
  expect(s.command).toEqual([`dist/services/${entry}/main.js`]);
  expect(s.build?.dockerfile).toBe('docker/Dockerfile');
  expect(s.build?.target).toBe(name === 'worker-gpu' ? 'gpu' : 'runtime');
  expect(s.read_only).toBe(true);
  expect(s.cap_drop).toEqual(['ALL']);
  expect(s.volumes).toContain('nt-data:/data:rw');
});

test('the Dockerfile has the targets compose builds, and the images run as a non-root user', () => {
  const dockerfile = readFileSync(path.join(ROOT, 'docker/Dockerfile'), 'utf8');
  const stages = [...dockerfile.matchAll(/^FROM\s+\S+\s+AS\s+(\S+)/gim)].map((m) => m[1]);
  expect(stages).toEqual(expect.arrayContaining(['base', 'build', 'runtime', 'gpu', 'gpu-cuda12']));
  for (const target of ['runtime', 'gpu', 'gpu-cuda12']) {
    const body = dockerfile.split(/^FROM /m).find((s) => new RegExp(`AS ${target}\\s`).test(s))!;
    expect({ target, user: /^USER\s+(\S+)/m.exec(body)?.[1] }).toEqual({ target, user: '10001:10001' });
  }
  // The CUDA provider library must be built for exactly the onnxruntime-node the app depends on.
  const ort = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).dependencies['onnxruntime-node'];
  expect(ort).toBe('1.29.0');
  expect(dockerfile).toContain('ARG ORT_CUDA13_PACKAGE=com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9');
  // Nothing that may hold patient data or secrets goes into the build context.
  const ignore = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n');
  expect(ignore).toEqual(expect.arrayContaining(['var', '.git', '**/node_modules', '.env', '**/*.key']));
});

/** Compose memory sizes ("1536mb", "2g", bytes) in bytes. */
function bytes(v: string | number): number {
  if (typeof v === 'number') return v;
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)b?$/i.exec(v.trim());
  if (!m) throw new Error(`not a size: ${v}`);
  return Number(m[1]) * 1024 ** ' kmg'.indexOf(m[2].toLowerCase() || ' ');
}

test('Redis keeps an append-only file, never evicts, and fills up below its memory limit', () => {
  const redis = all.services.redis as Service & { command: string[] | string };
  const cmd = Array.isArray(redis.command) ? redis.command.join(' ') : redis.command;
  expect(cmd).toMatch(/--appendonly yes/);
  expect(cmd).toMatch(/--maxmemory-policy noeviction/);
  // noeviction without maxmemory never refuses a write: Redis grows until the kernel kills it.
  const maxmemory = /--maxmemory (\S+)/.exec(cmd)?.[1];
  expect(maxmemory).toBeDefined();
  expect(bytes(maxmemory!)).toBeLessThan(bytes(redis.mem_limit!));
  expect(bytes(maxmemory!)).toBeGreaterThanOrEqual(0.5 * bytes(redis.mem_limit!));
  expect(redis.volumes).toContain('redis-data:/data:rw');
  for (const name of APP) expect((all.services[name] as Service & { depends_on: Record<string, { condition: string }> }).depends_on.redis.condition).toBe('service_healthy');
});

test('the GPU worker reserves an NVIDIA GPU and prefers the CUDA provider', () => {
  const gpu = all.services['worker-gpu'];
  expect(gpu.profiles).toEqual(['gpu']);
  expect(gpu.deploy?.resources?.reservations?.devices).toEqual([{ driver: 'nvidia', count: 1, capabilities: ['gpu'] }]);
  expect(env('worker-gpu').EXECUTION_PROVIDERS).toBe('cuda,cpu');
  expect(env('worker').EXECUTION_PROVIDERS).toBe('cpu');
});

test('Prometheus scrapes the ports the services listen on, with the token secret it is given', () => {
  const prom = YAML.parse(readFileSync(path.join(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8'));
  const job = (name: string) => prom.scrape_configs.find((j: { job_name: string }) => j.job_name === name);
  expect(job('neurotriage-listener').dns_sd_configs[0]).toMatchObject({ names: ['listener'], port: Number(env('listener').METRICS_PORT) });
  expect(job('neurotriage-worker').dns_sd_configs[0]).toMatchObject({ names: ['worker', 'worker-gpu'], port: Number(env('worker').WORKER_METRICS_PORT) });
  expect(Number(env('worker-gpu').WORKER_METRICS_PORT)).toBe(Number(env('worker').WORKER_METRICS_PORT));
  expect(job('neurotriage-api').dns_sd_configs[0]).toMatchObject({ names: ['api'], port: Number(env('api').API_PORT) });
  const tokenFile = job('neurotriage-api').authorization.credentials_file as string;
  expect(all.services.prometheus.secrets).toEqual(expect.arrayContaining([expect.objectContaining({ source: path.basename(tokenFile) })]));
});

test('secrets are files mounted from deploy/secrets, never environment values; only the DICOM and report MLLP ports leave loopback', () => {
  for (const [name, secret] of Object.entries(all.secrets)) expect({ name, file: path.relative(ROOT, secret.file) }).toEqual({ name, file: expect.stringMatching(/^deploy\/secrets\//) });
  for (const [name, s] of Object.entries(all.services)) {
    for (const [k, v] of Object.entries(s.environment ?? {})) {
      if (/TOKEN|SECRET|PASSWORD/.test(k) && !k.endsWith('__FILE')) expect({ name, k, v: String(v) }).toEqual({ name, k, v: expect.stringMatching(/^\/run\/secrets\/|^change-me/) });
    }
    for (const p of s.ports ?? []) {
      const published = typeof p === 'string' ? { host_ip: p.split(':').length > 2 ? p.split(':')[0] : undefined, target: Number(p.split(':').pop()) } : p;
      if (name === 'listener') expect(published.target).toBe(11112);
      else if (name === 'api' && published.target === 2575) expect(loadReportsConfig(env('api')).mllp?.port).toBe(2575);
      else expect({ name, host: published.host_ip }).toEqual({ name, host: '127.0.0.1' });
    }
  }
});

test('every service has a memory limit', () => {
  for (const [name, s] of Object.entries(all.services)) expect({ name, limit: s.mem_limit !== undefined && bytes(s.mem_limit) > 0 }).toEqual({ name, limit: true });
});

test('healthchecks ask the services\' /readyz on the port each listens on', () => {
  const ports: Record<string, string> = { listener: env('listener').METRICS_PORT, worker: env('worker').WORKER_METRICS_PORT, 'worker-gpu': env('worker-gpu').WORKER_METRICS_PORT, api: env('api').API_PORT };
  for (const [name, port] of Object.entries(ports)) {
    expect({ name, check: all.services[name].healthcheck?.test.join(' ') }).toEqual({ name, check: expect.stringContaining(`http://127.0.0.1:${port}/readyz`) });
  }
});

test('no DICOM TLS port is published while the listener has no DICOM_TLS_PORT', () => {
  const listener = all.services.listener;
  const targets = (listener.ports ?? []).map((p) => (typeof p === 'string' ? Number(p.split(':').pop()) : p.target));
  expect(env('listener').DICOM_TLS_PORT).toBeUndefined();
  expect(targets).toEqual([Number(env('listener').DICOM_PORT)]);
});
