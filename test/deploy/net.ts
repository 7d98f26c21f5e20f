// Small helpers for deployment tests that run third-party servers (Orthanc, Prometheus): poll until something is
// true, and stop a child process.
import type { ChildProcess } from 'node:child_process';

export { waitFor } from '../helpers/wait';

export function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}
