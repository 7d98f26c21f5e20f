// Instances the listener refused at C-STORE (shared/refusals.ts), put into the study's result (docs/worker.md
// "Instances refused at intake"). Pure: the worker reads the record when it scores the study and passes it here.
//  - A series with stored instances gets a `dropped` entry per refusal code: images left out, never stored.
//  - A series refused whole gets its own line: sequence "unknown" (the listener does not classify), not used,
//    reason "refused-at-intake".
//  - Refused images of a series whose volume was used lower the completeness like the images left out of it, as
//    far as its missing-slices (gaps the refused images most likely left) do not already count them; for a
//    diffusion series, only the share of its b-value lines that were used.
import { REFUSED_AT_INTAKE, type DroppedImages, type SeriesOutcome } from '../../shared/results';
import type { RefusedImages } from '../../shared/refusals';

export interface WithRefusals {
  series: SeriesOutcome[];
  /** The completeness with the refused images of used series counted; unchanged when nothing was refused. */
  completeness: number | undefined;
}

/**
 * `kept` is the images in the used series' volumes (LoadedStudy.keptImages); without it the completeness is left
 * as it is (a loader that does not report it).
 */
export function applyRefusals(
  series: readonly SeriesOutcome[],
  refused: readonly RefusedImages[],
  completeness: number | undefined,
  kept: number | undefined,
): WithRefusals {
  if (refused.length === 0) return { series: [...series], completeness };
  const bySeries = new Map<string, DroppedImages[]>();
  for (const r of refused) {
    const entry: DroppedImages = { images: r.images, reason: REFUSED_AT_INTAKE, refusal: r.refusal, status: r.status };
    bySeries.set(r.SeriesInstanceUID, [...(bySeries.get(r.SeriesInstanceUID) ?? []), entry]);
  }
  const out = series.map((s) => ({ ...s }));
  let extraMissing = 0;
  for (const [uid, entries] of bySeries) {
    const lines = out.filter((s) => s.SeriesInstanceUID === uid);
    if (lines.length === 0) {
      out.push({ SeriesInstanceUID: uid, sequence: 'unknown', used: false, reason: REFUSED_AT_INTAKE, dropped: entries });
      continue;
    }
    // A diffusion series has a line per b-value: the refused images go on its first used line (else its first).
    const line = lines.find((s) => s.used) ?? lines[0];
    line.dropped = [...(line.dropped ?? []), ...entries];
    const used = lines.filter((s) => s.used);
    if (used.length > 0) {
      // A diffusion series holds an image per position for each b-value, a line each, and the listener cannot tell
      // which b-value a refused image had: its refused images are taken as spread evenly over the lines, so only the
      // used lines' share left a used volume short (a refused b=0 and b=1000 pair is one missing b=1000 slice).
      const images = Math.round((entries.reduce((n, e) => n + e.images, 0) * used.length) / lines.length);
      const gaps = used.flatMap((s) => s.dropped ?? []).filter((d) => d.reason === 'missing-slices').reduce((n, d) => n + d.images, 0);
      extraMissing += Math.max(0, images - gaps);
    }
  }
  const before = completeness ?? 1;
  if (extraMissing === 0 || kept === undefined || kept <= 0 || before <= 0) return { series: out, completeness };
  // completeness = kept / (kept + missing): the refused images join the denominator.
  return { series: out, completeness: kept / (kept / before + extraMissing) };
}
