// Grouping frames into series. Frames (not instances) are the unit, so one Enhanced MR instance can feed a
// series on its own. A diffusion series with several b-values is split into one part per b-value (the b=1000
// image and the b=0 image are different volumes); everything else stays whole.
import type { DicomInstance, Frame, InstanceHeader } from './dicom-header';

export interface SeriesFrame {
  instance: DicomInstance;
  frame: Frame;
}

export interface SeriesGroup {
  /** SeriesInstanceUID, with "#b<value>" for a part of a split diffusion series. */
  key: string;
  SeriesInstanceUID: string;
  /** b-value of this part when the series carries b-values. */
  bValue?: number;
  /** Distinct b-values in the whole series (empty when none). */
  seriesBValues: number[];
  /** Header of the first instance by InstanceNumber: series-level attributes. */
  header: InstanceHeader;
  frames: SeriesFrame[];
}

/** b-values are grouped to the nearest 5 s/mm2: vendors write 999.9 or 1000 for the same shell. */
const roundB = (b: number): number => Math.round(b / 5) * 5;

function instanceOrder(a: DicomInstance, b: DicomInstance): number {
  return (a.header.InstanceNumber ?? 0) - (b.header.InstanceNumber ?? 0) || (a.header.SOPInstanceUID ?? a.file).localeCompare(b.header.SOPInstanceUID ?? b.file);
}

/** Groups instances into series, splitting diffusion series by b-value. Deterministic order (SeriesNumber, UID, b). */
export function groupSeries(instances: readonly DicomInstance[]): SeriesGroup[] {
  const bySeries = new Map<string, DicomInstance[]>();
  for (const inst of instances) {
    const uid = inst.header.SeriesInstanceUID ?? `(no SeriesInstanceUID: ${inst.file})`;
    const list = bySeries.get(uid);
    if (list) list.push(inst);
    else bySeries.set(uid, [inst]);
  }
  const groups: SeriesGroup[] = [];
  for (const [uid, list] of bySeries) {
    list.sort(instanceOrder);
    const frames: SeriesFrame[] = list.flatMap((instance) => instance.frames.map((frame) => ({ instance, frame })));
    const header = list[0].header;
    const bs = [...new Set(frames.map((f) => f.frame.DiffusionBValue).filter((b): b is number => b !== undefined).map(roundB))].sort((a, b) => a - b);
    if (bs.length <= 1) {
      groups.push({ key: uid, SeriesInstanceUID: uid, bValue: bs[0], seriesBValues: bs, header, frames });
      continue;
    }
    const parts = new Map<number | undefined, SeriesFrame[]>();
    for (const f of frames) {
      const b = f.frame.DiffusionBValue === undefined ? undefined : roundB(f.frame.DiffusionBValue);
      const p = parts.get(b);
      if (p) p.push(f);
      else parts.set(b, [f]);
    }
    for (const [b, fs] of [...parts].sort((x, y) => (x[0] ?? -1) - (y[0] ?? -1))) {
      groups.push({ key: b === undefined ? `${uid}#b?` : `${uid}#b${b}`, SeriesInstanceUID: uid, bValue: b, seriesBValues: bs, header: fs[0].instance.header, frames: fs });
    }
  }
  return groups.sort(
    (a, b) => (a.header.SeriesNumber ?? 0) - (b.header.SeriesNumber ?? 0) || a.SeriesInstanceUID.localeCompare(b.SeriesInstanceUID) || (a.bValue ?? -1) - (b.bValue ?? -1),
  );
}
