// For `npm start`: where each service it runs answers /readyz, and a wait until every one answers 200 (ready as a
// probe takes it: the API's "degraded" while its text encoder loads counts, the worker is ready once its model
// sessions are loaded). A service still not ready after a while is named with what its /readyz says it waits for.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

export interface ReadyTarget {
  name: string;
  url: string;
}

/** The address to probe a service on: one bound to every interface answers on loopback. */
export function probeHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '::1';
  return host;
}

export function readyzUrl(host: string, port: number, tls = false): string {
  const h = probeHost(host);
  return `${tls ? 'https' : 'http'}://${net.isIPv6(h) ? `[${h}]` : h}:${port}/readyz`;
}

/**
 * A port setting of 0 (any free port) made concrete before the service starts, so that npm start knows where to
 * poll it and a restarted service keeps its port.
 */
export function freePortOn(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface ReadyAnswer {
  ready: boolean;
  /** Why not: the failing checks' details, or that it does not answer yet. */
  detail: string;
}

/** One GET of /readyz within timeoutMs. TLS: the API's own certificate is not checked (our own child on this host). */
export function probe(url: string, timeoutMs = 1000): Promise<ReadyAnswer> {
  return new Promise((resolve) => {
    const get = url.startsWith('https:') ? https.get : http.get;
    const req = get(url, { timeout: timeoutMs, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ ready: res.statusCode === 200, detail: res.statusCode === 200 ? 'ready' : notReady(body) }));
      res.on('error', () => resolve({ ready: false, detail: 'no answer yet' }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ ready: false, detail: 'no answer yet' }));
  });
}

/** "models: waiting for the model bundle in ..." from a /readyz body (every service answers the same shape). */
function notReady(body: string): string {
  try {
    const parsed = JSON.parse(body) as { checks?: Record<string, { ok: boolean; detail: string }>; error?: string };
    const failing = Object.entries(parsed.checks ?? {}).filter(([, c]) => !c.ok).map(([name, c]) => `${name}: ${c.detail}`);
    return failing.join('; ') || parsed.error || 'not ready';
  } catch {
    return 'not ready';
  }
}

export interface WaitReadyOptions {
  /** Past this, `onSlow` hears which are still starting (once); the wait goes on. */
  slowAfterMs: number;
  onSlow: (waiting: Record<string, string>) => void;
  /** True once the wait should end without them (a stop began). */
  cancelled: () => boolean;
  everyMs?: number;
}

/** Resolves true once every target has answered 200 (each is asked until it has), false when cancelled. */
export async function waitUntilReady(targets: ReadyTarget[], opts: WaitReadyOptions): Promise<boolean> {
  const waiting = new Map(targets.map((t) => [t.name, { url: t.url, detail: 'no answer yet' }]));
  const slowAt = Date.now() + opts.slowAfterMs;
  let told = false;
  while (waiting.size > 0) {
    if (opts.cancelled()) return false;
    await Promise.all([...waiting].map(async ([name, w]) => {
      const answer = await probe(w.url);
      if (answer.ready) waiting.delete(name);
      else w.detail = answer.detail;
    }));
    if (waiting.size === 0) break;
    if (!told && Date.now() >= slowAt) {
      told = true;
      opts.onSlow(Object.fromEntries([...waiting].map(([name, w]) => [name, w.detail])));
    }
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 100));
  }
  return !opts.cancelled();
}
