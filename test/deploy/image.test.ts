// What the runtime image can run, checked without building it: the image installs production dependencies only
// (`npm ci --omit=dev`), so every package the services, shared code and the retention tool import at run time must
// be in the production dependency tree. Imports are read with the TypeScript parser (type-only imports are erased
// by the compiler and do not count); the tree comes from `npm ls --omit=dev` on the installed node_modules.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ts from 'typescript';
import YAML from 'yaml';
import { ROOT, renderKustomize } from './manifests';

/** What `node dist/...` runs in the image: the three services, the shared code, the retention job. */
const RUNTIME_SOURCES = ['services', 'shared', 'tools/retention.ts'];

function sources(rel: string): string[] {
  const abs = path.join(ROOT, rel);
  if (statSync(abs).isFile()) return [rel];
  return readdirSync(abs).flatMap((n) => sources(path.join(rel, n))).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.d.ts'));
}

/** Bare module specifiers a file loads at run time. */
function runtimeImports(file: string): string[] {
  return importsOf(readFileSync(path.join(ROOT, file), 'utf8'));
}

/** Every bare module specifier in a file, type-only imports included (the type checker needs those packages too). */
function allImports(file: string): string[] {
  const sf = ts.createSourceFile(file, readFileSync(path.join(ROOT, file), 'utf8'), ts.ScriptTarget.ES2022, true);
  const out: string[] = [];
  sf.forEachChild((node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) out.push(node.moduleSpecifier.text);
  });
  return out.filter((s) => !s.startsWith('.') && !s.startsWith('/'));
}

function importsOf(source: string): string[] {
  const sf = ts.createSourceFile('module.ts', source, ts.ScriptTarget.ES2022, true);
  const out: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly && ts.isStringLiteral(node.moduleSpecifier)) {
      const named = node.importClause?.namedBindings;
      const allTypes = !node.importClause?.name && named && ts.isNamedImports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly);
      if (!allTypes) out.push(node.moduleSpecifier.text);
    }
    if (ts.isExportDeclaration(node) && !node.isTypeOnly && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) out.push(node.moduleSpecifier.text);
    if (ts.isCallExpression(node) && node.arguments.length === 1 && ts.isStringLiteral(node.arguments[0])) {
      const callee = node.expression;
      if ((ts.isIdentifier(callee) && callee.text === 'require') || callee.kind === ts.SyntaxKind.ImportKeyword) out.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out.filter((s) => !s.startsWith('.') && !s.startsWith('/'));
}

const packageOf = (spec: string) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

test('every package the runtime code imports is installed by npm ci --omit=dev', () => {
  // npm ls exits non-zero on any extraneous or invalid package in the tree; the listing is still complete.
  const tree = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    .stdout.split('\n')
    .filter((p) => p.includes('node_modules'))
    .map((p) => packageOf(p.slice(p.lastIndexOf('node_modules/') + 'node_modules/'.length)));
  const prod = new Set(tree);
  expect(prod.has('onnxruntime-node')).toBe(true);
  const files = RUNTIME_SOURCES.flatMap(sources);
  expect(files.length).toBeGreaterThan(20);
  const missing: string[] = [];
  for (const f of files) {
    for (const spec of runtimeImports(f)) {
      if (!builtins.has(spec) && !builtins.has(spec.split('/')[0]) && !prod.has(packageOf(spec))) missing.push(`${f}: ${spec}`);
    }
  }
  expect(missing).toEqual([]);
});

test('the import scanner sees value imports, re-exports, require and import(), and skips type-only imports', () => {
  const source = [
    "import type { A } from 'types-only';",
    "import { type B } from 'named-types-only';",
    "import { c, type D } from 'value';",
    "import e from 'default-value';",
    "import './local';",
    "export * from 'reexp';",
    "export type { F } from 'reexp-types';",
    "const g = require('req');",
    "const h = import('dyn');",
  ].join('\n');
  expect(importsOf(source)).toEqual(['value', 'default-value', 'reexp', 'req', 'dyn']);
});

test('every package any source file imports (type-only too) is declared in package.json; runtime value imports as dependencies', () => {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
  const declared = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.devDependencies)]);
  const files = ['services', 'shared', 'tools', 'bench', 'scripts', 'test'].flatMap(sources);
  const undeclared = new Set<string>();
  for (const f of files) {
    for (const spec of allImports(f)) if (!builtins.has(spec) && !builtins.has(spec.split('/')[0]) && !declared.has(packageOf(spec))) undeclared.add(`${f}: ${spec}`);
  }
  expect([...undeclared]).toEqual([]);
  const devOnly = RUNTIME_SOURCES.flatMap(sources).flatMap((f) => runtimeImports(f).map((spec) => [f, packageOf(spec)]))
    .filter(([, p]) => !builtins.has(p) && !(p in pkg.dependencies));
  expect(devOnly).toEqual([]);
  // The installed version is the declared one (a declaration that drifted from the tree would install another).
  const core = JSON.parse(readFileSync(path.join(ROOT, 'node_modules/@medplum/core/package.json'), 'utf8')).version;
  expect(pkg.dependencies['@medplum/core']).toBe(core);
});

test('the images run a supported Node LTS, and .ci/run runs the test suite on that Node', () => {
  const dockerfile = readFileSync(path.join(ROOT, 'docker/Dockerfile'), 'utf8');
  const major = /^ARG NODE_IMAGE=node:(\d+)-bookworm-slim$/m.exec(dockerfile)?.[1];
  expect(['22', '24']).toContain(major);
  const ci = readFileSync(path.join(ROOT, '.ci/run'), 'utf8');
  expect(ci).toContain(`npx -y -p node@${major} -c`);
  expect(ci).toMatch(new RegExp(`startsWith\\(\\\\"${major}\\.\\\\"\\).*&& node node_modules/jest/bin/jest\\.js'$`, 'm'));
  // The README's test command runs first, on the machine's own Node.
  expect(ci).toMatch(/^npm test$/m);
});

/**
 * The .dockerignore rules as Docker applies them: a path is left out when a pattern matches it or one of its parent
 * folders; `**` spans folders, `*` and `?` stay within one; a later `!pattern` takes a path back in.
 */
export function dockerignore(text: string): (file: string) => boolean {
  const rules = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((l) => {
    const keep = l.startsWith('!');
    const pattern = path.posix.normalize((keep ? l.slice(1) : l).replace(/^\/+/, ''));
    const source = pattern.split(/(\*\*\/|\*\*|\*|\?)/).map((part) => {
      if (part === '**/') return '(?:.*/)?';
      if (part === '**') return '.*';
      if (part === '*') return '[^/]*';
      if (part === '?') return '[^/]';
      return part.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }).join('');
    return { keep, re: new RegExp(`^${source}$`) };
  });
  return (file) => {
    const parts = file.split('/');
    const paths = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const r of rules) if (paths.some((p) => r.re.test(p))) excluded = !r.keep;
    return excluded;
  };
}

test('the .dockerignore matcher follows Docker\'s rules', () => {
  const ignored = dockerignore('**/node_modules\ntest\n*.log\n**/*.test.ts\ndocker-compose*.yml\n.env.*\nbench\n!bench/keep.ts\n');
  expect(['test/deploy/a.ts', 'a/node_modules/x.js', 'x.log', 'services/a.test.ts', 'docker-compose.override.yml', '.env.local', 'bench/a.ts'].filter((f) => !ignored(f))).toEqual([]);
  expect(['services/test/a.ts', 'logs/x.log', 'services/a.ts', '.envrc', 'bench/keep.ts', 'testing/a.ts'].filter(ignored)).toEqual([]);
});

/** Every `dist/...js` a Kubernetes manifest, docker-compose.yml or the Dockerfile starts. */
function entryPoints(): string[] {
  const out = new Set<string>();
  const walk = (v: unknown): void => {
    if (typeof v === 'string') for (const m of v.matchAll(/\bdist\/[\w/.-]+\.js\b/g)) out.add(m[0]);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  for (const overlay of ['cpu', 'gpu', 'external-redis']) walk(renderKustomize(`k8s/overlays/${overlay}`));
  walk(YAML.parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')));
  walk(readFileSync(path.join(ROOT, 'docker/Dockerfile'), 'utf8'));
  return [...out].sort();
}

// `docker build` was never run here (no engine): this runs the build stage's compile on exactly the files the build
// context holds. bench/ imports test helpers, which .dockerignore leaves out, so `npm run build` failed there (TS2307)
// and no image target could be built.
test('the build stage compiles from the Docker build context alone, to every entry point the deployments start', () => {
  const dockerfile = readFileSync(path.join(ROOT, 'docker/Dockerfile'), 'utf8');
  const build = dockerfile.split(/^FROM /m).find((s) => /AS build\s/.test(s))!;
  expect(build).toMatch(/^COPY \. \.$/m);
  expect(build).toMatch(/^RUN npm run build\b/m);
  const ignored = dockerignore(readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));
  const listed = spawnSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: ROOT, encoding: 'utf8' }).stdout.split('\0');
  const context = listed.filter((f) => f && existsSync(path.join(ROOT, f)) && statSync(path.join(ROOT, f)).isFile() && !ignored(f));
  expect(context).toContain('package.json');
  const dir = mkdtempSync(path.join(tmpdir(), 'nt-image-context-'));
  try {
    for (const f of context) {
      mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      copyFileSync(path.join(ROOT, f), path.join(dir, f));
    }
    // The deps stage's node_modules (npm ci --include=dev); copies, not links, of the sources, so an import that
    // reaches outside the context cannot resolve through a link back into the repository.
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
    const run = spawnSync('npm', ['run', 'build', '--silent'], { cwd: dir, encoding: 'utf8' });
    expect({ status: run.status, out: `${run.stdout}${run.stderr}`.split('\n').slice(0, 10) }).toEqual({ status: 0, out: [''] });
    const entries = entryPoints();
    expect(entries).toEqual(expect.arrayContaining(['dist/services/api/main.js', 'dist/services/listener/main.js', 'dist/services/worker/main.js', 'dist/tools/retention.js']));
    expect(entries.filter((e) => !existsSync(path.join(dir, e)))).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);
