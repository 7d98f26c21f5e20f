import { readFileSync } from 'node:fs';
import path from 'node:path';
import { softwareVersion } from './version';

it("is package.json's version, the same on every call", () => {
  const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
  expect(softwareVersion()).toBe(pkg.version);
  expect(softwareVersion()).toMatch(/^\d+\.\d+\.\d+/);
  expect(softwareVersion()).toBe(softwareVersion());
});
