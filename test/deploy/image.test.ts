// What the runtime image can run, checked without building it: the image installs production dependencies only
// (`npm ci --omit=dev`), so every package the services, shared code and the retention tool import at run time must
// be in the production dependency tree. Imports are read with the TypeScript parser (type-only imports are erased
// by the compiler and do not count); the tree comes from `npm ls --omit=dev` on the installed node_modules.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import ts from 'typescript';
import { ROOT } from './manifests';

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
