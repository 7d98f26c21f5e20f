import { parseAtlasFile } from './atlas';
import { ModelBundleError } from './errors';

const float32 = (xs: number[]) => {
  const b = Buffer.alloc(xs.length * 4);
  xs.forEach((x, i) => b.writeFloatLE(x, i * 4));
  return b;
};

describe('bundle atlas file', () => {
  it('reads the median then the spread of each voxel', () => {
    const a = parseAtlasFile(float32([1, -2, 3, 0.5, 0.25, 2]), 3, 'atlas-t2.f32');
    expect([...a.median]).toEqual([1, -2, 3]);
    expect([...a.spread]).toEqual([0.5, 0.25, 2]);
  });

  it('refuses a file whose size does not fit the canonical grid, a median that is not a number, or a spread that is not positive', () => {
    expect(() => parseAtlasFile(float32([1, 2, 3, 4]), 3, 'atlas-t2.f32')).toThrow(ModelBundleError);
    expect(() => parseAtlasFile(float32([1, 2, 3, 4]), 3, 'atlas-t2.f32')).toThrow(/atlas-t2.f32 has 16 bytes; median and spread of 3 float32 voxels need 24/);
    expect(() => parseAtlasFile(float32([1, 2, 3, 0.5, 0, 1]), 3, 'atlas-dwi.f32')).toThrow(/atlas-dwi.f32: spread at voxel 1 is 0, must be finite and > 0/);
    expect(() => parseAtlasFile(float32([1, NaN, 3, 0.5, 1, 1]), 3, 'atlas-adc.f32')).toThrow(/atlas-adc.f32: median at voxel 1 is NaN, must be finite/);
  });
});
