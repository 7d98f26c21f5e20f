// The key image of a located finding as OBX rows (docs/hl7-interface.md "Key image"): the series and SOP Instance
// UIDs of the key slice (and its frame in a multi-frame instance) and the region on it, so a RIS or viewer can open
// the slice the flag is about. Pure data; message.ts writes the rows into the finding's OBX group (same OBX-4).
import type { FindingScore } from '../../../../shared/results';

export interface KeyImageRow {
  /** OBX-2 value type. */
  type: 'ST' | 'NM';
  /** OBX-3 identifier, text and coding system. */
  code: string;
  text: string;
  system: string;
  /** OBX-5, not yet escaped. */
  value: string;
}

const round = (x: number, k = 2) => String(Math.round(x * 10 ** k) / 10 ** k);

export function keyImageRows(f: FindingScore): KeyImageRow[] {
  const loc = f.location;
  if (!f.flagged || !loc) return [];
  return [
    { type: 'ST', code: '112002', text: 'Series Instance UID', system: 'DCM', value: loc.SeriesInstanceUID },
    { type: 'ST', code: 'KEY_IMAGE', text: 'Key image SOP Instance UID', system: '99NTRIAGE', value: loc.SOPInstanceUID },
    ...(loc.frame !== undefined ? [{ type: 'NM' as const, code: 'KEY_IMAGE_FRAME', text: 'Key image frame number', system: '99NTRIAGE', value: String(loc.frame) }] : []),
    {
      type: 'ST', code: 'KEY_REGION', text: 'Key region on the key image', system: '99NTRIAGE',
      value: `${loc.radiusRowsPx === undefined ? `circle at column ${round(loc.point[0])}, row ${round(loc.point[1])}, radius ${round(loc.radiusPx)} px` : `ellipse at column ${round(loc.point[0])}, row ${round(loc.point[1])}, radius ${round(loc.radiusPx)} px across, ${round(loc.radiusRowsPx)} px down`} (${round(loc.radiusMm, 1)} mm); patient LPS ${loc.patientMm.map((v) => round(v, 1)).join(' ')} mm`,
    },
  ];
}
