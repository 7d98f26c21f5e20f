import net from 'node:net';
import { Scp, constants, log as dimseLog, responses } from 'dcmjs-dimse';
import { PermanentDeliveryError, RetryableDeliveryError } from '../errors';
import { cStore, classifyStoreStatus } from './cstore';

// As the API process does (outbound.ts): dcmjs-dimse would log every association to the console, and a socket's
// last line would come after its test had ended.
beforeAll(() => dimseLog.setLevel('silent'));

describe('classifyStoreStatus', () => {
  it('accepts success and warnings', () => {
    expect(classifyStoreStatus(0x0000)).toEqual({ status: 0, warning: false });
    expect(classifyStoreStatus(0xb000)).toEqual({ status: 0xb000, warning: true });
  });

  it('retries out-of-resources and processing failures, refuses the rest for good', () => {
    expect(classifyStoreStatus(0xa700)).toBeInstanceOf(RetryableDeliveryError);
    expect(classifyStoreStatus(0x0110)).toBeInstanceOf(RetryableDeliveryError);
    const refused = classifyStoreStatus(0xa900);
    expect(refused).toBeInstanceOf(PermanentDeliveryError);
    expect((refused as PermanentDeliveryError).reason).toBe('dimse-0xA900');
    expect(classifyStoreStatus(0x0122)).toBeInstanceOf(PermanentDeliveryError);
  });
});

describe('cStore against a PACS that stops answering', () => {
  /** Accepts, reads and never answers or closes (a hung PACS process: the kernel keeps its sockets open). */
  async function hungPacs(): Promise<{ port: number; sockets: Set<net.Socket>; close(): Promise<void> }> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      sockets.add(s);
      s.resume();
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return {
      port: (server.address() as net.AddressInfo).port,
      sockets,
      close: async () => {
        for (const s of sockets) s.destroy();
        await new Promise((r) => server.close(r));
      },
    };
  }
  const tcpSockets = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
  /**
   * The process's TCP sockets before the test: a test file run earlier in this jest worker can leave some (a
   * keep-alive connection closes seconds later). Given 10 s to close; those left are counted and subtracted.
   */
  async function settledSockets(): Promise<number> {
    const until = Date.now() + 10_000;
    while (tcpSockets() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    return tcpSockets();
  }

  it('closes its socket once the attempt has failed, so retries do not pile up open connections', async () => {
    const before = await settledSockets();
    const pacs = await hungPacs();
    try {
      const target = { host: '127.0.0.1', port: pacs.port, callingAe: 'NEUROTRIAGE', calledAe: 'PACS', timeoutMs: 300, seriesNumber: 999, keyImages: false };
      const sr = { SOPClassUID: '1.2.840.10008.5.1.4.1.1.88.22', SOPInstanceUID: '2.25.1234' };
      for (let attempt = 0; attempt < 3; attempt++) {
        await expect(cStore(sr, target)).rejects.toMatchObject({ reason: 'timeout' });
      }
      // dcmjs-dimse's own association timer (checked each second) only half-closes the socket (end()).
      await new Promise((r) => setTimeout(r, 2500));
      expect(pacs.sockets.size).toBe(3);
      // What is left open is the hung PACS's side of each connection, none of ours.
      expect(tcpSockets() - before).toBe([...pacs.sockets].filter((s) => !s.destroyed).length);
    } finally {
      await pacs.close();
    }
  }, 30_000);
});

describe('cStore against a PACS that stores the SR but never completes the release', () => {
  /**
   * A dcmjs-dimse SCP on 127.0.0.1 that answers C-STORE with Success and then, as `afterStore` says, never answers
   * the A-RELEASE-RQ or drops the connection instead of answering it.
   */
  async function pacs(afterStore: 'no-release-reply' | 'reset'): Promise<{ port: number; stored: () => number; close(): Promise<void> }> {
    let stored = 0;
    const sockets = new Set<net.Socket>();
    class Pacs extends Scp {
      override associationRequested(association: Parameters<Scp['associationRequested']>[0]): void {
        for (const { id } of association.getPresentationContexts()) {
          const context = association.getPresentationContext(id);
          context.setResult(constants.PresentationContextResult.Accept, constants.TransferSyntax.ExplicitVRLittleEndian);
        }
        this.sendAssociationAccept();
      }
      override cStoreRequest(request: Parameters<Scp['cStoreRequest']>[0], callback: Parameters<Scp['cStoreRequest']>[1]): void {
        stored += 1;
        const response = responses.CStoreResponse.fromRequest(request);
        response.setStatus(constants.Status.Success);
        callback(response);
      }
      override associationReleaseRequested(): void {
        if (afterStore === 'reset') for (const s of sockets) s.resetAndDestroy();
      }
    }
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      new Pacs(socket, {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return {
      port: (server.address() as net.AddressInfo).port,
      stored: () => stored,
      close: async () => {
        for (const s of sockets) s.destroy();
        await new Promise((r) => server.close(r));
      },
    };
  }

  it.each(['no-release-reply', 'reset'] as const)('counts the SR as delivered once the PACS answered Success (%s), so a retry does not store it twice', async (afterStore) => {
    const peer = await pacs(afterStore);
    try {
      const target = { host: '127.0.0.1', port: peer.port, callingAe: 'NEUROTRIAGE', calledAe: 'PACS', timeoutMs: 500, seriesNumber: 999, keyImages: false };
      const sr = { SOPClassUID: '1.2.840.10008.5.1.4.1.1.88.22', SOPInstanceUID: '2.25.1234' };
      await expect(cStore(sr, target)).resolves.toEqual({ status: 0, warning: false });
      expect(peer.stored()).toBe(1);
    } finally {
      await peer.close();
    }
  });
});

describe('cStore against a PACS whose PDU header claims more than the sender takes', () => {
  /** Answers the A-ASSOCIATE-RQ with `header` and then streams zeros until the connection closes. */
  async function claimingPacs(header: Buffer): Promise<{ port: number; written: () => number; closed: Promise<void>; close(): Promise<void> }> {
    let written = 0;
    let closedResolve!: () => void;
    const closed = new Promise<void>((r) => (closedResolve = r));
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', closedResolve);
      s.once('data', () => {
        s.write(header);
        const chunk = Buffer.alloc(64 * 1024);
        const pump = (): void => {
          while (!s.destroyed && written < 512 * 1024 * 1024) {
            written += chunk.length;
            if (!s.write(chunk)) return void s.once('drain', pump);
          }
        };
        pump();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return {
      port: (server.address() as net.AddressInfo).port,
      written: () => written,
      closed,
      close: async () => {
        for (const s of sockets) s.destroy();
        await new Promise((r) => server.close(r));
      },
    };
  }
  const pdu = (type: number, length: number) => Buffer.from([type, 0, length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff]);

  // dcmjs-dimse buffered such a PDU's body whole: the API held everything the PACS sent until SR_TIMEOUT_MS.
  it.each([
    ['an A-ASSOCIATE-AC of 2 GB', pdu(0x02, 0x7fffffff), 'the PACS sent an A-ASSOCIATE-AC claiming 2147483647 bytes (at most 262144 taken)'],
    ['an A-ABORT of 1 GB', pdu(0x07, 0x40000000), 'the PACS sent an A-ABORT claiming 1073741824 bytes (PS3.8 fixes 4)'],
  ])('closes the connection at %s and retries later', async (_, header, message) => {
    const peer = await claimingPacs(header);
    try {
      const target = { host: '127.0.0.1', port: peer.port, callingAe: 'NEUROTRIAGE', calledAe: 'PACS', timeoutMs: 60_000, seriesNumber: 999, keyImages: false };
      const sr = { SOPClassUID: '1.2.840.10008.5.1.4.1.1.88.22', SOPInstanceUID: '2.25.1234' };
      const started = Date.now();
      await expect(cStore(sr, target)).rejects.toMatchObject({ name: 'RetryableDeliveryError', reason: 'pdu-too-long', message });
      await peer.closed;
      // Well before the 60 s timeout, and the PACS could not push more than what was in flight to the socket.
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(peer.written()).toBeLessThan(64 * 1024 * 1024);
    } finally {
      await peer.close();
    }
  });
});
