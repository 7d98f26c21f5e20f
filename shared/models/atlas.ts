// Reads a bundle's normal-appearance atlas (manifest.atlas, written by onnx-models/training/atlas.py): per sequence
// the voxelwise median and robust spread of the canonical volumes of an unlabelled training cohort, on the
// canonical grid (manifest.preprocessing.shape). The worker's localisation compares a study with it.
import { readFile } from 'node:fs/promises';
import { float32FromLE } from '../float32';
import type { Manifest, Sequence } from '../model-manifest';
import { ModelBundleError } from './errors';

export interface SequenceAtlas {
  /** Voxelwise median, canonical grid [D, H, W]. */
  median: Float32Array;
  /** Voxelwise robust spread (> 0), same grid. */
  spread: Float32Array;
}

export type NormalAtlas = Partial<Record<Sequence, SequenceAtlas>>;

/** Float32 little-endian [2, D, H, W] as median and spread; the size must match the canonical grid. */
export function parseAtlasFile(bytes: Buffer, voxels: number, name: string): SequenceAtlas {
  if (bytes.byteLength !== 2 * voxels * 4) {
    throw new ModelBundleError(`atlas ${name} has ${bytes.byteLength} bytes; median and spread of ${voxels} float32 voxels need ${2 * voxels * 4}`);
  }
  const all = float32FromLE(bytes, `atlas ${name}`);
  const median = all.subarray(0, voxels);
  const spread = all.subarray(voxels);
  for (let i = 0; i < voxels; i++) {
    if (!Number.isFinite(median[i])) throw new ModelBundleError(`atlas ${name}: median at voxel ${i} is ${median[i]}, must be finite`);
    if (!(spread[i] > 0 && Number.isFinite(spread[i]))) throw new ModelBundleError(`atlas ${name}: spread at voxel ${i} is ${spread[i]}, must be finite and > 0`);
  }
  return { median, spread };
}

/** The bundle's atlas, or null when it has none (localisation then falls back to block occlusion). */
export async function loadAtlas(manifest: Manifest, file: (rel: string) => string): Promise<NormalAtlas | null> {
  if (!manifest.atlas) return null;
  const voxels = manifest.preprocessing.shape.reduce((a, b) => a * b, 1);
  const atlas: NormalAtlas = {};
  for (const [seq, rel] of Object.entries(manifest.atlas.files) as [Sequence, string][]) {
    atlas[seq] = parseAtlasFile(await readFile(file(rel)), voxels, rel);
  }
  return atlas;
}
