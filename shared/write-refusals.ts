// A BullMQ worker's errors, with a pause while Redis refuses writes. BullMQ's worker fetches its next job in a loop
// that tries again at once after an error that is not a connection error. A Redis that refuses writes answers every
// fetch with one (shared/health.ts redisRefusal): its disk is full (MISCONF, the AOF cannot be written), its memory
// limit is reached under noeviction (OOM), it is a read-only replica (READONLY) or still loading (LOADING). The
// loop then spins: a CPU busy and ~2,000 error log lines a second (measured), into logs that often live on the disk
// that is full. Here such an error pauses fetching
// for a while and is logged once per pause; fetching resumes by itself, so the worker carries on once Redis takes
// writes again. A job already running finishes, or (its lock not renewed meanwhile) is retried as a stalled job.
import type { Worker } from 'bullmq';
import { redisRefusal } from './health';

/** How long a worker stops fetching jobs after Redis refused a write. */
export const WRITES_REFUSED_PAUSE_MS = 5_000;

/**
 * The longest an idle BullMQ worker waits on Redis for a job before it asks again (its block timeout: drainDelay,
 * 5 s, or up to the next delayed job's time, capped at 10 s). A worker Redis refuses meets the refusal once per
 * pause plus this wait, not once per pause.
 */
export const MAX_FETCH_WAIT_MS = 10_000;

export interface WriteRefusals {
  /**
   * The refusal in words while the worker cannot take jobs for it: from the first refused write until two pauses and
   * the longest wait for a job (MAX_FETCH_WAIT_MS) have gone by without another (fetching resumes after each pause,
   * waits for a job and meets the refusal again while it lasts: with two pauses alone, an idle worker read as ready
   * for a moment between refusals). Undefined otherwise. For readiness: a worker Redis refuses answers PING but can take no job.
   */
  current(): string | undefined;
}

/**
 * Sends the worker's errors to `onError`; one that says Redis refuses writes pauses fetching for `pauseMs` and is
 * passed on with the refusal said in words (redisRefusal), once per pause (the ones during the pause are dropped).
 */
export function handleWorkerErrors(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any worker, whatever its job types
  worker: Worker<any, any>,
  onError: (err: Error, refusal: string | undefined) => void,
  pauseMs = WRITES_REFUSED_PAUSE_MS,
  fetchWaitMs = MAX_FETCH_WAIT_MS,
): WriteRefusals {
  let timer: NodeJS.Timeout | undefined;
  let closing = false;
  let last: { refusal: string; at: number } | undefined;
  worker.on('closing', () => {
    closing = true;
    clearTimeout(timer);
    timer = undefined;
  });
  worker.on('error', (err: Error) => {
    const refusal = redisRefusal(err);
    if (!refusal) return onError(err, undefined);
    last = { refusal, at: Date.now() };
    if (timer || closing) return;
    onError(err, refusal);
    // Local only (no Redis call); true: do not wait for the active jobs, which cannot finish while writes fail.
    void worker.pause(true).catch(() => undefined);
    timer = setTimeout(() => {
      timer = undefined;
      if (!closing) void worker.resume().catch(() => undefined);
    }, pauseMs);
  });
  return { current: () => (last && Date.now() - last.at < 2 * pauseMs + fetchWaitMs ? last.refusal : undefined) };
}
