// A small file system of its own for a test that needs a disk that fills up: a size-limited tmpfs mounted in a
// private user + mount namespace (`unshare -rm`, no root), held open by a sleeping shell there. The test process
// reaches it through /proc/<pid>/root, so an in-process service can use it as DATA_DIR and really get ENOSPC.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statfsSync, closeSync, openSync, writeSync, fsyncSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { waitFor } from './wait';

export interface SmallFs {
  /** The mounted file system's root as this process sees it. */
  dir: string;
  /** Free bytes now. */
  free(): number;
  /** Writes a filler file until the file system is full (ENOSPC), leaving `leaveBytes` free at most. */
  fill(leaveBytes?: number): void;
  /** Removes the filler file(s). */
  drain(): void;
  /**
   * Makes a directory of it read-only (a read-only bind mount over it: writes there fail EROFS, renames into it
   * EXDEV), or writable again. Being root, a test cannot use file modes for this.
   */
  readOnly(subdir: string, on: boolean): Promise<void>;
  stop(): Promise<void>;
}

export async function startSmallFs(sizeKb: number): Promise<SmallFs> {
  const mountPoint = mkdtempSync(path.join(tmpdir(), 'nt-smallfs-'));
  const child: ChildProcess = spawn(
    'unshare',
    // The shell then runs readOnly()'s requests, one line each ("<n> ro|rw <subdir>"), and answers "ok <n>".
    ['-rm', 'sh', '-c', `mount -t tmpfs -o size=${sizeKb}k,mode=0755 tmpfs "$1" && echo mounted && while read -r n op sub; do
        if [ "$op" = ro ]; then mount --bind "$1/$sub" "$1/$sub" && mount -o remount,bind,ro "$1/$sub"; else umount "$1/$sub"; fi && echo "ok $n"
      done`, 'sh', mountPoint],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(`a ${sizeKb} KB tmpfs (unshare -rm needs user namespaces)`, () => out.includes('mounted') || child.exitCode !== null, 10_000);
  if (!out.includes('mounted')) throw new Error(`could not mount a tmpfs in a user namespace: ${out}`);
  const dir = path.join(`/proc/${child.pid}/root`, mountPoint);
  let fillers = 0;
  let requests = 0;
  const fs: SmallFs = {
    dir,
    free() {
      const s = statfsSync(dir);
      return Number(s.bavail) * Number(s.bsize);
    },
    fill(leaveBytes = 0) {
      const file = path.join(dir, `.filler-${(fillers += 1)}`);
      const fd = openSync(file, 'w');
      try {
        const chunk = Buffer.alloc(4096);
        while (fs.free() > leaveBytes) {
          try {
            writeSync(fd, chunk, 0, Math.min(chunk.length, Math.max(1, fs.free() - leaveBytes)));
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
            throw err;
          }
        }
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    },
    drain() {
      for (let i = 1; i <= fillers; i++) rmSync(path.join(dir, `.filler-${i}`), { force: true });
    },
    async readOnly(subdir: string, on: boolean) {
      const n = (requests += 1);
      child.stdin?.write(`${n} ${on ? 'ro' : 'rw'} ${subdir}\n`);
      await waitFor(`${subdir} ${on ? 'read-only' : 'writable'}`, () => out.includes(`ok ${n}\n`), 10_000);
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(mountPoint, { recursive: true, force: true });
    },
  };
  return fs;
}
