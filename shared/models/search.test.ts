import { rankBySearch, searchScore } from './search';
import { cosine } from './scoring';

const v = (...x: number[]) => Float32Array.from(x);

describe('search score', () => {
  test('is a query score with the normal-study sentence as contrast', () => {
    const image = v(1, 1, 0);
    const text = v(1, 0, 0);
    const normal = v(0, 1, 0);
    expect(searchScore(image, text, normal)).toBeCloseTo(cosine(image, text) - cosine(image, normal), 9);
    expect(searchScore(image, text, null)).toBeCloseTo(cosine(image, text), 9);
  });

  test('ranks a study that looks like the text above one that merely looks like any brain', () => {
    // Both studies are equally close to the text by cosine; only one differs from a normal study.
    const text = v(1, 0, 1);
    const normal = v(0, 0, 1);
    const studies = [{ id: 'normal-looking', image: v(0, 0, 1) }, { id: 'finding', image: v(1, 0, 0) }];
    expect(cosine(studies[0].image, text)).toBeCloseTo(cosine(studies[1].image, text), 9);
    expect(rankBySearch(studies, (s) => s.image, text, normal).map((r) => r.item.id)).toEqual(['finding', 'normal-looking']);
  });
});
