// Live updates: one Redis subscriber per API process (scored-study and query-change channels), fanned out to
// every open Server-Sent Events stream. Streams are closed before the server closes so shutdown never waits
// on a radiologist's open browser tab.
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import { queryKeys } from '../../../shared/queries';
import { subscribe } from '../../../shared/redis';
import { resultKeys } from '../../../shared/results';

export type LiveEvent = { type: 'scored'; StudyInstanceUID: string } | { type: 'queries'; version: number };

declare module 'fastify' {
  interface FastifyInstance {
    live: {
      /** Sends events to an already-open SSE response until it closes; returns the unsubscribe function. */
      attach(res: ServerResponse): () => void;
      events: EventEmitter;
    };
  }
}

export function sseFrame(event: LiveEvent): string {
  return `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

export const livePlugin = fp(async function live(app: FastifyInstance, opts: { redis: Redis; heartbeatMs?: number }) {
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const open = new Set<ServerResponse>();
  const sub = subscribe(opts.redis, [resultKeys.scoredChannel(), queryKeys.changedChannel()], (channel, message) => {
    if (channel === resultKeys.scoredChannel()) events.emit('event', { type: 'scored', StudyInstanceUID: message } satisfies LiveEvent);
    else if (channel === queryKeys.changedChannel()) events.emit('event', { type: 'queries', version: Number(message) } satisfies LiveEvent);
  }, (err) => app.log.warn({ err: err.message }, 'live-update subscriber: Redis error (ioredis reconnects)'));

  const heartbeat = setInterval(() => {
    for (const res of open) res.write(': keep-alive\n\n');
  }, opts.heartbeatMs ?? 15_000);
  heartbeat.unref();

  app.decorate('live', {
    events,
    attach(res: ServerResponse) {
      const send = (e: LiveEvent) => res.write(sseFrame(e));
      events.on('event', send);
      open.add(res);
      app.metrics?.sseClients.inc();
      let done = false;
      const detach = () => {
        if (done) return;
        done = true;
        events.off('event', send);
        open.delete(res);
        app.metrics?.sseClients.dec();
      };
      res.once('close', detach);
      // A client that left before the stream was attached (while its request was audited) had its 'close' already:
      // nothing would ever detach it, and its listener and heartbeat would stay for the life of the process.
      if (res.closed || res.destroyed) detach();
      return detach;
    },
  });

  app.addHook('preClose', async () => {
    clearInterval(heartbeat);
    for (const res of open) res.end();
  });
  app.addHook('onClose', async () => {
    sub.disconnect();
  });
});
