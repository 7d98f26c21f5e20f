// The preprocessing spec (the model manifest's PreprocessingSchema) as used by tools and tests, and reading it
// from a manifest or a bare spec file.
import { Value } from '@sinclair/typebox/value';
import { PreprocessingSchema, type Preprocessing } from '../model-manifest';
import { PreprocessingSpecError } from './errors';

/** Default canonical grid: 3 mm isotropic LPS, 48x64x64 (144 x 192 x 192 mm), foreground-centred, z-scored. */
export const DEFAULT_PREPROCESSING: Preprocessing = Object.freeze({
  orientation: 'LPS',
  spacingMm: [3, 3, 3],
  shape: [48, 64, 64],
  centre: 'foreground-centroid',
  interpolation: 'trilinear',
  intensity: { method: 'zscore-foreground', clip: [-5, 5] },
}) as Preprocessing;

/** Accepts a whole model manifest (its `preprocessing`) or a bare preprocessing object. */
export function parsePreprocessing(json: unknown): Preprocessing {
  const candidate = json && typeof json === 'object' && 'preprocessing' in json ? (json as { preprocessing: unknown }).preprocessing : json;
  const problems = [...Value.Errors(PreprocessingSchema, candidate)].map((e) => `${e.path || '(root)'}: ${e.message}`);
  if (problems.length > 0) throw new PreprocessingSpecError(`invalid preprocessing spec: ${problems.slice(0, 10).join('; ')}`);
  return candidate as Preprocessing;
}
