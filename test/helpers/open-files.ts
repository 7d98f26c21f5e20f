// What this process holds open, from /proc/self/fd (Linux), for tests that prove a descriptor is not leaked.
import { readdirSync, readlinkSync } from 'node:fs';

/** Descriptors this process holds open on files under `dir`. */
export function openFilesUnder(dir: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${dir}/`)) n += 1;
    } catch {
      // closed between the listing and the readlink
    }
  }
  return n;
}
