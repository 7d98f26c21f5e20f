import net from 'node:net';
import { PermanentDeliveryError, RetryableDeliveryError } from '../errors';
import { cStore, classifyStoreStatus } from './cstore';

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

  it('closes its socket once the attempt has failed, so retries do not pile up open connections', async () => {
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
      expect(tcpSockets()).toBe([...pacs.sockets].filter((s) => !s.destroyed).length);
    } finally {
      await pacs.close();
    }
  });
});
