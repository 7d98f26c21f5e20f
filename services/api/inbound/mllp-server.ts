// MLLP listener: transport only. Accepts TCP connections on one address, frames bytes (mllp-framing.ts), hands
// each whole message to the injected handler and writes back the reply it returns, one message at a time per
// connection in arrival order (MLLP is request/reply: nothing more is read from a connection until its reply has
// gone out). Explicit limits: connections (in all and per address, through the injected ConnectionGuard, which
// counts and logs each refusal), message size, idle time, and the time the handler has to produce a reply
// (after it, the `onTimeout` reply goes out so the sender is never left waiting). Knows nothing about HL7 content;
// never logs message bytes. Typed events for metrics and logs.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { ConnectionGuard } from '../../../shared/connection-guard';
import { mllpFrame, MllpDecoder, type Frame } from '../../../shared/mllp-framing';

export interface Peer {
  /** Remote address and port, for logs ("10.1.2.3:50122"). */
  remote: string;
  /** Connection id, increasing per server. */
  connection: number;
}

export type MllpInbound = Exclude<Frame, { kind: 'garbage' }>;

/** Node's timers hold at most 2^31 - 1 ms (about 24.8 days); a longer delay fires at once (TimeoutOverflowWarning). A
 * large batch's deadline, the per-message one times its messages, can pass it (600 s x 3,580 messages). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface MllpServerOptions {
  host: string;
  /** 0: the OS picks (tests); see address(). */
  port: number;
  /** Admits each connection before a byte is read (total and per-address limits), and records the refused. */
  guard: ConnectionGuard;
  idleTimeoutMs: number;
  maxMessageBytes: number;
  /** How long the handler has before `onTimeout`'s reply is sent instead (a function: per frame). */
  replyTimeoutMs: number | ((message: MllpInbound) => number);
  /** Builds the reply to one message (after whatever it must do first). Must not throw; a throw closes the connection. */
  handler: (message: MllpInbound, peer: Peer) => Promise<Buffer>;
  /** The reply when the handler is late (its own result is then dropped: the sender will resend). */
  onTimeout: (message: MllpInbound, peer: Peer) => Buffer;
}

export interface MllpServerEvents {
  connection: [peer: Peer];
  close: [peer: Peer, info: { partialFrame: boolean }];
  idle: [peer: Peer];
  garbage: [peer: Peer, info: { bytes: number }];
  replied: [peer: Peer, info: { ms: number; timedOut: boolean }];
  /** A socket error or a handler that threw; `reason` is a code, never message content. (Not named 'error', which
   * EventEmitter throws when nobody listens.) */
  failure: [peer: Peer | null, info: { reason: string }];
}

export class MllpServer extends EventEmitter<MllpServerEvents> {
  private server?: net.Server;
  private readonly sockets = new Map<net.Socket, { busy: Promise<void> }>();
  private nextId = 0;
  private closing = false;

  constructor(private readonly options: MllpServerOptions) {
    super();
  }

  async listen(): Promise<{ host: string; port: number }> {
    // allowHalfOpen: a sender that shuts down its side after its message (a script: `nc -N`) still gets its ACK; the
    // connection is ended once the replies owed have gone out (accept(), 'end').
    const server = net.createServer({ noDelay: true, keepAlive: true, allowHalfOpen: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', () => this.emit('failure', null, { reason: 'server-error' }));
    this.server = server;
    return this.address();
  }

  address(): { host: string; port: number } {
    const a = this.server?.address();
    if (!a || typeof a === 'string') throw new Error('MLLP server is not listening');
    return { host: a.address, port: a.port };
  }

  get connections(): number {
    return this.sockets.size;
  }

  /**
   * Stops accepting, lets each connection finish the message it is handling (its reply goes out) up to
   * `drainMs`, then closes every connection. A sender whose message got no reply resends it (MLLP's rule).
   */
  async close(drainMs = 5000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const server = this.server;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.sockets.values()].map((s) => s.busy)),
      new Promise((resolve) => {
        timer = setTimeout(resolve, drainMs);
      }),
    ]);
    clearTimeout(timer);
    for (const socket of this.sockets.keys()) socket.destroy();
    this.options.guard.flush();
    await closed;
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const { guard } = this.options;
    const admitted = guard.admit(socket.remoteAddress);
    if (admitted.refused) {
      guard.refused(admitted.peer, admitted.refused);
      socket.destroy();
      return;
    }
    socket.once('close', () => guard.release(admitted.peer));
    socket.setNoDelay(true);
    const peer: Peer = { remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, connection: ++this.nextId };
    const decoder = new MllpDecoder({ maxMessageBytes: this.options.maxMessageBytes });
    const state = { busy: Promise.resolve() };
    this.sockets.set(socket, state);
    this.emit('connection', peer);

    // Idle: no whole message for idleTimeoutMs while none is being answered. Counted from the last message's reply,
    // not from the last byte: a sender trickling a frame one byte at a time held its connection, and
    // REPORTS_MLLP_MAX_CONNECTIONS such senders shut the feed to every RIS, for ever.
    let idleTimer: NodeJS.Timeout | undefined;
    const armIdle = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        this.emit('idle', peer);
        socket.end();
        setTimeout(() => socket.destroy(), 1000).unref();
      }, this.options.idleTimeoutMs);
      idleTimer.unref();
    };
    armIdle();
    // MLLP is request/reply: while a message waits for its reply, or a reply has not left because the peer does not
    // read, nothing more is read. A sender writing messages without waiting for their ACKs then waits in TCP,
    // instead of queueing them all in memory here.
    let waiting = 0;
    const resume = () => {
      if (waiting === 0 && !socket.writableNeedDrain && !socket.destroyed) socket.resume();
    };
    socket.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) {
        if (frame.kind === 'garbage') {
          this.emit('garbage', peer, { bytes: frame.bytes });
          continue;
        }
        waiting += 1;
        clearTimeout(idleTimer);
        // Replies leave in the order the messages came, whatever each handler's time.
        state.busy = state.busy
          .then(() => this.reply(socket, frame, peer))
          .finally(() => {
            waiting -= 1;
            if (waiting === 0) armIdle();
            resume();
          });
      }
      if (waiting > 0) socket.pause();
    });
    socket.on('drain', resume);
    socket.on('end', () => {
      void state.busy.then(() => socket.end());
    });
    socket.on('error', (err: NodeJS.ErrnoException) => this.emit('failure', peer, { reason: err.code ?? 'socket-error' }));
    socket.on('close', () => {
      clearTimeout(idleTimer);
      this.sockets.delete(socket);
      this.emit('close', peer, { partialFrame: decoder.partial });
    });
  }

  private async reply(socket: net.Socket, message: MllpInbound, peer: Peer): Promise<void> {
    const t0 = performance.now();
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    let payload: Buffer;
    try {
      payload = await Promise.race([
        this.options.handler(message, peer),
        new Promise<Buffer>((resolve) => {
          timer = setTimeout(() => {
            timedOut = true;
            resolve(this.options.onTimeout(message, peer));
          }, Math.min(MAX_TIMER_MS, typeof this.options.replyTimeoutMs === 'number' ? this.options.replyTimeoutMs : this.options.replyTimeoutMs(message)));
        }),
      ]);
    } catch {
      // The handler promised not to throw: without a reply the sender would wait forever, so hang up instead.
      this.emit('failure', peer, { reason: 'handler-threw' });
      socket.destroy();
      return;
    } finally {
      clearTimeout(timer);
    }
    if (socket.destroyed) return;
    socket.write(mllpFrame(payload));
    this.emit('replied', peer, { ms: performance.now() - t0, timedOut });
  }
}
