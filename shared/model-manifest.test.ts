// The manifest's fixed sets of strings (priorities, sequences) are JSON Schema enums: a bundle with a bad value is
// refused with the allowed values named, and a good one parses.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseManifest } from './model-manifest';

const reference = JSON.parse(readFileSync(path.join(__dirname, '..', 'onnx-models', 'manifest.json'), 'utf8')) as { queries: { priority: string; sequences?: string[] }[] };

test('the committed manifest parses', () => {
  expect(parseManifest(reference).queries.length).toBe(reference.queries.length);
});

test('a bad priority or sequence names the allowed values', () => {
  const bad = { ...reference, queries: reference.queries.map((q, i) => (i === 0 ? { ...q, priority: 'HIGH', sequences: ['DWI', 'CT'] } : q)) };
  expect(() => parseManifest(bad)).toThrow(/\/queries\/0\/priority: Expected one of STAT, URGENT, ROUTINE/);
  expect(() => parseManifest(bad)).toThrow(/\/queries\/0\/sequences\/1: Expected one of T1, T2, FLAIR, DWI, ADC, SWI/);
});
