// The running release of neurotriage (package.json's version), for what names the software it came from: the SR's
// Software Versions. Found by walking up from this file, so it is the same from src (tests) and from dist.
import { readFileSync } from 'node:fs';
import path from 'node:path';

let cached: string | undefined;

export function softwareVersion(): string {
  if (cached !== undefined) return cached;
  cached = 'unknown';
  for (let dir = __dirname, i = 0; i < 4; dir = path.dirname(dir), i++) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'neurotriage' && pkg.version) {
        cached = pkg.version;
        break;
      }
    } catch {
      // no package.json here: one level up
    }
  }
  return cached;
}
