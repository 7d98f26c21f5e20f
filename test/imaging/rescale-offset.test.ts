// MR pixel values are arbitrary units: a Rescale Intercept that shifts every value of a series (a PACS or scanner
// that writes stored values with an offset, positive or negative) must not change the canonical volume. The grid
// beyond the stack is filled with the stack's darkest value, its air, not with 0, which would sit inside or above
// the shifted head's intensities and move Otsu's threshold, the z-score and the percentiles.
import { loadStudyVolumes } from '../../shared/imaging/study';
import { DEFAULT_PREPROCESSING, parsePreprocessing } from '../../shared/imaging/spec';
import type { Vec3 } from '../../shared/imaging/dicom-header';
import { axialPositions, makeSeries, phantom, uid } from '../../shared/imaging/synthetic';

const CENTRE: Vec3 = [0, 10, 25];
const head = phantom(CENTRE, [15, 0, 40]);

/** A T2 series (60 mm of the grid's 144: most of the grid lies beyond the stack) whose modality values are head + offset. */
async function t2Volume(offset: number, rescale?: { slope: number; intercept: number }, spec = DEFAULT_PREPROCESSING): Promise<Float32Array> {
  const files = makeSeries({
    StudyInstanceUID: uid(),
    SeriesInstanceUID: uid(),
    SeriesDescription: 't2_tse_tra',
    positions: axialPositions(CENTRE, 12, 5),
    intensity: (p) => head(p) + offset,
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
