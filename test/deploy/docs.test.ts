// What the operator docs must (not) say: no pointer outside the repository, no figure the repository did not
// measure, the Prometheus token with role metrics and secrets readable by the containers that read them, and a GPU
// guide that matches the Dockerfile's provider package; every setting the services read documented, and the README's
// Settings table naming none they do not read.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './manifests';
import { ConfigSchema } from '../../shared/config';
import { ListenerSectionSchema } from '../../services/listener/config';
import { WorkerConfigSchema } from '../../services/worker/config';
import { ApiSettingsSchema } from '../../services/api/settings';
import { ReportsSettingsSchema } from '../../services/api/inbound/config';
import { OutboundSettingsSchema } from '../../services/api/outbound/config';
import { RetentionSettingsSchema } from '../../tools/retention';
import { StartSchema } from '../../scripts/start-targets';

const read = (p: string) => readFileSync(path.join(ROOT, p), 'utf8');
const files = (dir: string, ext: RegExp): string[] =>
  readdirSync(path.join(ROOT, dir)).flatMap((n) => {
    const rel = path.join(dir, n);
    if (statSync(path.join(ROOT, rel)).isDirectory()) return n === 'node_modules' ? [] : files(rel, ext);
    return ext.test(n) ? [rel] : [];
  });

test('no doc, manifest or source file points outside the repository (../shared/, /work/shared, "the project\'s GPU notes")', () => {
  const all = ['README.md', ...files('docs', /\.md$/), ...['services', 'shared', 'tools', 'bench', 'scripts', 'k8s', 'deploy', 'docker'].flatMap((d) => files(d, /\.(ts|md|ya?ml|json|lua|conf)$|^Dockerfile$/))];
  // The repository's own shared/ folder is imported as '../shared/<module>'; outside notes are capitalised files
  // (../shared/GPU.md) or the absolute /work/shared.
  const hits = all.filter((f) => /\.\.\/shared\/[A-Z]|\/work\/shared|project's GPU notes/.test(read(f)));
  expect(hits).toEqual([]);
});

test('operations.md quotes no CUDA figure (none is measured) and gives no wrong volume size', () => {
  const ops = read('docs/operations.md');
  expect(ops).not.toMatch(/1\.25 ms|38 ms|128x128x96|30x slower/);
  expect(read('docs/gpu.md')).toMatch(/no CUDA inference figure yet/);
});

test('operations.md gives Prometheus a token of role metrics and leaves each secret readable by its container', () => {
  const ops = read('docs/operations.md');
  const printf = /printf '(\[\{"token".*\])\\n'/.exec(ops)?.[1];
  expect(printf).toBeDefined();
  const entries = JSON.parse(printf!.replace(/"%s"/g, '"x"')) as { role: string; name: string }[];
  expect(entries.find((e) => e.name === 'prometheus')?.role).toBe('metrics');
  expect(ops).not.toMatch(/chmod 600 deploy\/secrets/);
  // Prometheus runs as nobody (65534), Grafana as 472, the API as 10001.
  expect(ops).toMatch(/chown 65534 deploy\/secrets\/prometheus-api-token/);
  expect(ops).toMatch(/chown 472 deploy\/secrets\/grafana-admin-password/);
  expect(ops).toMatch(/chown 10001 deploy\/secrets\/api-tokens\.json/);
});

test('docs/gpu.md installs the provider package the Dockerfile uses, into onnxruntime-node\'s folder', () => {
  const gpu = read('docs/gpu.md');
  const pkg = /^ARG ORT_CUDA13_PACKAGE=(\S+)$/m.exec(read('docker/Dockerfile'))?.[1];
  expect(gpu).toContain(`npm pack ${pkg}`);
  expect(gpu).toContain('node_modules/onnxruntime-node/bin/napi-v6/linux/x64/');
  expect(gpu).toContain('--onnxruntime-node-install=cuda12');
  const ort = JSON.parse(read('package.json')).dependencies['onnxruntime-node'];
  expect(gpu).toContain(`onnxruntime-node\` ${ort}`);
});

test('every setting a service reads is documented, and the README\'s Settings table names only settings that are read', () => {
  const schemas = [ConfigSchema, ListenerSectionSchema, WorkerConfigSchema, ApiSettingsSchema, ReportsSettingsSchema, OutboundSettingsSchema, RetentionSettingsSchema, StartSchema];
  const readKeys = new Set([...schemas.flatMap((s) => Object.keys(s.properties)), 'NEUROTRIAGE_CONFIG_FILE']);
  const docs = ['README.md', ...files('docs', /\.md$/)].map(read).join('\n');
  expect([...readKeys].filter((k) => !new RegExp(`\`${k}\``).test(docs))).toEqual([]);
  const readme = read('README.md');
  const table = /^## Settings\n([\s\S]*?)^## /m.exec(readme)?.[1] ?? '';
  const rows = table.split('\n').filter((l) => l.startsWith('| `'));
  expect(rows.length).toBeGreaterThan(20);
  const named = rows.flatMap((l) => [...l.split(' | ')[0].matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]));
  expect(named.filter((k) => !readKeys.has(k))).toEqual([]);
});
