// Loads a model bundle directory: reads manifest.json, validates it against the contract (shared/model-manifest.ts)
// and checks the sha256 of every file it lists, refusing a bundle that does not match with a ModelBundleError that
// names each problem. Files are hashed by streaming so a large hospital model does not have to fit in memory twice.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ManifestError, parseManifest, type Manifest } from '../model-manifest';
import { ModelBundleError } from './errors';

export interface Bundle {
  dir: string;
  manifest: Manifest;
  /** Absolute path of a file named in the manifest (relative to the manifest). */
  file(rel: string): string;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function inside(dir: string, rel: string): string {
  const abs = path.resolve(dir, rel);
  if (path.isAbsolute(rel) || !abs.startsWith(dir + path.sep)) throw new ModelBundleError(`model bundle ${dir}: file ${rel} lies outside the bundle`);
  return abs;
}

/** Reads and verifies a bundle; throws ModelBundleError (permanent) on any mismatch. */
export async function loadBundle(dirArg: string): Promise<Bundle> {
  const dir = path.resolve(dirArg);
  const manifestPath = path.join(dir, 'manifest.json');
  let json: unknown;
  try {
    json = JSON.parse(await readFile(manifestPath, 'utf8'));
  } catch (err) {
    throw new ModelBundleError(`model bundle ${dir}: cannot read manifest.json: ${(err as Error).message}`);
  }
  let manifest: Manifest;
  try {
    manifest = parseManifest(json);
  } catch (err) {
    if (err instanceof ManifestError) throw new ModelBundleError(`model bundle ${dir}: ${err.message}`);
    throw err;
  }
  const problems: string[] = [];
  for (const [rel, expected] of Object.entries(manifest.files)) {
    const abs = inside(dir, rel);
    try {
      if (!(await stat(abs)).isFile()) {
        problems.push(`${rel}: not a file`);
        continue;
      }
    } catch {
      problems.push(`${rel}: missing`);
      continue;
    }
    const actual = await sha256File(abs);
    if (actual !== expected) problems.push(`${rel}: sha256 ${actual} does not match the manifest's ${expected}`);
  }
  if (problems.length > 0) {
    throw new ModelBundleError(`model bundle ${dir} (${manifest.bundleId} ${manifest.version}) refused:\n  - ${problems.join('\n  - ')}`);
  }
  return { dir, manifest, file: (rel) => inside(dir, rel) };
}
