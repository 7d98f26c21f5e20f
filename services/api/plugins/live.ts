// Live updates: one Redis subscriber per API process (scored-study and query-change channels), fanned out to
// every open Server-Sent Events stream. Streams are bounded: so many per user and per process (each holds a socket,
// a listener and heartbeats; a leaked token or a browser reopening tabs could open thousands), and a stream whose
// client does not take what is sent is closed before its unsent events pile up in memory. Streams are closed
// before the server closes so shutdown never waits on a radiologist's open browser tab.
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import { queryKeys } from '../../../shared/queries';
import { subscribe } from '../../../shared/redis';
import { resultKeys } from '../../../shared/results';
import { HttpProblem } from './problems';

export type LiveEvent = { type: 'scored'; StudyInstanceUID: string } | { type: 'queries'; version: number };

export interface LiveLimits {
  /** Streams one user (a token's name, as the audit log names it) may hold open: API_LIVE_MAX_STREAMS_PER_USER. */
  maxStreamsPerUser: number;
  /** Streams this process holds open in all: API_LIVE_MAX_STREAMS. */
  maxStreams: number;
  /** Bytes written to a stream and not yet sent past which it is closed: API_LIVE_MAX_UNSENT_BYTES. */
  maxUnsentBytes: number;
}

/**
 * Retry-After of a refused stream. A place frees only when some stream closes, which no one can foresee: the
 * page's longest reconnect back-off.
 */
export const LIVE_RETRY_AFTER_SECONDS = 30;

/** One user's place for one stream, taken before the stream opens. */
export interface LivePlace {
  /** Sends events to the open SSE response until it closes (or is dropped as slow), then gives the place back; returns the detach function. */
  attach(res: ServerResponse): () => void;
  /** Gives the place back when no stream was opened with it (the request failed first); does nothing once given back. */
  release(): void;
}

declare module 'fastify' {
  interface FastifyInstance {
    live: {
      /**
       * Takes a place for a stream of `user`, or throws a 429 problem naming the cap that is full (in its detail, and
       * in its `limit` member: live-streams-per-user or live-streams-per-process). Taken before the
       * request's audit write, so requests arriving together cannot all pass the check and then all open.
       */
      reserve(user: string): LivePlace;
      events: EventEmitter;
    };
  }
}

export function sseFrame(event: LiveEvent): string {
  return `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

export const livePlugin = fp(async function live(app: FastifyInstance, opts: { redis: Redis; limits: LiveLimits; heartbeatMs?: number }) {
  const { limits } = opts;
  const events = new EventEmitter();
  events.setMaxListeners(0);
  /** Each open stream and how to write to it (bounded). */
  const open = new Map<ServerResponse, (chunk: string) => void>();
  const perUser = new Map<string, number>();
  let places = 0;
  let closing = false;
  const sub = subscribe(opts.redis, [resultKeys.scoredChannel(), queryKeys.changedChannel()], (channel, message) => {
    if (channel === resultKeys.scoredChannel()) events.emit('event', { type: 'scored', StudyInstanceUID: message } satisfies LiveEvent);
    else if (channel === queryKeys.changedChannel()) events.emit('event', { type: 'queries', version: Number(message) } satisfies LiveEvent);
  }, (err) => app.log.warn({ err: err.message }, 'live-update subscriber: Redis error (ioredis reconnects)'));

  const heartbeat = setInterval(() => {
    for (const write of open.values()) write(': keep-alive\n\n');
  }, opts.heartbeatMs ?? 15_000);
  heartbeat.unref();

  const refuse = (user: string, cap: 'user' | 'process', detail: string): never => {
    app.metrics?.liveRefused.inc({ cap });
    app.log.warn({ user, cap, limit: cap === 'user' ? limits.maxStreamsPerUser : limits.maxStreams }, 'live-update stream refused: too many open');
    throw new HttpProblem(
      429,
      `${detail}; retry after ${LIVE_RETRY_AFTER_SECONDS} s`,
      { 'Retry-After': String(LIVE_RETRY_AFTER_SECONDS) },
      undefined,
      cap === 'user' ? 'live-streams-per-user' : 'live-streams-per-process',
    );
  };

  function attach(res: ServerResponse, user: string, release: () => void): () => void {
    let done = false;
    const detach = () => {
      if (done) return;
      done = true;
      events.off('event', send);
      open.delete(res);
      app.metrics?.sseClients.dec();
      release();
    };
    // Node keeps whatever the socket cannot take yet, without limit: a client that stopped reading (a frozen tab, a
    // script) would hold every later event and heartbeat in this process's memory. Closed, the page reconnects.
    const write = (chunk: string) => {
      if (done) return;
      res.write(chunk);
      if (res.writableLength > limits.maxUnsentBytes) {
        app.metrics?.liveDropped.inc({ reason: 'slow' });
        app.log.warn({ user, unsentBytes: res.writableLength, limit: limits.maxUnsentBytes }, 'live-update stream dropped: its client does not take what is sent');
        detach();
        res.destroy();
      }
    };
    const send = (e: LiveEvent) => write(sseFrame(e));
    events.on('event', send);
    open.set(res, write);
    app.metrics?.sseClients.inc();
    res.once('close', detach);
    // A client that left before the stream was attached (while its request was audited) had its 'close' already:
    // nothing would ever detach it, and its listener and heartbeat would stay for the life of the process. One
    // attached while the server closes would be missed by the close below.
    if (res.closed || res.destroyed) detach();
    else if (closing) res.end();
    return detach;
  }

  app.decorate('live', {
    events,
    reserve(user: string): LivePlace {
      const mine = perUser.get(user) ?? 0;
      if (mine >= limits.maxStreamsPerUser) {
        refuse(user, 'user', `"${user}" already has ${mine} live-update streams open, the most one user may (API_LIVE_MAX_STREAMS_PER_USER): close one, in another tab or window`);
      }
      if (places >= limits.maxStreams) {
        refuse(user, 'process', `this API process already holds ${places} live-update streams, its most (API_LIVE_MAX_STREAMS)`);
      }
      places += 1;
      perUser.set(user, mine + 1);
      let held = true;
      const release = () => {
        if (!held) return;
        held = false;
        places -= 1;
        const left = (perUser.get(user) ?? 1) - 1;
        if (left > 0) perUser.set(user, left);
        else perUser.delete(user);
      };
      return { attach: (res) => attach(res, user, release), release };
    },
  });

  app.addHook('preClose', async () => {
    closing = true;
    clearInterval(heartbeat);
    // Ended, a stream's connection is idle to Node, so server.close() closes it also when its client is not reading.
    for (const res of open.keys()) res.end();
  });
  app.addHook('onClose', async () => {
    sub.disconnect();
  });
});
