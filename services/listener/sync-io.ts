// Whole writes and directory flushes, as the instance store and its write-ahead log both need them.
import { promises as fsp, writevSync } from 'node:fs';

/**
 * Writes every byte of `buffers` to `fd` (at `position` when given, else at the file's offset), looping over short
 * writes. One writev for the usual few buffers; a single buffer when there are many (IOV_MAX is 1024 on Linux).
 */
export function writeAllSync(fd: number, buffers: Buffer[], position?: number): void {
  let pending = buffers.length > 256 ? [Buffer.concat(buffers)] : buffers;
  let at = position;
  while (pending.length > 0) {
    let left = at === undefined ? writevSync(fd, pending) : writevSync(fd, pending, at);
    if (at !== undefined) at += left;
    while (pending.length > 0 && left >= pending[0].length) {
      left -= pending[0].length;
      pending = pending.slice(1);
    }
    if (left > 0) pending = [pending[0].subarray(left), ...pending.slice(1)];
  }
}

/** fsync of a directory, so the names created or renamed in it survive a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
