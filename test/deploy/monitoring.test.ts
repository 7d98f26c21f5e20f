// Prometheus rules and config, the Grafana dashboard and provisioning, checked against the code: every metric a
// rule or a panel queries is one the services really export (names read from their source), every label matcher
// names a label that metric has, promtool accepts the rules, the config and every panel's PromQL, and the alert
// rules' unit tests pass. Needs promtool (Debian package prometheus, installed by npm run setup).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Registry, collectDefaultMetrics } from 'prom-client';
import YAML from 'yaml';
import type { Redis } from 'ioredis';
import { GAUGES_NAMED_TOTAL } from '../../shared/process-metrics';
import { createWorkerMetrics, DEAD_LETTER_REASONS, JOB_OUTCOMES } from '../../services/worker/metrics';
import { createOutboundMetrics, OUTBOUND_DEAD_LETTER_REASONS } from '../../services/api/outbound/metrics';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { buildTestApp, READER, SCRAPER } from '../api/helpers';
import { collectProcessMetrics, type ServiceName } from '../../shared/process-metrics';
import { ROOT } from './manifests';

const read = (p: string) => readFileSync(path.join(ROOT, p), 'utf8');

function promtool(args: string[]): string {
  try {
    return execFileSync('promtool', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (e.code === 'ENOENT') throw new Error('promtool not found: npm run setup installs Debian\'s prometheus package');
    throw new Error(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir)).flatMap((name) => {
    const rel = path.join(dir, name);
    if (statSync(path.join(ROOT, rel)).isDirectory()) return name === 'public' ? [] : sourceFiles(rel);
    return rel.endsWith('.ts') && !rel.endsWith('.test.ts') ? [rel] : [];
  });
}

/** Metric name -> its label names, from `new Counter|Gauge|Histogram|Summary({ name, labelNames })` in the code. */
function exportedMetrics(): Map<string, Set<string>> {
  const metrics = new Map<string, Set<string>>();
  const add = (name: string, labels: string[], histogram: boolean) => {
    const names = histogram ? [name, `${name}_bucket`, `${name}_sum`, `${name}_count`] : [name];
    for (const n of names) metrics.set(n, new Set([...labels, ...(n.endsWith('_bucket') ? ['le'] : [])]));
  };
  for (const file of [...sourceFiles('services'), ...sourceFiles('shared')]) {
    const src = readFileSync(path.join(ROOT, file), 'utf8');
    for (const m of src.matchAll(/new (Counter|Gauge|Histogram|Summary)(?:<[^>]*>)?\(\{\s*name:\s*'([a-zA-Z_:][a-zA-Z0-9_:]*)'([\s\S]{0,600}?)\}\)/g)) {
      const labels = /labelNames:\s*\[([^\]]*)\]/.exec(m[3])?.[1].match(/'([^']+)'/g)?.map((s) => s.slice(1, -1)) ?? [];
      add(m[2], labels, m[1] === 'Histogram' || m[1] === 'Summary');
    }
    // prom-client's process and Node.js metrics: under the prefix a service gives them, or (collectProcessMetrics)
    // under their standard names with a service label.
    const defaults: Registry[] = [];
    for (const m of src.matchAll(/collectDefaultMetrics\(\{[^}]*prefix:\s*'([a-z_]+)'/g)) {
      const registry = new Registry();
      collectDefaultMetrics({ register: registry, prefix: m[1] });
      defaults.push(registry);
    }
    for (const m of src.matchAll(/collectProcessMetrics\([^,]+,\s*'([a-z]+)'\)/g)) {
      const registry = new Registry();
      collectProcessMetrics(registry, m[1] as ServiceName);
      defaults.push(registry);
    }
    for (const registry of defaults) {
      for (const metric of registry.getMetricsAsArray()) {
        const type = (metric as unknown as { type: string }).type;
        const labels = [...((metric as unknown as { labelNames?: string[] }).labelNames ?? []), 'service'];
        add(metric.name, labels, type === 'histogram' || type === 'summary');
      }
    }
  }
  return metrics;
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'offset', 'bool', 'inf', 'nan', 'atan2']);

/** The metric selectors in a PromQL expression: name and the label names it matches on. */
export function selectors(expr: string): { name: string; labels: string[] }[] {
  const clean = expr
    .replace(/\$__\w+|\$\{[^}]+\}|\$\w+/g, '5m') // Grafana variables
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\boffset\s+\w+/g, ' ');
  const out: { name: string; labels: string[] }[] = [];
  for (const m of clean.matchAll(/(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?(\s*\()?/g)) {
    if (m[3] || KEYWORDS.has(m[1]) || /^\d/.test(m[1])) continue; // a function call, an operator keyword
    const labels = m[2] ? [...m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]) : [];
    out.push({ name: m[1], labels });
  }
  return out;
}

const rulesFile = 'deploy/prometheus/rules/neurotriage.rules.yml';
interface Rule { record?: string; alert?: string; expr: string; annotations?: Record<string, string> }
const groups = (YAML.parse(read(rulesFile)) as { groups: { name: string; rules: Rule[] }[] }).groups;
const rules = groups.flatMap((g) => g.rules);
const recorded = new Set(rules.filter((r) => r.record).map((r) => r.record!));
const dashboard = JSON.parse(read('deploy/grafana/dashboards/neurotriage.json')) as {
  uid: string;
  panels: { id: number; type: string; title: string; datasource?: { uid: string }; targets?: { expr: string; datasource?: { uid: string } }[] }[];
};
const panelExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

/** Problems with the metrics an expression uses: unknown names, or labels the metric does not have. */
function unknownMetrics(expr: string, metrics: Map<string, Set<string>>): string[] {
  const problems: string[] = [];
  for (const { name, labels } of selectors(expr)) {
    if (name === 'up' || recorded.has(name)) continue;
    const known = metrics.get(name);
    if (!known) {
      problems.push(`${name}: no such metric in services/ or shared/`);
      continue;
    }
    for (const l of labels) if (!known.has(l) && l !== 'job' && l !== 'instance') problems.push(`${name}{${l}}: no such label`);
  }
  return problems;
}

/** Every metric constructor in the code: type, name and label names (the names Prometheus conventions govern). */
function declaredMetrics(): { file: string; type: string; name: string; labels: string[] }[] {
  const out: { file: string; type: string; name: string; labels: string[] }[] = [];
  for (const file of [...sourceFiles('services'), ...sourceFiles('shared')]) {
    const src = readFileSync(path.join(ROOT, file), 'utf8');
    for (const m of src.matchAll(/new (Counter|Gauge|Histogram|Summary)(?:<[^>]*>)?\(\{\s*name:\s*'([a-zA-Z_:][a-zA-Z0-9_:]*)'([\s\S]{0,600}?)\}\)/g)) {
      const labels = /labelNames:\s*\[([^\]]*)\]/.exec(m[3])?.[1].match(/'([^']+)'/g)?.map((x) => x.slice(1, -1)) ?? [];
      out.push({ file, type: m[1], name: m[2], labels });
    }
  }
  return out;
}

describe('metric names', () => {
  const metrics = exportedMetrics();

  test('follow Prometheus conventions: neurotriage_<service>_ prefix, counters end in _total, base units, snake_case labels', () => {
    const declared = declaredMetrics();
    expect(declared.length).toBeGreaterThan(15);
    const problems: string[] = [];
    for (const d of declared) {
      const where = `${d.name} (${d.file})`;
      if (!/^neurotriage_(listener|worker|api|outbound)_[a-z0-9_]+$/.test(d.name)) problems.push(`${where}: not neurotriage_<service>_snake_case`);
      if (d.type === 'Counter' && !d.name.endsWith('_total')) problems.push(`${where}: a counter must end in _total`);
      if (d.type !== 'Counter' && /_(total|count|sum|bucket)$/.test(d.name)) problems.push(`${where}: only counters end in _total; _count/_sum/_bucket are reserved`);
      if (/_(ms|millis|milliseconds|minutes|hours|kb|mb|gb|percent)(_|$)/.test(d.name)) problems.push(`${where}: use base units (seconds, bytes, ratios)`);
      for (const l of d.labels) if (!/^[a-z][a-z0-9_]*$/.test(l) || l === 'le' || l === 'quantile') problems.push(`${where}: label ${l}`);
    }
    expect(problems).toEqual([]);
  });

  test('every metric the services declare is documented in docs/ (as `name` or `name{...}`)', () => {
    const docs = readdirSync(path.join(ROOT, 'docs')).filter((n) => n.endsWith('.md')).map((n) => read(path.join('docs', n))).join('\n');
    const names = [...new Set(declaredMetrics().map((d) => d.name))];
    expect(names.filter((name) => !new RegExp(`\`${name}[\`{]`).test(docs))).toEqual([]);
  });

  test('the code exports the metrics the dashboard and alerts are built on', () => {
    for (const name of ['neurotriage_listener_instances_total', 'neurotriage_worker_queue_jobs', 'neurotriage_worker_flags_total', 'neurotriage_listener_disk_free_bytes']) {
      expect(metrics.has(name)).toBe(true);
    }
    expect(metrics.get('neurotriage_worker_flags_total')).toEqual(new Set(['query', 'priority']));
  });

  test('the PromQL scanner finds names and label matchers, not functions, keywords or variables', () => {
    expect(selectors('sum by (le) (rate(foo_bucket{a="x", b=~"y|z"}[$__rate_interval])) / on () group_left bar offset 1d')).toEqual([
      { name: 'foo_bucket', labels: ['a', 'b'] },
      { name: 'bar', labels: [] },
    ]);
  });

  test.each(rules.map((r) => [r.alert ?? r.record!, r.expr]))('rule %s queries only exported metrics and labels', (_name, expr) => {
    expect(unknownMetrics(expr, metrics)).toEqual([]);
  });

  test.each(panelExprs.map((p) => [p.panel, p.expr]))('panel "%s" queries only exported metrics and labels: %s', (_panel, expr) => {
    expect(unknownMetrics(expr, metrics)).toEqual([]);
  });
});

describe('promtool', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'nt-prom-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('accepts the alert and recording rules', () => {
    expect(promtool(['check', 'rules', path.join(ROOT, rulesFile)])).toMatch(/SUCCESS: \d+ rules found/);
  });

  test('the alert rules behave as their unit tests say (promtool test rules)', () => {
    expect(promtool(['test', 'rules', path.join(ROOT, 'deploy/prometheus/tests/neurotriage.rules.test.yml')])).toMatch(/SUCCESS/);
  }, 60_000);

  test('accepts prometheus.yml (secret and rule paths pointed at this machine)', () => {
    writeFileSync(path.join(dir, 'token'), 'x');
    const config = read('deploy/prometheus/prometheus.yml')
      .replace('/etc/prometheus/rules/', `${path.join(ROOT, 'deploy/prometheus/rules')}/`)
      .replace('/run/secrets/prometheus_api_token', path.join(dir, 'token'));
    writeFileSync(path.join(dir, 'prometheus.yml'), config);
    expect(promtool(['check', 'config', path.join(dir, 'prometheus.yml')])).toMatch(/SUCCESS: .*valid prometheus config/);
  });

  test('every dashboard query is valid PromQL', () => {
    const asRules = {
      groups: [{ name: 'dashboard', rules: panelExprs.map((p, i) => ({ record: `dashboard:panel_${i}`, expr: p.expr.replace(/\$__\w+/g, '5m') })) }],
    };
    writeFileSync(path.join(dir, 'dashboard.rules.yml'), YAML.stringify(asRules));
    expect(promtool(['check', 'rules', path.join(dir, 'dashboard.rules.yml')])).toMatch(new RegExp(`SUCCESS: ${panelExprs.length} rules found`));
  });
});

describe('alerts', () => {
  const alerts = rules.filter((r) => r.alert);

  test('cover what the issue asks for', () => {
    expect(alerts.map((a) => a.alert)).toEqual(
      expect.arrayContaining([
        'NeurotriageQueueBackingUp', 'NeurotriageNoStudiesInWorkingHours', 'NeurotriageDeadLettersGrowing',
        'NeurotriageFlagRateDrift', 'NeurotriageDiskLow', 'NeurotriageModelsNotLoaded',
      ]),
    );
  });

  test('each has a runbook entry in docs/operations.md', () => {
    const headings = new Set([...read('docs/operations.md').matchAll(/^#+\s+(.+)$/gm)].map((m) => m[1].trim().toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')));
    for (const a of alerts) {
      const anchor = a.annotations?.runbook?.split('#')[1];
      expect({ alert: a.alert, anchor, exists: anchor !== undefined && headings.has(anchor) }).toEqual({ alert: a.alert, anchor, exists: true });
    }
  });

  test('the Prometheus Operator gets the same rules (k8s/base/prometheusrule.yaml; node test/deploy/sync-k8s-monitoring.js)', () => {
    const resource = YAML.parse(read('k8s/base/prometheusrule.yaml'));
    expect(resource.spec).toEqual(YAML.parse(read(rulesFile)));
  });
});

/**
 * Metrics left off the dashboard on purpose, each with why; the test below fails for any other
 * metric a service declares and no panel queries, so a new metric gets a panel or a line here.
 */
const NOT_ON_DASHBOARD: Record<string, string> = {
  neurotriage_api_audit_entries_total: 'bookkeeping: nothing an admin acts on',
  neurotriage_outbound_attempt_seconds: 'the "Result to delivery p95" panel shows delivery time end to end',
  neurotriage_api_reports_batch_count_mismatch_total: "the sender's miscount (BTS-1, FTS-1): every message was processed; the warning log names the counts",
};

describe('grafana', () => {
  test('the provisioned datasource is the one every panel uses', () => {
    const ds = YAML.parse(read('deploy/grafana/provisioning/datasources/prometheus.yml')).datasources[0];
    expect(ds.type).toBe('prometheus');
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
      expect({ panel: p.title, uid: p.datasource?.uid }).toEqual({ panel: p.title, uid: ds.uid });
      for (const t of p.targets ?? []) expect(t.datasource?.uid).toBe(ds.uid);
    }
  });

  test('Kubernetes gets the same dashboard, labelled for the Grafana sidecar (k8s/base/grafana-dashboard.yaml)', () => {
    const cm = YAML.parse(read('k8s/base/grafana-dashboard.yaml'));
    expect(cm.metadata.labels.grafana_dashboard).toBe('1');
    expect(JSON.parse(cm.data['neurotriage.json'])).toEqual(dashboard);
  });

  test('the dashboard provider reads the folder docker-compose mounts the dashboards into', () => {
    const provider = YAML.parse(read('deploy/grafana/provisioning/dashboards/neurotriage.yml')).providers[0];
    const compose = YAML.parse(read('docker-compose.yml'));
    expect(compose.services.grafana.volumes).toContain(`./deploy/grafana/dashboards:${provider.options.path}:ro`);
    expect(compose.services.grafana.volumes).toContain('./deploy/grafana/provisioning:/etc/grafana/provisioning:ro');
  });

  test('every metric the services declare is on a panel, or in NOT_ON_DASHBOARD with the reason', () => {
    const all = panelExprs.map((p) => p.expr).join('\n');
    const declared = [...new Set(declaredMetrics().map((d) => d.name))];
    const missing = declared.filter((name) => !new RegExp(`\\b${name}(_bucket|_count|_sum)?\\b`).test(all) && !(name in NOT_ON_DASHBOARD));
    expect(missing).toEqual([]);
    // An entry for a metric that is gone, or that a panel now shows, is stale.
    expect(Object.keys(NOT_ON_DASHBOARD).filter((name) => !declared.includes(name) || all.includes(name))).toEqual([]);
  });

  test('panels have unique ids and cover ingest, queue, scoring, flags, provider, errors and disk', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const all = panelExprs.map((p) => p.expr).join('\n');
    for (const metric of [
      'neurotriage_listener_instances_total', 'neurotriage_worker_queue_jobs', 'neurotriage_worker_stage_seconds_bucket',
      'neurotriage_worker_flags_total', 'neurotriage_worker_execution_provider_info', 'neurotriage_worker_dead_letters_total',
      'neurotriage_listener_disk_free_bytes',
    ]) {
      expect(all).toContain(metric);
    }
  });
});

describe('what the services export (promtool check metrics, counters at 0)', () => {
  let dir: string;
  let redis: Redis;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'nt-prom-metrics-'));
    redis = await startRedisClient('producer');
  });
  afterAll(async () => {
    await stopRedisClient(redis);
    rmSync(dir, { recursive: true, force: true });
  });

  /** promtool check metrics reads the exposition on stdin and prints one line per problem (exit 1 if any). */
  function checkMetrics(text: string): string {
    const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    if (run.error) throw run.error;
    return `${run.stdout}${run.stderr}`.trim();
  }

  test('the worker\'s /metrics passes promtool check metrics, with process metrics under their standard names', async () => {
    const m = createWorkerMetrics({ defaultMetrics: true });
    m.provider.set({ provider: 'cpu', preferred: 'cuda', model_version: 'b@1' }, 1);
    m.batchSize.observe({ sequence: 'DWI' }, 1);
    m.stageSeconds.observe({ stage: 'total' }, 0.5);
    const text = await m.registry.metrics();
    expect(checkMetrics(text)).toBe('');
    expect(text).toMatch(/^process_resident_memory_bytes\{service="worker"\} \d+/m);
    expect(text).not.toMatch(/_total\{[^}]*\} [\d.]+\n# HELP nodejs_active/);
    for (const g of GAUGES_NAMED_TOTAL) expect(text).not.toContain(`${g}{`);
  });

  test('the API\'s /metrics (outbound adapters included) passes promtool check metrics', async () => {
    const registry = new Registry();
    const app = await buildTestApp(redis, { registry });
    try {
      createOutboundMetrics(registry, ['hl7', 'sr', 'webhook']);
      await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: READER });
      const res = await app.inject({ method: 'GET', url: '/metrics', headers: SCRAPER });
      expect(res.statusCode).toBe(200);
      expect(checkMetrics(res.body)).toBe('');
      expect(res.body).toMatch(/^nodejs_eventloop_lag_p99_seconds\{service="api"\} /m);
      // The audit counter counts the read above.
      expect(res.body).toMatch(/^neurotriage_api_audit_entries_total [1-9]/m);
      // The live-update bounds' counters are exported at 0, so the first refusal or drop is an increase.
      for (const cap of ['user', 'process']) expect(res.body).toContain(`neurotriage_api_live_refused_total{cap="${cap}"} 0\n`);
      expect(res.body).toContain('neurotriage_api_live_dropped_total{reason="slow"} 0\n');
    } finally {
      await app.close();
    }
  });

  test('labelled counters exist at 0 before their first increment (a series born at 1 has no increase() to alert on)', async () => {
    const text = await createWorkerMetrics().registry.metrics();
    for (const reason of DEAD_LETTER_REASONS) expect(text).toContain(`neurotriage_worker_dead_letters_total{reason="${reason}"} 0\n`);
    for (const outcome of JOB_OUTCOMES) expect(text).toContain(`neurotriage_worker_jobs_total{outcome="${outcome}"} 0\n`);
    const registry = new Registry();
    createOutboundMetrics(registry, ['hl7', 'webhook']);
    const outbound = await registry.metrics();
    for (const adapter of ['hl7', 'webhook'] as const) {
      for (const reason of OUTBOUND_DEAD_LETTER_REASONS[adapter]) {
        expect(outbound).toContain(`neurotriage_outbound_dead_lettered_total{adapter="${adapter}",reason="${reason}"} 0\n`);
      }
      expect(outbound).toContain(`neurotriage_outbound_sent_total{adapter="${adapter}"} 0\n`);
    }
    expect(outbound).not.toContain('adapter="sr"'); // not configured, not exported
  });

  test('every reason the worker code dead-letters with is one of the reasons exported at 0', () => {
    const reasons = new Set<string>();
    for (const file of sourceFiles('services/worker')) {
      const src = read(file);
      for (const m of src.matchAll(/new PermanentStudyError\(\s*[^;]*?,\s*'([a-z-]+)'/g)) reasons.add(m[1]);
      for (const m of src.matchAll(/reason = [^;]*'([a-z-]+)'/g)) reasons.add(m[1]);
    }
    expect(reasons.size).toBeGreaterThan(5);
    expect([...reasons].filter((r) => !(DEAD_LETTER_REASONS as readonly string[]).includes(r))).toEqual([]);
  });

  test('the batch-size panel reads 1 when every batch is 1, and 8 when every batch is 8 (promtool, the code\'s buckets)', async () => {
    const panel = panelExprs.find((p) => p.panel.startsWith('Inference batch size'))!;
    const expr = panel.expr.replace(/\$__rate_interval/g, '5m');
    const series = async (size: number) => {
      const m = createWorkerMetrics();
      for (let i = 0; i < 10; i++) m.batchSize.observe({ sequence: 'DWI' }, size);
      const values = (await m.batchSize.get()).values.filter((v) => v.metricName?.endsWith('_bucket'));
      // Ten batches a minute for 20 minutes: each bucket grows by what one minute's batches put in it.
      return values.map((v) => ({ series: `neurotriage_worker_inference_batch_size_bucket{sequence="DWI", le="${(v.labels as Record<string, string | number>).le}"}`, values: `0+${v.value}x20` }));
    };
    const tests = [];
    for (const size of [1, 8]) {
      tests.push({ interval: '1m', input_series: await series(size), promql_expr_test: [{ expr, eval_time: '15m', exp_samples: [{ labels: '{sequence="DWI"}', value: size }] }] });
    }
    writeFileSync(path.join(dir, 'batch.test.yml'), YAML.stringify({ tests }));
    expect(promtool(['test', 'rules', path.join(dir, 'batch.test.yml')])).toMatch(/SUCCESS/);
  });

  test('the "Waiting now" panel adds waiting and prioritized jobs, counted once however many workers report them (promtool)', () => {
    const expr = panelExprs.find((p) => p.panel === 'Waiting now')!.expr;
    // Every worker samples the same queue: 15 new arrivals waiting, 25 studies of a bulk re-score prioritized.
    const input_series = ['w1', 'w2'].flatMap((instance) =>
      Object.entries({ waiting: 15, prioritized: 25, delayed: 500, active: 4 }).map(([state, n]) => ({
        series: `neurotriage_worker_queue_jobs{state="${state}", instance="${instance}", job="neurotriage-worker"}`,
        values: `${n}x20`,
      })));
    const tests = [{ interval: '1m', input_series, promql_expr_test: [{ expr, eval_time: '10m', exp_samples: [{ labels: '{}', value: 40 }] }] }];
    writeFileSync(path.join(dir, 'waiting.test.yml'), YAML.stringify({ tests }));
    expect(promtool(['test', 'rules', path.join(dir, 'waiting.test.yml')])).toMatch(/SUCCESS/);
  });

  test('counter panels fall back to 0 (or on() vector(0)), so an idle system shows 0 rather than "No data"', () => {
    for (const p of panelExprs) {
      const counter = /\b(increase|rate)\(neurotriage_\w+_total\b/.test(p.expr) && !p.expr.includes('histogram_quantile');
      const listenerRate = /neurotriage_listener_(instances|received_bytes)_total/.test(p.expr); // traffic-shaped, by outcome
      if (counter && !listenerRate) expect({ panel: p.panel, expr: p.expr }).toEqual({ panel: p.panel, expr: expect.stringMatching(/ or on\(\) vector\(0\)$/) });
    }
  });
});
