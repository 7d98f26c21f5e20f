// How much of the API's one text-encoder session each user may hold at once. Search, a sentence scored against a
// study, a report check and a query's language check all embed on that session, one run after another, and a report
// check of 200 sentences is about half a second of CPU: one reader's script firing them in parallel kept everyone
// else's searches waiting, since the rate limit counts requests per minute, not work in progress. A user (a token's
// name, as for live-update streams) may have API_ENCODER_MAX_PER_USER runs in flight; one more is answered 429.
import { HttpProblem } from './plugins/problems';

export const ENCODER_RETRY_AFTER_SECONDS = 1;

export interface EncoderShare {
  /** Runs `work` as one of `user`'s encoder runs, or throws the 429 when the user has the most already. */
  run<T>(user: string, work: () => Promise<T>): Promise<T>;
}

export function createEncoderShare(maxPerUser: number, onRefused: (user: string, running: number) => void = () => undefined): EncoderShare {
  const running = new Map<string, number>();
  return {
    async run(user, work) {
      const n = running.get(user) ?? 0;
      if (n >= maxPerUser) {
        onRefused(user, n);
        throw new HttpProblem(
          429,
          `${n} text-encoder requests of this user (searches, sentence scores, report checks, query text checks) are still running, the most one user may have at once (API_ENCODER_MAX_PER_USER); retry after ${ENCODER_RETRY_AFTER_SECONDS} s`,
          { 'Retry-After': String(ENCODER_RETRY_AFTER_SECONDS) },
          undefined,
          'encoder-per-user',
        );
      }
      running.set(user, n + 1);
      try {
        return await work();
      } finally {
        const left = (running.get(user) ?? 1) - 1;
        if (left > 0) running.set(user, left);
        else running.delete(user);
      }
    },
  };
}
