// GET /api/v1/decision: the study-level decision the running bundle carries (manifest.decision: per priority class
// the table of sensitivity against false-positive rate on its calibration cohort) with the point in use marked, as
// the workers of this bundle reported it (the site's TRIAGE_STAT_SENSITIVITY / TRIAGE_URGENT_SENSITIVITY).
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { classThresholds } from '../../../shared/models/decision';
import { readJudging } from '../../../shared/queries';
import type { Redis } from 'ioredis';
import { loadedModel, type ModelStatus } from '../app';
import { DecisionResponse, problems } from '../schemas';

export const DECISION_RULE =
  'A finding is flagged when its calibrated probability P >= its threshold. A study takes the most urgent priority class with a flagged finding (ROUTINE when none); '
  + 'the bundle\'s queries of a class share the class threshold below, a site\'s own queries keep their own. Within a priority, studies are ordered by the highest P among the findings that set it.';

export async function decisionRoutes(fastify: FastifyInstance, opts: { redis: Redis; modelStatus: () => ModelStatus }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/api/v1/decision',
    { schema: { tags: ['queries'], summary: 'The study-level decision tables and the operating point in use', response: { 200: DecisionResponse, ...problems } } },
    async (request) => {
      const model = loadedModel(opts.modelStatus());
      const judging = await readJudging(opts.redis, model);
      const decision = model.manifest.decision;
      const defaults = classThresholds(decision);
      const classes: Record<string, unknown> = {};
      const notes: string[] = [];
      for (const cls of ['STAT', 'URGENT'] as const) {
        const d = decision?.[cls];
        if (!d) continue;
        const thresholdInUse = judging?.classThresholds[cls] ?? defaults[cls]!;
        classes[cls] = {
          targetSensitivity: d.targetSensitivity,
          threshold: d.threshold,
          chosenSensitivity: judging?.sensitivity[cls] ?? null,
          thresholdInUse,
          positives: d.positives,
          negatives: d.negatives,
          table: d.table.map((row) => ({ ...row, inUse: Math.abs(row.threshold - thresholdInUse) < 1e-12 })),
        };
        if (!d.table.some((row) => Math.abs(row.threshold - thresholdInUse) < 1e-12)) {
          notes.push(`${cls}: the threshold in use (${thresholdInUse}) is the bundle's own choice for sensitivity ${d.targetSensitivity}, between the table's rows`);
        }
      }
      if (!decision) notes.push('This bundle has no study-level decision: every query is judged with its own calibrated threshold (TRIAGE_*_SENSITIVITY has no effect).');
      if (!judging) notes.push('No worker running this bundle has reported its settings yet: the bundle\'s defaults are shown as in use.');
      await app.audit(request, 'decision.read', {});
      return { bundle: { bundleId: model.bundleId, version: model.version }, rule: DECISION_RULE, classes, judging, notes };
    },
  );
}
