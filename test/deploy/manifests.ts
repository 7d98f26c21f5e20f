// Offline validation of rendered Kubernetes manifests: `kubectl kustomize` renders an overlay; each object is
// checked twice, by the kubernetes-models runtime validators (types, enums, formats such as quantities) and by the
// TypeScript compiler against the same models' interfaces, whose excess-property check catches misspelt keys the
// runtime validators let through (what `kubeconform -strict` does, without a network).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';

export const ROOT = path.resolve(__dirname, '../..');

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  // Each test narrows what it reads; the validators below have checked the shape.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  spec?: any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  [key: string]: any;
}

/** KUBECTL overrides the binary. kubectl 1.21+ (kustomize v4+) is needed: Debian's 1.20 cannot render directories under `resources`. */
export function kubectl(): string {
  return process.env.KUBECTL ?? 'kubectl';
}

/** Renders a kustomization; `warnings` is what kustomize printed on stderr (deprecations and the like). */
export function renderKustomizeWithWarnings(dir: string): { objects: K8sObject[]; warnings: string } {
  const run = spawnSync(kubectl(), ['kustomize', path.join(ROOT, dir)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (run.error) {
    const e = run.error as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new Error(`${kubectl()} not found: install kubectl 1.21 or later`);
    throw e;
  }
  if (run.status !== 0) throw new Error(`kubectl kustomize ${dir} failed (kubectl 1.21+ needed): ${run.stderr}`);
  const objects = parseAllDocuments(run.stdout)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`${dir}: ${d.errors[0].message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
  return { objects, warnings: run.stderr.trim() };
}

export function renderKustomize(dir: string): K8sObject[] {
  return renderKustomizeWithWarnings(dir).objects;
}

interface ModelRef {
  module: string;
  iface: string;
  className: string;
}

/** Where the model of an apiVersion/kind lives: core and built-in groups, KEDA, the Prometheus Operator. */
export function modelFor(apiVersion: string, kind: string): ModelRef {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  let pkg: string;
  if (group === 'keda.sh') pkg = `@kubernetes-models/keda/keda.sh/${version}`;
  else if (group === 'monitoring.coreos.com') pkg = `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}`;
  else if (group === '') pkg = `kubernetes-models/${version}`;
  else pkg = `kubernetes-models/${group}/${version}`;
  return { module: `${pkg}/${kind}`, iface: `I${kind}`, className: kind };
}

/** Runtime validation (ajv, compiled from the OpenAPI schemas): one message per failing object. */
export function validateRuntime(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const o of objects) {
    const ref = modelFor(o.apiVersion, o.kind);
    let Model: new (data: unknown) => { validate(): void };
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      Model = require(ref.module)[ref.className];
    } catch {
      problems.push(`${o.kind}/${o.metadata.name}: no model for ${o.apiVersion} ${o.kind}`);
      continue;
    }
    try {
      new Model(o).validate();
    } catch (err) {
      problems.push(`${o.kind}/${o.metadata.name}: ${(err as Error).message}`);
    }
  }
  return problems;
}

/** Type-checks every object as an object literal of its model's interface; returns the compiler's messages. */
export function typeCheck(objects: K8sObject[]): string[] {
  const file = path.join(ROOT, 'test/deploy/__rendered_manifests__.ts');
  const imports = new Map<string, string>();
  const lines: string[] = [];
  objects.forEach((o, i) => {
    const ref = modelFor(o.apiVersion, o.kind);
    const alias = `T${imports.size}`;
    if (!imports.has(ref.module)) imports.set(ref.module, alias);
    lines.push(`// ${o.kind}/${o.metadata.name}\nexport const o${i}: ${imports.get(ref.module)} = ${JSON.stringify(o)};`);
  });
  const source = [...imports].map(([m, a]) => `import type { I${m.split('/').pop()} as ${a} } from '${m}';`).concat(lines).join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    target: ts.ScriptTarget.ES2022,
  };
  const host = ts.createCompilerHost(options);
  const read = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) =>
    path.resolve(name) === file ? ts.createSourceFile(name, source, lang) : read(name, lang, ...rest);
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
    const header = where >= 0 ? source.split('\n')[where - 1] ?? '' : '';
    return `${header.replace('// ', '')}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}

export function byKind(objects: K8sObject[], kind: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind);
}

export function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`${kind}/${name} not rendered`);
  return o;
}

/** Pod templates of every workload kind, with the owner for messages. */
export function podTemplates(objects: K8sObject[]): { owner: string; labels: Record<string, string>; spec: K8sObject['spec'] }[] {
  const out: { owner: string; labels: Record<string, string>; spec: K8sObject['spec'] }[] = [];
  for (const o of objects) {
    const owner = `${o.kind}/${o.metadata.name}`;
    if (o.kind === 'Deployment' || o.kind === 'StatefulSet') out.push({ owner, labels: o.spec.template.metadata.labels, spec: o.spec.template.spec });
    if (o.kind === 'CronJob') {
      const t = o.spec.jobTemplate.spec.template;
      out.push({ owner, labels: t.metadata.labels, spec: t.spec });
    }
  }
  return out;
}

export function matches(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}
