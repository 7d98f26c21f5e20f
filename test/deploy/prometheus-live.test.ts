// Prometheus against the real services: the listener, a worker (real ONNX Runtime) and the API run in this process
// on loopback ports, a real Prometheus (Debian's package) scrapes them with the job names and the API bearer token
// of deploy/prometheus/prometheus.yml and evaluates deploy/prometheus/rules. After a study is sent and scored,
// every target is up, every rule evaluates without error, every dashboard query is accepted by the query engine,
// and the panels that show current state have data.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import YAML from 'yaml';
import { createLogger } from '../../shared/logger';
import { connectRedis } from '../../shared/redis';
import { resultKeys } from '../../shared/results';
import { testListenerSettings } from '../listener/harness';
import { startListener, type RunningListener } from '../../services/listener/listener';
import { startWorker, type RunningWorker } from '../../services/worker/main';
import { startRedis, type TestRedis } from '../helpers/redis';
import { storescu } from '../helpers/dcmtk';
import { makeTinyBundle, referenceBundle } from '../worker/bundle';
import { workerEnv } from '../worker/helpers';
import { synthStudy } from '../worker/studies';
import { buildTestApp, TOKENS } from '../api/helpers';
import { ROOT } from './manifests';
import { stop, waitFor } from './net';
import { freePort } from '../helpers/ports';

const CALLING_AE = 'PROM_PACS';

let redisServer: TestRedis;
let client: Redis;
let dir: string;
let modelsDir: string;
let ownBundle = false;
let listener: RunningListener;
let worker: RunningWorker;
let app: FastifyInstance;
let prometheus: ChildProcess | undefined;
let promPort: number;

interface PromResponse<T> { status: string; error?: string; data: T }

async function prom<T>(p: string): Promise<PromResponse<T>> {
  const res = await fetch(`http://127.0.0.1:${promPort}${p}`);
  return (await res.json()) as PromResponse<T>;
}

async function query(expr: string): Promise<PromResponse<{ resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }>> {
  return prom(`/api/v1/query?query=${encodeURIComponent(expr)}`);
}

beforeAll(async () => {
  redisServer = await startRedis();
  client = connectRedis(redisServer.url, 'worker');
  dir = mkdtempSync(path.join(tmpdir(), 'nt-prom-live-'));
  const dataDir = path.join(dir, 'data');
  const ref = referenceBundle();
  modelsDir = ref.dir ?? makeTinyBundle();
  ownBundle = !ref.dir;
  const silent = createLogger('test', 'silent');
  listener = await startListener({
    settings: testListenerSettings(redisServer.url, dataDir, { METRICS_HOST: '127.0.0.1', DICOM_ALLOWED_CALLING_AES: CALLING_AE }),
    log: silent,
  });
  worker = await startWorker({ env: workerEnv({ redisUrl: redisServer.url, dataDir, modelsDir, extra: { WORKER_LOAD_THREADS: '0' } }), log: silent });
  app = await buildTestApp(client, { config: { DATA_DIR: dataDir, DISK_MIN_FREE_MB: 1 } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const apiPort = (app.server.address() as { port: number }).port;

  // The shipped config, with Docker DNS discovery swapped for these loopback ports and faster intervals.
  const shipped = YAML.parse(readFileSync(path.join(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8'));
  const targets: Record<string, number> = { 'neurotriage-listener': listener.metricsPort, 'neurotriage-worker': worker.metricsPort, 'neurotriage-api': apiPort };
  writeFileSync(path.join(dir, 'token'), TOKENS[0].token);
  // The rules as shipped, but every group evaluated each second (the recording group says 1m in production).
  const rules = YAML.parse(readFileSync(path.join(ROOT, 'deploy/prometheus/rules/neurotriage.rules.yml'), 'utf8'));
  for (const g of rules.groups) delete g.interval;
  writeFileSync(path.join(dir, 'rules.yml'), YAML.stringify(rules));
  const config = {
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    rule_files: [path.join(dir, 'rules.yml')],
    scrape_configs: shipped.scrape_configs
      .filter((j: { job_name: string }) => j.job_name in targets)
      .map((j: { job_name: string; dns_sd_configs?: unknown; authorization?: { credentials_file: string } }) => {
        const { dns_sd_configs: _dns, ...rest } = j;
        return {
          ...rest,
          ...(j.authorization ? { authorization: { ...j.authorization, credentials_file: path.join(dir, 'token') } } : {}),
          static_configs: [{ targets: [`127.0.0.1:${targets[j.job_name]}`] }],
        };
      }),
  };
  expect(config.scrape_configs.map((j: { job_name: string }) => j.job_name).sort()).toEqual(Object.keys(targets).sort());
  writeFileSync(path.join(dir, 'prometheus.yml'), YAML.stringify(config));
  promPort = await freePort();
  prometheus = spawn('prometheus', [
    `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'tsdb')}`,
    `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  prometheus.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  await waitFor('Prometheus to be ready', async () => {
    if (prometheus!.exitCode !== null) throw new Error(`prometheus exited: ${log}`);
    return (await fetch(`http://127.0.0.1:${promPort}/-/ready`).catch(() => undefined))?.ok ? true : undefined;
  });
}, 120_000);

afterAll(async () => {
  await stop(prometheus);
  await app?.close();
  await worker?.close();
  await listener?.close();
  client?.disconnect();
  await redisServer?.stop();
  rmSync(dir, { recursive: true, force: true });
  if (ownBundle) rmSync(modelsDir, { recursive: true, force: true });
});

test('scrapes every service, evaluates every rule, and answers every dashboard query', async () => {
  const study = synthStudy(5, 1, { fast: true });
  const inbox = path.join(dir, 'in');
  mkdirSync(inbox, { recursive: true });
  const files = study.files.map((f, i) => {
    const file = path.join(inbox, `${i}.dcm`);
    writeFileSync(file, f.data);
    return file;
  });
  const sent = await storescu({ port: listener.port, callingAe: CALLING_AE, calledAe: 'NEUROTRIAGE' }, files);
  expect(sent.statuses.every((s) => s === 0)).toBe(true);
  await waitFor('the study to be scored', async () => ((await client.get(resultKeys.result(study.StudyInstanceUID))) ? true : undefined), 90_000);
  // Two samples at least of each counter the rate() and increase() panels read (the worker's scored jobs and the
  // listener's instances: they are scraped separately, so seeing one twice says nothing about the other).
  for (const counter of ['neurotriage_worker_jobs_total{outcome="scored"}', 'neurotriage_listener_instances_total']) {
    await waitFor(`Prometheus to see ${counter} twice`, async () => {
      const r = await query(`min(count_over_time(${counter}[1m]))`);
      return Number(r.data.result[0]?.value[1] ?? 0) >= 2 ? true : undefined;
    });
  }

  // Every target answers (each has been scraped at least once by now).
  const up = await waitFor('all three targets scraped', async () => {
    const r = await query('up');
    return r.data.result.length === 3 ? r : undefined;
  });
  expect(Object.fromEntries(up.data.result.map((r) => [r.metric.job, r.value[1]]))).toEqual({
    'neurotriage-listener': '1', 'neurotriage-worker': '1', 'neurotriage-api': '1',
  });

  // Every rule evaluates without an error (health leaves "unknown" at its first evaluation).
  type Rules = { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
  const rules = await waitFor('every rule evaluated once', async () => {
    const r = await prom<Rules>('/api/v1/rules');
    return r.data.groups.flatMap((g) => g.rules).every((x) => x.health !== 'unknown') ? r : undefined;
  });
  const unhealthy = rules.data.groups.flatMap((g) => g.rules).filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`);
  expect(unhealthy).toEqual([]);
  // The models are loaded, so that alert is neither pending nor firing.
  const alerts = await prom<{ alerts: { labels: { alertname: string } }[] }>('/api/v1/alerts');
  expect(alerts.data.alerts.map((a) => a.labels.alertname)).not.toContain('NeurotriageModelsNotLoaded');

  const dashboard = JSON.parse(readFileSync(path.join(ROOT, 'deploy/grafana/dashboards/neurotriage.json'), 'utf8')) as {
    panels: { title: string; targets?: { expr: string }[] }[];
  };
  const withData = new Map<string, boolean>();
  for (const p of dashboard.panels) {
    for (const t of p.targets ?? []) {
      const r = await query(t.expr.replace(/\$__rate_interval/g, '1m'));
      expect({ panel: p.title, expr: t.expr, status: r.status, error: r.error }).toEqual({ panel: p.title, expr: t.expr, status: 'success', error: undefined });
      withData.set(p.title, (withData.get(p.title) ?? false) || r.data.result.length > 0);
    }
  }
  // Panels of current state must show something on a running system, and counter panels 0 rather than nothing
  // (counters exported at 0 per label, `or on() vector(0)` where no series exists yet).
  for (const title of [
    'Free disk under DATA_DIR', 'Study jobs by state', 'Model and execution provider in use', 'Targets up', 'Resident memory', 'Event loop lag p99',
    'Studies finished per hour', 'Instances received per minute', 'Dead-lettered studies (24 h)', 'Dead letters per hour by reason',
    'Retries and failures per hour', 'Outbound (HL7, SR, webhook)', 'API 5xx per minute', 'Waiting now',
  ]) {
    expect({ title, data: withData.get(title) }).toEqual({ title, data: true });
  }
  const provider = await query('neurotriage_worker_execution_provider_info == 1');
  expect(provider.data.result[0].metric.provider).toBe('cpu');
}, 180_000);
