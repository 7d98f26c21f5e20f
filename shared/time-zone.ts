// The site's time zone for times that carry no offset of their own: a DICOM Study Date and Time (the SR and key
// object documents, services/api/outbound/sr/document.ts) and an HL7 report time without one (OBR-22, MSH-7:
// services/api/inbound/oru.ts). The zone is the IANA name given (tests), else this process's (TZ), read through
// Intl, so a change to summer or winter time is the zone's own rule, not a fixed offset.

/** Minutes east of UTC of a time zone at an instant ("GMT+05:30" from Intl). */
export function zoneOffset(ms: number, timeZone?: string): number {
  const name = new Intl.DateTimeFormat('en-US', { timeZone, timeZoneName: 'longOffset' }).formatToParts(ms).find((p) => p.type === 'timeZoneName')?.value ?? '';
  const m = /^GMT([+-])(\d{2}):(\d{2})/.exec(name);
  return m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
}

/**
 * The zone's offset at a local wall-clock time, given as the milliseconds Date.UTC makes of its fields, the same way
 * in every zone (ISO 8601's and java.time's reading, Temporal's 'compatible'): a time in the hour a change to winter
 * time repeats is its first occurrence (the summer offset); one in the hour a change to summer time skips is read
 * with the offset in force before the change, so 02:30 on a March change day in New York is 07:30Z (03:30 EDT) and
 * 01:30 on one in London is 01:30Z (02:30 BST). The instant is `wall - offsetAtWall(wall) * 60_000`.
 */
export function offsetAtWall(wall: number, timeZone?: string): number {
  const [first] = wallInstants(wall, timeZone);
  return first !== undefined ? (wall - first) / 60_000 : zoneOffset(wall - 86_400_000, timeZone);
}

/**
 * The instants a local wall-clock time (as offsetAtWall takes it) names in the zone, earliest first: one, two in the
 * hour a change to winter time repeats, none in the hour a change to summer time skips. Zones change at most once
 * within a day either side of it (no zone changes twice in 48 hours).
 */
export function wallInstants(wall: number, timeZone?: string): number[] {
  const near = zoneOffset(wall - zoneOffset(wall, timeZone) * 60_000, timeZone);
  const offsets = new Set([zoneOffset(wall - 86_400_000, timeZone), zoneOffset(wall + 86_400_000, timeZone), near]);
  const instants = [...offsets].map((o) => wall - o * 60_000).filter((ms) => wall - zoneOffset(ms, timeZone) * 60_000 === ms);
  return [...new Set(instants)].sort((a, b) => a - b);
}

/** Minutes east of UTC of an offset written `+HHMM`/`-HHMM` (DICOM, HL7), -1200 to +1400; else undefined. */
export function parseOffset(value: unknown): number | undefined {
  const m = typeof value === 'string' ? /^([+-])(\d{2})([0-5]\d)$/.exec(value.trim()) : null;
  if (!m) return undefined;
  const minutes = (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
  return minutes >= -12 * 60 && minutes <= 14 * 60 ? minutes : undefined;
}

/** `+HHMM`/`-HHMM` of minutes east of UTC. */
export function formatOffset(minutes: number): string {
  const a = Math.abs(minutes);
  return `${minutes < 0 ? '-' : '+'}${String(Math.floor(a / 60)).padStart(2, '0')}${String(a % 60).padStart(2, '0')}`;
}
