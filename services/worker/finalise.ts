// The final version of a provisional result whose missing sequences never arrived (docs/worker.md "Partial
// studies"): judged on what the study has, from the stored findings alone (same probabilities, thresholds and
// query set, so judgedWith is unchanged), with the fallback findings now allowed to set the priority. Pure.
import { decideStudy } from '../../shared/models/decision';
import type { StudyResult } from '../../shared/results';

export function finalResult(provisional: StudyResult, now: number): StudyResult {
  const { provisional: waited, ...rest } = provisional;
  const findings = provisional.findings.map(({ held: _held, ...f }) => f);
  const d = decideStudy(findings);
  return {
    ...rest,
    priority: d.priority,
    priorityProbability: d.priorityProbability,
    findings: findings.map((f, i) => ({ ...f, flagged: d.flagged[i], triggered: d.triggered[i] })),
    incomplete: { missing: waited?.waitingFor ?? provisional.sequencesMissing, waitedUntil: waited?.until ?? now },
    scoredAt: now,
  };
}
