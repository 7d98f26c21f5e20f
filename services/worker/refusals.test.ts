import type { SeriesOutcome } from '../../shared/results';
import { applyRefusals } from './refusals';

const t2: SeriesOutcome = { SeriesInstanceUID: '1.2.2', SeriesNumber: 2, sequence: 'T2', used: true };
const flair: SeriesOutcome = { SeriesInstanceUID: '1.2.3', SeriesNumber: 3, sequence: 'FLAIR', used: true, dropped: [{ images: 2, reason: 'missing-slices' }] };
const dwi: SeriesOutcome[] = [
  { SeriesInstanceUID: '1.2.4', sequence: 'DWI b=0', used: true },
  { SeriesInstanceUID: '1.2.4', sequence: 'DWI b=1000', used: true },
];
const localiser: SeriesOutcome = { SeriesInstanceUID: '1.2.1', sequence: 'LOCALISER', used: false, reason: 'not-selected' };

describe('applyRefusals', () => {
  it('nothing refused: the series and completeness as they were', () => {
    expect(applyRefusals([t2], [], 0.9, 20)).toEqual({ series: [t2], completeness: 0.9 });
  });

  it('a 0122 refusal (an instance sent on another SOP class\'s context) is listed like the others', () => {
    const out = applyRefusals([t2], [{ SeriesInstanceUID: '1.2.8', refusal: 'sop-class-not-on-context', status: '0122', images: 4 }], 1, 20);
    expect(out.series[1]).toEqual({ SeriesInstanceUID: '1.2.8', sequence: 'unknown', used: false, reason: 'refused-at-intake', dropped: [{ images: 4, reason: 'refused-at-intake', refusal: 'sop-class-not-on-context', status: '0122' }] });
  });

  it('a series refused whole gets its own line; the completeness of the used series is unchanged', () => {
    const out = applyRefusals([flair], [{ SeriesInstanceUID: '1.2.9', refusal: 'invalid-image', status: 'A900', images: 12 }], 1, 20);
    expect(out.series).toEqual([
      flair,
      { SeriesInstanceUID: '1.2.9', sequence: 'unknown', used: false, reason: 'refused-at-intake', dropped: [{ images: 12, reason: 'refused-at-intake', refusal: 'invalid-image', status: 'A900' }] },
    ]);
    expect(out.completeness).toBe(1);
  });

  it('refused images of a used series are listed on it and lower the completeness', () => {
    const out = applyRefusals([t2, localiser], [
      { SeriesInstanceUID: '1.2.2', refusal: 'invalid-image', status: 'A900', images: 3 },
      { SeriesInstanceUID: '1.2.2', refusal: 'malformed-dataset', status: 'C000', images: 1 },
    ], 1, 16);
    expect(out.series[0].dropped).toEqual([
      { images: 3, reason: 'refused-at-intake', refusal: 'invalid-image', status: 'A900' },
      { images: 1, reason: 'refused-at-intake', refusal: 'malformed-dataset', status: 'C000' },
    ]);
    expect(out.series[1]).toEqual(localiser);
    expect(out.completeness).toBeCloseTo(16 / 20);
    // The input is not changed.
    expect(t2.dropped).toBeUndefined();
  });

  it('the gap refused images leave (missing-slices) is not counted twice', () => {
    // 20 kept, 2 missing: completeness 20/22; 3 refused of which 2 are the gap: one more missing.
    const out = applyRefusals([flair], [{ SeriesInstanceUID: '1.2.3', refusal: 'invalid-image', status: 'A900', images: 3 }], 20 / 22, 20);
    expect(out.completeness).toBeCloseTo(20 / 23);
  });

  it('refused images of a series not used are listed but do not lower the completeness', () => {
    const out = applyRefusals([localiser], [{ SeriesInstanceUID: '1.2.1', refusal: 'dataset-mismatch', status: 'A900', images: 2 }], 1, 16);
    expect(out.series[0]).toEqual({ ...localiser, dropped: [{ images: 2, reason: 'refused-at-intake', refusal: 'dataset-mismatch', status: 'A900' }] });
    expect(out.completeness).toBe(1);
  });

  it('a diffusion series (a line per b-value) gets the refused images once, on its first used line', () => {
    const out = applyRefusals(dwi, [{ SeriesInstanceUID: '1.2.4', refusal: 'invalid-image', status: 'A900', images: 4 }], 1, 40);
    expect(out.series[0].dropped).toHaveLength(1);
    expect(out.series[1].dropped).toBeUndefined();
    expect(out.completeness).toBeCloseTo(40 / 44);
  });

  it('a refused b=0 and b=1000 pair of a diffusion series whose b=0 is not used is one missing b=1000 slice, already a gap', () => {
    // As the loader reports a two-b-value series: the b=0 line unused, the b=1000 line used with the gap the pair left.
    const lines: SeriesOutcome[] = [
      { SeriesInstanceUID: '1.2.5', sequence: 'DWI_B0', used: false, reason: 'unsupported-sequence' },
      { SeriesInstanceUID: '1.2.5', sequence: 'DWI b=1000', used: true, dropped: [{ images: 1, reason: 'missing-slices' }] },
    ];
    const out = applyRefusals(lines, [{ SeriesInstanceUID: '1.2.5', refusal: 'invalid-image', status: 'A900', images: 2 }], 26 / 27, 26);
    expect(out.series[1].dropped).toEqual([{ images: 1, reason: 'missing-slices' }, { images: 2, reason: 'refused-at-intake', refusal: 'invalid-image', status: 'A900' }]);
    expect(out.completeness).toBeCloseTo(26 / 27);
    // Four refused at the ends of the stack (no gap): two of them are b=1000 slices the volume lacks.
    const ends = applyRefusals([lines[0], { ...lines[1], dropped: undefined }], [{ SeriesInstanceUID: '1.2.5', refusal: 'invalid-image', status: 'A900', images: 4 }], 1, 26);
    expect(ends.completeness).toBeCloseTo(26 / 28);
  });

  it('without the kept image count the completeness is left as it is', () => {
    expect(applyRefusals([t2], [{ SeriesInstanceUID: '1.2.2', refusal: 'invalid-image', status: 'A900', images: 3 }], 0.95, undefined).completeness).toBe(0.95);
  });
});
