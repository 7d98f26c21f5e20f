// The study-level statements a result's outbound messages carry in words, so the HL7 message (NTE after OBR) and
// the SR (TEXT items of its Qualitative Evaluations) say the same: the decision and what set the priority, why a
// provisional result may change and until when, and what a final result lacked. Each finding's decision is
// flagStatement (shared/models/decision.ts). Times are ISO 8601 UTC (`2026-07-01T23:30:05.120Z`) in both, text a
// reader reads, not an HL7 TS or a DICOM DT field.
import { flagStatement } from '../../../shared/models/decision';
import type { StudyResult } from '../../../shared/results';

export interface ResultStatements {
  /** The rule, the priority and the findings that set it. */
  decision: string;
  /** A provisional result: what the study lacks, what that does to the priority, and when it becomes final. */
  provisional?: string;
  /** A final result whose wait expired: what never arrived. */
  incomplete?: string;
}

export function resultStatements(result: StudyResult): ResultStatements {
  const time = (ms: number): string => new Date(ms).toISOString();
  const triggers = result.findings.filter((f) => f.triggered).map((f) => `${f.queryId} (${flagStatement(f)})`);
  return {
    decision: `Decision: a finding is flagged when its calibrated probability P >= its threshold; priority ${result.priority}`
      + (triggers.length > 0 ? ` set by ${triggers.join(', ')}.` : ' (no finding of a higher class flagged).'),
    ...(result.provisional
      ? {
          provisional: `Provisional: the study lacks ${result.provisional.waitingFor.join(', ')}, which findings read on; findings scored without them do not raise the priority. `
            + `A corrected result follows when they arrive or at ${time(result.provisional.until)}.`,
        }
      : {}),
    ...(result.incomplete
      ? { incomplete: `Final without ${result.incomplete.missing.join(', ')}: the wait for them expired; judged on the sequences the study has.` }
      : {}),
  };
}
