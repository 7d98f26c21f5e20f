// Model bundles for the worker's tests: the reference bundle (onnx-models/, trained) when it is there, and a tiny
// untrained bundle built on the fly (real ONNX files and tokenizer, random weights) for tests about queue
// behaviour, where scores do not matter.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_PREPROCESSING } from '../../shared/imaging/spec';
import type { Preprocessing } from '../../shared/model-manifest';
import { python, PYTHON } from '../models/python';

export const REFERENCE_BUNDLE = path.resolve(__dirname, '..', '..', 'onnx-models');

/** The trained reference bundle's directory, or null (with the reason) when its manifest is absent. */
export function referenceBundle(): { dir: string } | { dir: null; why: string } {
  return existsSync(path.join(REFERENCE_BUNDLE, 'manifest.json'))
    ? { dir: REFERENCE_BUNDLE }
    : { dir: null, why: `no trained reference bundle: ${path.join(REFERENCE_BUNDLE, 'manifest.json')} is absent (npm run models:train makes it)` };
}

const CORPUS = [
  'acute infarct with restricted diffusion in the left middle cerebral artery territory',
  'enlarged ventricles hydrocephalus with periventricular signal',
  'normal brain, no haemorrhage, mass or infarct',
];

export function makeTinyBundle(preprocessing: Preprocessing = DEFAULT_PREPROCESSING): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'nt-tiny-bundle-'));
  python('nt_tokenizer.py', ['train', '120', path.join(dir, 'tokenizer.json')], JSON.stringify(CORPUS));
  const [d, h, w] = preprocessing.shape;
  execFileSync(PYTHON, [path.join(__dirname, 'make_tiny_bundle.py'), dir, String(d), String(h), String(w)], {
    input: JSON.stringify(preprocessing),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return dir;
}
