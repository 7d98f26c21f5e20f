// Regenerates the Kubernetes copies of the monitoring files, so the compose stack and the Prometheus Operator /
// Grafana sidecar use the same rules and dashboard (kustomize cannot load files outside k8s/):
//   k8s/base/prometheusrule.yaml     <- deploy/prometheus/rules/neurotriage.rules.yml
//   k8s/base/grafana-dashboard.yaml  <- deploy/grafana/dashboards/neurotriage.json
// monitoring.test.ts fails when they differ.   node test/deploy/sync-k8s-monitoring.js
const fs = require('node:fs');
const path = require('node:path');
const YAML = require('yaml');

const root = path.resolve(__dirname, '../..');
const read = (p) => fs.readFileSync(path.join(root, p), 'utf8');
const header = (from) =>
  `# Generated from ${from} (test/deploy/monitoring.test.ts fails when they differ).\n` +
  '# Regenerate: node test/deploy/sync-k8s-monitoring.js\n';
const labels = { 'app.kubernetes.io/part-of': 'neurotriage' };

const rule = {
  apiVersion: 'monitoring.coreos.com/v1',
  kind: 'PrometheusRule',
  metadata: { name: 'neurotriage', labels: { ...labels, release: 'kube-prometheus-stack' } },
  spec: YAML.parse(read('deploy/prometheus/rules/neurotriage.rules.yml')),
};
fs.writeFileSync(path.join(root, 'k8s/base/prometheusrule.yaml'), header('deploy/prometheus/rules/neurotriage.rules.yml') + YAML.stringify(rule, { lineWidth: 0 }));

// kube-prometheus-stack's Grafana sidecar loads every ConfigMap labelled grafana_dashboard=1.
const dashboard = {
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'neurotriage-grafana-dashboard', labels: { ...labels, grafana_dashboard: '1' } },
  data: { 'neurotriage.json': read('deploy/grafana/dashboards/neurotriage.json') },
};
fs.writeFileSync(path.join(root, 'k8s/base/grafana-dashboard.yaml'), header('deploy/grafana/dashboards/neurotriage.json') + YAML.stringify(dashboard, { lineWidth: 0 }));
