// MR pixel values are arbitrary units: a Rescale Intercept that shifts every value of a series (a PACS or scanner
// that writes stored values with an offset, positive or negative) must not change the canonical volume. The grid
// beyond the stack is filled with the stack's darkest value, its air, not with 0, which would sit inside or above
// the shifted head's intensities and move Otsu's threshold, the z-score and the percentiles. The darkest value is
// taken robustly (0.1th percentile), so a few stray pixels far below the air do not become the background.
import { loadStudyVolumes } from '../../shared/imaging/study';
import { DEFAULT_PREPROCESSING, parsePreprocessing } from '../../shared/imaging/spec';
import type { Vec3 } from '../../shared/imaging/dicom-header';
import { axialPositions, makeSeries, phantom, uid } from '../../shared/imaging/synthetic';
import { backgroundValue } from '../../shared/imaging/resample';

const CENTRE: Vec3 = [0, 10, 25];
const head = phantom(CENTRE, [15, 0, 40]);

/** A T2 series (60 mm of the grid's 144: most of the grid lies beyond the stack) whose modality values are head + offset. */
async function t2Volume(
  offset: number,
  rescale?: { slope: number; intercept: number },
  spec = DEFAULT_PREPROCESSING,
  extra: { intensity?: (p: Vec3) => number; signed?: boolean } = {},
): Promise<Float32Array> {
  const files = makeSeries({
    StudyInstanceUID: uid(),
    SeriesInstanceUID: uid(),
    SeriesDescription: 't2_tse_tra',
    positions: axialPositions(CENTRE, 12, 5),
    intensity: extra.intensity ?? ((p) => head(p) + offset),
    signed: extra.signed ?? false,
    ...(rescale ? { rescale } : {}),
  }).map((data, i) => ({ name: `f${i}.dcm`, data }));
  const out = await loadStudyVolumes(files, spec, { sequences: ['T2'] });
  const v = out.volumes.T2;
  if (!v) throw new Error(`no T2 volume: ${JSON.stringify(out.series)}`);
  return v;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

let reference: Float32Array;
beforeAll(async () => {
  reference = await t2Volume(0);
});

test.each([
  ['negative intercept (-1024)', -1024, { slope: 1, intercept: -1024 }],
  ['positive intercept (+1000)', 1000, { slope: 1, intercept: 1000 }],
  ['slope 2 with an intercept of -100', -100, { slope: 2, intercept: -100 }],
])('%s: the same volume as the unshifted series', async (_name, offset, rescale) => {
  const shifted = await t2Volume(offset, rescale);
  expect(maxAbsDiff(shifted, reference)).toBeLessThan(1e-3);
});

test('percentile scaling is not moved by an intercept either', async () => {
  const spec = parsePreprocessing({ ...DEFAULT_PREPROCESSING, intensity: { ...DEFAULT_PREPROCESSING.intensity, method: 'percentile', clip: [0, 1] } });
  const a = await t2Volume(0, undefined, spec);
  const b = await t2Volume(1000, { slope: 1, intercept: 1000 }, spec);
  expect(maxAbsDiff(a, b)).toBeLessThan(1e-3);
});

test('a few stray pixels far below the air do not become the background of the whole grid', async () => {
  // Signed data: the first pixel of every slice at -3000 (12 of 49152 pixels), the rest as the reference.
  let strays = 0;
  const stray = (p: Vec3) => {
    if (p[0] < -108 && p[1] < -98) {
      strays += 1;
      return -3000;
    }
    return head(p);
  };
  const withStray = await t2Volume(0, undefined, DEFAULT_PREPROCESSING, { intensity: stray, signed: true });
  expect(strays).toBe(12);
  let changed = 0;
  for (let i = 0; i < reference.length; i++) if (Math.abs(withStray[i] - reference[i]) > 0.05) changed += 1;
  expect(changed / reference.length).toBeLessThan(0.01);
});

test('backgroundValue: the minimum when the air reaches it (0 for noisy air from 0), the air when the minimum is a stray', () => {
  // 10000 voxels: 40 % noisy air 0..9, the rest tissue 200..1199.
  const data = new Float32Array(10000).map((_, i) => (i < 4000 ? i % 10 : 200 + (i % 1000)));
  const vol = { data, columns: 100, rows: 100, slices: 1 };
  expect(backgroundValue(vol)).toBe(0);
  expect(backgroundValue({ ...vol, data: data.map((v) => v - 1024) })).toBe(-1024);
  const stray = data.slice();
  stray[5000] = -3000;
  const b = backgroundValue({ ...vol, data: stray });
  expect(b).toBeGreaterThanOrEqual(-5);
  expect(b).toBeLessThanOrEqual(1);
});
