// The API's response schemas are also its serializers (Fastify drops every property a response schema does not
// name): what the worker stores must survive them.
import Fastify from 'fastify';
import type { StudyResult } from '../../shared/results';
import { StudyResultSchema } from './schemas';

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
    { SeriesInstanceUID: '1.2.3.5', SeriesNumber: 5, sequence: 'FLAIR', used: true, contrastEnhanced: true },
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
  it("keeps each series' images left out (dropped) and post-contrast flag: why the confidence is lower reaches the API and the page", async () => {
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
