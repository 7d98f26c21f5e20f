// The PACS simulator's sending side: pushes studies to a DICOM C-STORE SCP the way a modality or archive does,
// one association per study, a bounded number of associations at once. In process with dcmjs-dimse's Client
// (no DCMTK needed), with TCP_NODELAY set on its socket: a C-STORE exchange is a small request and a small
// response per instance, the pattern Nagle's algorithm plus delayed ACKs stalls by tens of milliseconds.
import { Client, Dataset, requests, constants, log as dimseLog } from 'dcmjs-dimse';
import type { Socket } from 'node:net';
import { createDicomWriter } from './dicom';
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
  /** Date.now() when the last C-STORE response arrived (where end-to-end latency starts); 0 if none did. */
  lastResponseAt: number;
}

/** The File Meta Information of a Part 10 file (group 0002, always explicit VR little endian) and where the
 *  dataset starts. */
export function readFileMeta(data: Uint8Array): { meta: Record<string, string>; datasetOffset: number } {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (data.byteLength < 144 || String.fromCharCode(...data.subarray(128, 132)) !== 'DICM') throw new StoreError('not a DICOM Part 10 file', false);
  const meta: Record<string, string> = {};
  let off = 132;
  while (off + 8 <= data.byteLength && dv.getUint16(off, true) === 0x0002) {
    const element = dv.getUint16(off + 2, true);
    const vr = String.fromCharCode(data[off + 4]!, data[off + 5]!);
    const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr);
    const len = long ? dv.getUint32(off + 8, true) : dv.getUint16(off + 6, true);
    const start = off + (long ? 12 : 8);
    const text = (): string => String.fromCharCode(...data.subarray(start, start + len)).replace(/[\0 ]+$/, '');
    if (element === 0x0002) meta.MediaStorageSOPClassUID = text();
    if (element === 0x0003) meta.MediaStorageSOPInstanceUID = text();
    if (element === 0x0010) meta.TransferSyntaxUID = text();
    off = start + len;
  }
  return { meta, datasetOffset: off };
}

/** A dataset that goes on the wire as the file's own bytes: no parse and re-encode per instance (the dominant
 *  cost of sending with dcmjs), and private elements travel untouched. If the SCP accepts another transfer
 *  syntax, dcmjs-dimse transcodes from getElements(), which parses the file then. */
class RawP10Dataset extends Dataset {
  private parsed = false;
  constructor(
    private readonly data: Uint8Array,
    private readonly datasetOffset: number,
    meta: Record<string, string>,
    private readonly parse: (d: Uint8Array) => Record<string, unknown>,
  ) {
    super({ SOPClassUID: meta.MediaStorageSOPClassUID, SOPInstanceUID: meta.MediaStorageSOPInstanceUID }, meta.TransferSyntaxUID);
  }

  override getElements(): Record<string, unknown> {
    if (!this.parsed) {
      this.parsed = true;
      const all = this.parse(this.data);
      for (const [k, v] of Object.entries(all)) if (!/^(FileMetaInformation|MediaStorage|TransferSyntax|Implementation)/.test(k)) this.setElement(k, v as string);
    }
    return super.getElements();
  }

  override getDenaturalizedDataset(): Buffer {
    return Buffer.from(this.data.buffer, this.data.byteOffset + this.datasetOffset, this.data.byteLength - this.datasetOffset);
  }
}

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
        let lastResponseAt = 0;
        for (const f of files) {
          const { meta, datasetOffset } = readFileMeta(f.data);
          const request = new requests.CStoreRequest(new RawP10Dataset(f.data, datasetOffset, meta, (d) => reader.read(d)));
          bytes += f.data.byteLength;
          request.on('response', (response: { getStatus(): number }) => {
            lastResponseAt = Date.now();
            if (response.getStatus() !== constants.Status.Success) failed++;
          });
          client.addRequest(request);
        }
        let settled = false;
        const done = (err?: StoreError): void => {
          if (settled) return;
          settled = true;
          if (err) reject(err);
          else resolve({ instances: files.length, failed, bytes, lastResponseAt });
        };
        client.on('associationRejected', () => done(new StoreError('association rejected', true)));
        client.on('networkError', (e: Error) => done(new StoreError(`network error: ${e.message}`, true)));
        client.on('closed', () => done());
        client.send(target.host, target.port, callingAe, target.calledAe, {
          connectTimeout: timeoutMs,
          associationTimeout: timeoutMs,
          pduTimeout: timeoutMs,
          associationLingerTimeout: 0,
        });
        // dcmjs-dimse opens the socket inside send() and keeps it on its network object; it offers no noDelay
        // option, so set it here, before the first byte goes out, and again once connected.
        const socket = (client as unknown as NetworkInternals).network?.socket;
        socket?.setNoDelay(true);
        client.on('connected', () => socket?.setNoDelay(true));
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
