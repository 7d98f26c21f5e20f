// How a DICOM tag or DIMSE status is written in logs, errors and stored records: four upper-case hex digits.

/** 0xA700 -> "A700"; 0x10 -> "0010". */
export function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

/** 0x00180024 -> "(0018,0024)". */
export function tagName(tag: number): string {
  return `(${hex4(tag >>> 16)},${hex4(tag & 0xffff)})`;
}

/** A DIMSE status as logs, errors and the delivery record name it: "0xA700". */
export function statusHex(status: number): string {
  return `0x${hex4(status)}`;
}
