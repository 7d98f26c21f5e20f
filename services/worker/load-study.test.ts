// The result's line per series: what the imaging layer decided, said in the result.
import type { SeriesReport } from '../../shared/imaging';
import { completeness, seriesOutcome } from './load-study';

const report = (over: Partial<SeriesReport>): SeriesReport => ({
  SeriesInstanceUID: '1.2.3', key: '1.2.3', SeriesNumber: 3, frames: 24, sequence: 'FLAIR', rule: 'txt-flair', contrastEnhanced: false, used: true, ...over,
});

describe('seriesOutcome', () => {
  it('says when the series scored is post-contrast (the only FLAIR of the study was acquired after gadolinium)', () => {
    expect(seriesOutcome(report({ contrastEnhanced: true }), 0)).toEqual({ SeriesInstanceUID: '1.2.3', SeriesNumber: 3, sequence: 'FLAIR', used: true, contrastEnhanced: true });
    expect(seriesOutcome(report({}), 0)).not.toHaveProperty('contrastEnhanced');
  });
  it('says when the series scored has lossy history (lossy-compressed before, sent on decompressed), present only when true', () => {
    expect(seriesOutcome(report({ lossyCompressed: true }), 0)).toEqual({ SeriesInstanceUID: '1.2.3', SeriesNumber: 3, sequence: 'FLAIR', used: true, lossyCompressed: true });
    expect(seriesOutcome(report({}), 0)).not.toHaveProperty('lossyCompressed');
  });
  it('names the series a used series was joined with (one acquisition split across series), and a part left out of a slab', () => {
    expect(seriesOutcome(report({ sequence: 'DWI', bValue: 1000, joinedWith: ['1.2.4'] }), 0)).toEqual({ SeriesInstanceUID: '1.2.3', SeriesNumber: 3, sequence: 'DWI b=1000', used: true, joinedWith: ['1.2.4'] });
    const slab = report({ geometry: { plane: 'axial', slices: 17 } as SeriesReport['geometry'], dropped: [{ images: 13, reason: 'unjoined-part' }] });
    const outcomes = [seriesOutcome(slab, 0)];
    expect(outcomes[0].dropped).toEqual([{ images: 13, reason: 'unjoined-part' }]);
    expect(completeness(outcomes, [slab])).toBeCloseTo(17 / 30);
  });
  it('lists images left out and unreadable files, and the reason with its detail', () => {
    const o = seriesOutcome(report({ used: false, reason: 'not-selected', dropped: [{ images: 2, reason: 'missing-slices' }] }), 1);
    expect(o).toMatchObject({ used: false, reason: 'not-selected', dropped: [{ images: 2, reason: 'missing-slices' }, { images: 1, reason: 'unreadable' }] });
  });
});
