// Admission of TCP connections before any protocol byte is read, for each port the services open to the network
// (the DICOM listener, the report feed's MLLP port), and the record of every connection refused or closed on the
// service's own initiative. A peer address may hold `maxConnectionsPerPeer` connections at once and the port
// `maxConnections` in all; a connection beyond either is closed at once. Every refusal is counted by reason on the
// service's counter and logged: the first per peer and reason at once, repeats within REPEAT_WINDOW_MS as one
// summary line, so a flood cannot flood the log too. Nothing logged comes from the stream: peer address, reason, counts.
import type { Counter } from 'prom-client';
import type { Logger } from './logger';

/** The reasons admit() gives; a service adds its own (a protocol violation, shutting down) for refused(). */
export const ADMISSION_REFUSALS = ['connection-limit', 'peer-connection-limit'] as const;
export type AdmissionRefusal = (typeof ADMISSION_REFUSALS)[number];

/** One spelling per peer: lower case, an IPv4 address mapped into IPv6 (::ffff:a.b.c.d) as the IPv4 address. */
export function normaliseAddress(address: string): string {
  return address.toLowerCase().replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
}

const REPEAT_WINDOW_MS = 10_000;

export interface ConnectionGuardOptions {
  maxConnections: number;
  maxConnectionsPerPeer: number;
  refused: Counter<'reason'>;
  log: Logger;
}

export class ConnectionGuard<R extends string = AdmissionRefusal> {
  private total = 0;
  private readonly perPeer = new Map<string, number>();
  /** (peer, reason) -> refusals not yet logged since the first one in this window. */
  private readonly quiet = new Map<string, { suppressed: number; timer: NodeJS.Timeout }>();

  constructor(private readonly options: ConnectionGuardOptions) {}

  /** Takes a slot for a new connection, or says why there is none. release() gives a taken slot back. */
  admit(remoteAddress: string | undefined): { peer: string; refused?: AdmissionRefusal } {
    const peer = normaliseAddress(remoteAddress ?? 'unknown');
    if (this.total >= this.options.maxConnections) return { peer, refused: 'connection-limit' };
    const open = this.perPeer.get(peer) ?? 0;
    if (open >= this.options.maxConnectionsPerPeer) return { peer, refused: 'peer-connection-limit' };
    this.total += 1;
    this.perPeer.set(peer, open + 1);
    return { peer };
  }

  release(peer: string): void {
    this.total -= 1;
    const open = (this.perPeer.get(peer) ?? 1) - 1;
    if (open <= 0) this.perPeer.delete(peer);
    else this.perPeer.set(peer, open);
  }

  /** Open connections from one address (tests and logs). */
  openFrom(peer: string): number {
    return this.perPeer.get(normaliseAddress(peer)) ?? 0;
  }

  /** Counts and logs one refusal; `detail` says more for protocol violations (never stream content). */
  refused(peer: string, reason: R | AdmissionRefusal, detail?: string): void {
    this.options.refused.inc({ reason });
    const key = `${peer} ${reason}`;
    const window = this.quiet.get(key);
    if (window) {
      window.suppressed += 1;
      return;
    }
    this.options.log.warn({ peer, reason, ...(detail ? { detail } : {}) }, 'connection refused');
    const timer = setTimeout(() => {
      const w = this.quiet.get(key);
      this.quiet.delete(key);
      if (w && w.suppressed > 0) {
        this.options.log.warn({ peer, reason, refused: w.suppressed, seconds: REPEAT_WINDOW_MS / 1000 }, 'more connections refused');
      }
    }, REPEAT_WINDOW_MS);
    timer.unref();
    this.quiet.set(key, { suppressed: 0, timer });
  }

  /** Logs what is still held back (at shutdown). */
  flush(): void {
    for (const [key, w] of this.quiet) {
      clearTimeout(w.timer);
      const [peer, reason] = key.split(' ');
      if (w.suppressed > 0) this.options.log.warn({ peer, reason, refused: w.suppressed }, 'more connections refused');
    }
    this.quiet.clear();
  }
}
