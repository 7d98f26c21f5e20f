// Regenerates k8s/base/prometheusrule.yaml from deploy/prometheus/rules/neurotriage.rules.yml, so the compose
// Prometheus and the Prometheus Operator evaluate the same rules. monitoring.test.ts fails when they differ.
//   node test/deploy/sync-prometheusrule.js
const fs = require('node:fs');
const path = require('node:path');
const YAML = require('yaml');

const root = path.resolve(__dirname, '../..');
const rules = YAML.parse(fs.readFileSync(path.join(root, 'deploy/prometheus/rules/neurotriage.rules.yml'), 'utf8'));
const resource = {
  apiVersion: 'monitoring.coreos.com/v1',
  kind: 'PrometheusRule',
  metadata: { name: 'neurotriage', labels: { 'app.kubernetes.io/part-of': 'neurotriage', release: 'kube-prometheus-stack' } },
  spec: rules,
};
const header =
  '# Generated from deploy/prometheus/rules/neurotriage.rules.yml (test/deploy/monitoring.test.ts fails when they differ).\n' +
  '# Regenerate: node test/deploy/sync-prometheusrule.js\n';
fs.writeFileSync(path.join(root, 'k8s/base/prometheusrule.yaml'), header + YAML.stringify(resource, { lineWidth: 0 }));
