// buildStack on hand-made frames: the failure reasons and the notes, without DICOM in the way.
import { buildStack, type GeometryInput } from './geometry';
import { UnusableSeriesError } from './errors';
import type { Vec3 } from './dicom-header';

const AXIAL = [1, 0, 0, 0, 1, 0];
function frames(zs: number[], over: Partial<GeometryInput<number>> = {}): GeometryInput<number>[] {
  return zs.map((z, k) => ({ item: k, ImagePositionPatient: [-100, -100, z] as Vec3, ImageOrientationPatient: AXIAL, PixelSpacing: [1, 1], Rows: 16, Columns: 16, order: [k], ...over }));
}
const zs = (n: number, step: number) => Array.from({ length: n }, (_, k) => k * step);

function reasonOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof UnusableSeriesError) return e.reason;
    throw e;
  }
  return undefined;
}

describe('buildStack', () => {
  it('sorts by position along the normal and measures spacing', () => {
    const s = buildStack(frames([20, 0, 10, 5, 15, 25, 30, 35, 40, 45].map((z) => z)));
    expect(s.items.length).toBe(10);
    expect(s.sliceSpacing).toBe(5);
    expect([...s.sliceOffsets]).toEqual(zs(10, 5));
    expect(s.normal).toEqual([0, 0, 1]);
    expect(s.notes.nonUniform).toBe(false);
  });

  it.each([
    ['no orientation', frames(zs(10, 5), { ImageOrientationPatient: undefined }), 'missing-geometry'],
    ['non-orthogonal cosines', frames(zs(10, 5), { ImageOrientationPatient: [1, 0, 0, 0.5, 0.866, 0] }), 'missing-geometry'],
    ['zero pixel spacing', frames(zs(10, 5), { PixelSpacing: [0, 1] }), 'missing-geometry'],
    ['a kilometre pixel spacing (damaged header)', frames(zs(10, 5), { PixelSpacing: [1e6, 1e6] }), 'missing-geometry'],
    ['one pixel wide', frames(zs(10, 5), { Columns: 1 }), 'missing-geometry'],
    ['all at one position', frames(Array(10).fill(7)), 'too-few-slices'],
    ['five slices', frames(zs(5, 5)), 'too-few-slices'],
    ['ten 1 mm slices (10 mm)', frames(zs(10, 1)), 'insufficient-coverage'],
  ])('%s -> %s', (_n, input, reason) => {
    expect(reasonOf(() => buildStack(input))).toBe(reason);
  });

  it('says what usable geometry is when no frame has it (a 1-pixel-wide image has position, orientation and spacing)', () => {
    expect(() => buildStack(frames(zs(10, 5), { Columns: 1 }))).toThrow(/none of 10 frames has usable geometry \(position, orthonormal orientation, pixel spacing above 0 and up to 50 mm, at least 2 x 2 pixels\)/);
  });

  it('splits by matrix size as well as orientation and keeps the largest', () => {
    const s = buildStack([...frames(zs(12, 5)), ...frames(zs(9, 5), { Rows: 32, Columns: 32 })]);
    expect(s.rows).toBe(16);
    expect(s.notes.stacksDropped).toBe(1);
    expect(s.notes.framesInDroppedStacks).toBe(9);
  });

  it('counts frames without geometry but keeps the rest', () => {
    const s = buildStack([...frames(zs(10, 5)), ...frames([1, 2], { ImagePositionPatient: undefined })]);
    expect(s.notes.framesWithoutGeometry).toBe(2);
    expect(s.items.length).toBe(10);
  });

  it('measures in-plane shift between slices', () => {
    const input = frames(zs(10, 5));
    input[4].ImagePositionPatient = [-98, -100, 20];
    expect(buildStack(input).notes.inPlaneShiftMm).toBeCloseTo(2, 6);
  });
});
