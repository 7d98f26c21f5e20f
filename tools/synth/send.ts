// The PACS simulator's sending side: pushes studies to a DICOM C-STORE SCP the way a modality or archive does,
// one association per study, a bounded number of associations at once. In process with dcmjs-dimse's Client
// (no DCMTK needed), with TCP_NODELAY set on its socket: a C-STORE exchange is a small request and a small
// response per instance, the pattern Nagle's algorithm plus delayed ACKs stalls by tens of milliseconds.
import { Client, Dataset, requests, constants, log as dimseLog } from 'dcmjs-dimse';
import type { Socket } from 'node:net';
import { createDicomWriter, EXPLICIT_VR_LITTLE_ENDIAN } from './dicom';
import type { DicomFile } from './types';

export interface StoreTarget {
  calledAe: string;
  host: string;
  port: number;
}

/** Parses "AE@host:port" (the CLI's --send value). */
export function parseTarget(spec: string): StoreTarget {
  const m = /^([^@]{1,16})@([^:]+):(\d{1,5})$/.exec(spec.trim());
  if (!m) throw new Error(`--send expects AE@host:port, got "${spec}"`);
  return { calledAe: m[1]!, host: m[2]!, port: Number(m[3]) };
}

export class StoreError extends Error {
  constructor(
    message: string,
    /** Network errors and refused associations may succeed on retry; rejected instances will not. */
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}

export interface SendResult {
  instances: number;
  failed: number;
  bytes: number;
}

// Private elements dcmjs would otherwise drop when it re-encodes a naturalized dataset for the wire.
const PRIVATE_NAME_MAP: Record<string, { tag: string; vr: string; name: string; vm: string }> = Object.fromEntries(
  [
    ['00190010', 'LO'], ['0019100C', 'IS'], ['0019100D', 'CS'],
    ['00430010', 'LO'], ['00431039', 'IS'],
    ['20010010', 'LO'], ['20011003', 'FL'],
  ].map(([tag, vr]) => [tag!, { tag: `(${tag!.slice(0, 4)},${tag!.slice(4)})`, vr: vr!, name: tag!, vm: tag === '00431039' ? '4' : '1' }]),
);

interface NetworkInternals {
  network?: { socket?: Socket };
}

export interface StoreSender {
  /** Sends one study's instances over one association; resolves when the association is released. */
  sendStudy(files: DicomFile[]): Promise<SendResult>;
}

export function createStoreSender(target: StoreTarget, callingAe = 'NT_SYNTH', timeoutMs = 60000): StoreSender {
  const reader = createDicomWriter();
  // dcmjs-dimse logs every PDU at info level; a load generator sending thousands of instances wants errors only
  dimseLog.setLevel('error');
  return {
    sendStudy(files) {
      return new Promise<SendResult>((resolve, reject) => {
        const client = new Client();
        let failed = 0;
        let bytes = 0;
        for (const f of files) {
          const elements = reader.read(f.data);
          delete elements.TransferSyntaxUID;
          for (const k of Object.keys(elements)) if (k.startsWith('MediaStorage') || k.startsWith('Implementation') || k === 'FileMetaInformationVersion' || k === 'FileMetaInformationGroupLength') delete elements[k];
          const request = new requests.CStoreRequest(new Dataset(elements, EXPLICIT_VR_LITTLE_ENDIAN));
          bytes += f.data.byteLength;
          request.on('response', (response: { getStatus(): number }) => {
            if (response.getStatus() !== constants.Status.Success) failed++;
          });
          client.addRequest(request);
        }
        let settled = false;
        const done = (err?: StoreError): void => {
          if (settled) return;
          settled = true;
          if (err) reject(err);
          else resolve({ instances: files.length, failed, bytes });
        };
        client.on('associationRejected', () => done(new StoreError('association rejected', true)));
        client.on('networkError', (e: Error) => done(new StoreError(`network error: ${e.message}`, true)));
        client.on('closed', () => done());
        client.send(target.host, target.port, callingAe, target.calledAe, {
          connectTimeout: timeoutMs,
          associationTimeout: timeoutMs,
          pduTimeout: timeoutMs,
          associationLingerTimeout: 0,
          datasetNameMap: PRIVATE_NAME_MAP,
        });
        // dcmjs-dimse opens the socket inside send() and keeps it on its network object; it offers no noDelay
        // option, so set it here, before the first byte goes out.
        (client as unknown as NetworkInternals).network?.socket?.setNoDelay(true);
      });
    },
  };
}

/** Runs tasks with at most `limit` in flight; resolves when all are done (rejects on the first failure). */
export async function withConcurrency<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await task(item);
    }
  });
  await Promise.all(workers);
}
