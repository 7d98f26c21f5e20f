// The API's response schemas are also its serializers (Fastify drops every property a response schema does not
// name): what the worker stores must survive them.
import Fastify from 'fastify';
import type { StudyResult } from '../../shared/results';
import { StudyResultSchema } from '../../shared/result-schema';

const result: StudyResult = {
  StudyInstanceUID: '1.2.3',
  priority: 'ROUTINE',
  priorityProbability: null,
  findings: [],
  abnormalProbability: null,
  sequencesUsed: ['DWI'],
  sequencesMissing: [],
  series: [
    { SeriesInstanceUID: '1.2.3.4', SeriesNumber: 4, sequence: 'DWI b=1000', used: true, dropped: [{ images: 7, reason: 'missing-slices' }] },
    {
      SeriesInstanceUID: '1.2.3.5', SeriesNumber: 5, sequence: 'FLAIR', used: true, contrastEnhanced: true,
      dropped: [{ images: 2, reason: 'refused-at-intake', refusal: 'invalid-image', status: 'A900' }],
    },
    // A series the listener refused whole at C-STORE (docs/worker.md "Instances refused at intake").
    { SeriesInstanceUID: '1.2.3.6', sequence: 'unknown', used: false, reason: 'refused-at-intake', dropped: [{ images: 12, reason: 'refused-at-intake', refusal: 'malformed-dataset', status: 'C000' }] },
    { SeriesInstanceUID: '1.2.3.7', SeriesNumber: 6, sequence: 'T2', used: true, joinedWith: ['1.2.3.8'], lossyCompressed: true },
    { SeriesInstanceUID: '1.2.3.8', SeriesNumber: 56, sequence: 'T2', used: true, joinedWith: ['1.2.3.7'] },
  ],
  confidence: 0.8,
  model: { bundleId: 'b', version: '1' },
  judgedWith: { querySetVersion: 'q', classThresholds: {} },
  provider: 'cpu',
  timingsMs: { decode: 1, preprocess: 1, inference: 1, scoring: 1, total: 4 },
  receivedAt: 1,
  scoredAt: 2,
};

describe('StudyResultSchema', () => {
  it("keeps each series' images left out (dropped, with a refusal's code and status), the series joined with it, post-contrast and lossy-history flags: why the confidence is lower reaches the API and the page", async () => {
    const app = Fastify();
    app.get('/result', { schema: { response: { 200: StudyResultSchema } } }, async () => result);
    try {
      const res = await app.inject({ method: 'GET', url: '/result' });
      expect(res.statusCode).toBe(200);
      expect(res.json().series).toEqual(result.series);
    } finally {
      await app.close();
    }
  });
});
