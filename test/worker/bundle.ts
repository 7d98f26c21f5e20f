// Model bundles for the worker's tests: the reference bundle (onnx-models/, trained) when it is there, and the
// training recipe's fixture bundle (real ONNX files and tokenizer, RANDOM weights, never committed) for tests about
// queue behaviour and plumbing, where scores do not matter.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseManifest, type Manifest } from '../../shared/model-manifest';
import { python } from '../models/python';

export const REFERENCE_BUNDLE = path.resolve(__dirname, '..', '..', 'onnx-models');

/** The trained reference bundle's directory, or null with the reason when its manifest is absent. */
export function referenceBundle(): { dir: string; why?: undefined } | { dir: null; why: string } {
  return existsSync(path.join(REFERENCE_BUNDLE, 'manifest.json'))
    ? { dir: REFERENCE_BUNDLE }
    : { dir: null, why: `no trained reference bundle: ${path.join(REFERENCE_BUNDLE, 'manifest.json')} is absent (npm run models:train makes it)` };
}

/** onnx-models/training/fixture_bundle.py into a temp dir (about 2 s). */
export function makeTinyBundle(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'nt-tiny-bundle-'));
  python('fixture_bundle.py', [dir]);
  return dir;
}

export function readManifest(dir: string): Manifest {
  return parseManifest(JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')));
}
