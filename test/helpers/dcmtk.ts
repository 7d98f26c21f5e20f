// Real DCMTK tools for tests and the ingest benchmark: echoscu/storescu, a private storescp and the compressors, always with
// TCP_NODELAY=1 (DCMTK 3.6.7 stalls on Nagle otherwise), plus small synthetic MR instances written with dcmjs and,
// for JPEG 2000 (no DCMTK encoder in Debian), transcoded with dcmjs-codecs.
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
// eslint-disable-next-line @typescript-eslint/ban-ts-comment -- dcmjs 0.50.3 ships no type declarations
// @ts-ignore
import dcmjsUntyped from 'dcmjs';
import { startInNetns, type NetnsServer } from './netns';

interface DcmjsDicomDict {
  dict: Record<string, unknown>;
  write(options?: Record<string, unknown>): ArrayBuffer;
}
interface Dcmjs {
  data: {
    DicomDict: new (meta: Record<string, unknown>) => DcmjsDicomDict;
    DicomMetaDictionary: { denaturalizeDataset(ds: Record<string, unknown>): Record<string, unknown>; uid(): string };
  };
}
const dcmjs = dcmjsUntyped as unknown as Dcmjs;

export const MR_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.4';
export const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';

export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function dcmtkEnv(): NodeJS.ProcessEnv {
  return { ...process.env, TCP_NODELAY: '1' };
}

/** Runs a DCMTK tool to completion; never throws on a non-zero exit (callers assert on it). */
export function runTool(tool: string, args: string[], timeoutMs = 60_000): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { env: dcmtkEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A new UID under the 2.25 (UUID-derived) root, as DCMTK and dcmjs make them. */
export function newUid(): string {
  return dcmjs.data.DicomMetaDictionary.uid();
}

export interface MrInstanceOptions {
  StudyInstanceUID: string;
  SeriesInstanceUID: string;
  SOPInstanceUID?: string;
  SeriesNumber?: number;
  InstanceNumber?: number;
  SeriesDescription?: string;
  AccessionNumber?: string;
  rows?: number;
  columns?: number;
  /** Fills the pixels; default a smooth ramp with some structure (compresses like an image, not like noise). */
  seed?: number;
}

/** Writes an MR Image Storage Part 10 file (explicit VR little endian, 16-bit) and returns its SOP Instance UID. */
export function writeMrInstance(file: string, o: MrInstanceOptions): string {
  const rows = o.rows ?? 64;
  const columns = o.columns ?? 64;
  const SOPInstanceUID = o.SOPInstanceUID ?? newUid();
  const pixels = new Uint16Array(rows * columns);
  const seed = o.seed ?? 1;
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < columns; x++) {
      const r = Math.hypot(x - columns / 2, y - rows / 2);
      pixels[y * columns + x] = Math.max(0, Math.round(800 - r * 6 + ((x * 7 + y * 13 + seed * 31) % 23)));
    }
  }
  const dataset: Record<string, unknown> = {
    SOPClassUID: MR_IMAGE_STORAGE,
    SOPInstanceUID,
    StudyDate: '20260101',
    AccessionNumber: o.AccessionNumber ?? 'ACC0001',
    Modality: 'MR',
    PatientName: 'TEST^SYNTHETIC',
    PatientID: 'SYN0001',
    StudyInstanceUID: o.StudyInstanceUID,
    SeriesInstanceUID: o.SeriesInstanceUID,
    SeriesNumber: String(o.SeriesNumber ?? 1),
    InstanceNumber: String(o.InstanceNumber ?? 1),
    SeriesDescription: o.SeriesDescription ?? 'T2 AX',
    ImageType: ['ORIGINAL', 'PRIMARY', 'M'],
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: rows,
    Columns: columns,
    BitsAllocated: 16,
    BitsStored: 16,
    HighBit: 15,
    PixelRepresentation: 0,
    PixelSpacing: ['0.9', '0.9'],
    SliceThickness: '5',
    ImagePositionPatient: ['0', '0', String(o.InstanceNumber ?? 1)],
    ImageOrientationPatient: ['1', '0', '0', '0', '1', '0'],
    PixelData: [pixels.buffer],
    _vrMap: { PixelData: 'OW' },
  };
  writeDataset(file, dataset);
  return SOPInstanceUID;
}

/** Writes a naturalized data set (keywords) as a Part 10 file, explicit VR little endian, with dcmjs. */
export function writeDataset(file: string, dataset: Record<string, unknown>): void {
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: dataset.SOPClassUID,
    MediaStorageSOPInstanceUID: dataset.SOPInstanceUID,
    TransferSyntaxUID: EXPLICIT_VR_LE,
    ImplementationClassUID: '2.25.80302813137786398554742050926734630921',
  };
  const dict = new dcmjs.data.DicomDict(dcmjs.data.DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = dcmjs.data.DicomMetaDictionary.denaturalizeDataset(dataset);
  writeFileSync(file, Buffer.from(dict.write()));
}

export type Compression = 'jpeg-lossless' | 'jpeg-ls' | 'rle' | 'jpeg2000' | 'deflated';

/** The storescu option that proposes each compressed transfer syntax (storescu proposes uncompressed by default). */
export const STORESCU_PROPOSE: Record<Compression, string> = {
  'jpeg-lossless': '-xs',
  'jpeg-ls': '-xt',
  rle: '-xr',
  jpeg2000: '-xv',
  deflated: '-xd',
};

export const COMPRESSED_TRANSFER_SYNTAX: Record<Compression, string> = {
  'jpeg-lossless': '1.2.840.10008.1.2.4.70',
  'jpeg-ls': '1.2.840.10008.1.2.4.80',
  rle: '1.2.840.10008.1.2.5',
  jpeg2000: '1.2.840.10008.1.2.4.90',
  deflated: '1.2.840.10008.1.2.1.99',
};

/** Compresses with DCMTK (dcmcjpeg defaults to Process 14 SV1; dcmcjpls to lossless) or, for J2K, dcmjs-codecs. */
export async function compress(input: string, output: string, kind: Compression): Promise<void> {
  if (kind === 'jpeg2000') {
    await transcodeJ2k(input, output);
    return;
  }
  const [tool, args] = {
    'jpeg-lossless': ['dcmcjpeg', [input, output]],
    'jpeg-ls': ['dcmcjpls', [input, output]],
    rle: ['dcmcrle', [input, output]],
    deflated: ['dcmconv', ['+td', input, output]],
  }[kind] as [string, string[]];
  const r = await runTool(tool, args);
  if (r.code !== 0) throw new Error(`${tool} failed: ${r.stderr}`);
}

async function transcodeJ2k(input: string, output: string): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when a J2K instance is needed
  const codecs = require('dcmjs-codecs') as typeof import('dcmjs-codecs');
  if (!codecs.NativeCodecs.isInitialized()) await codecs.NativeCodecs.initializeAsync();
  const bytes = readFileSync(input);
  const transcoder = new codecs.Transcoder(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  transcoder.transcode(COMPRESSED_TRANSFER_SYNTAX.jpeg2000);
  const raw = `${output}.dcmjs`;
  writeFileSync(raw, Buffer.from(transcoder.getDicomPart10()));
  // Re-written by DCMTK (same transfer syntax) so the file holds exactly the bytes storescu will send.
  const r = await runTool('dcmconv', [raw, output]);
  rmSync(raw, { force: true });
  if (r.code !== 0) throw new Error(`dcmconv failed: ${r.stderr}`);
}

/** The transfer syntax a file is stored in, read by dcmdump (a reference parser independent of ours). */
export async function transferSyntaxOf(file: string): Promise<string> {
  const r = await runTool('dcmdump', ['-Un', '+P', '0002,0010', file]);
  const m = /\[([0-9.]+)\]/.exec(r.stdout);
  if (!m) throw new Error(`dcmdump could not read ${file}: ${r.stderr}`);
  return m[1];
}

export interface AeOptions {
  port: number;
  host?: string;
  callingAe: string;
  calledAe: string;
}

export interface StoreResult extends ToolResult {
  /** One DIMSE status per C-STORE response, in order, e.g. 0x0000, 0xa700. */
  statuses: number[];
  associationRejected: boolean;
}

/** storescu -v: parses "Received Store Response (...)" lines into statuses. Extra args go before the files. */
export async function storescu(ae: AeOptions, files: string[], extraArgs: string[] = []): Promise<StoreResult> {
  const r = await runTool('storescu', [
    '-v', '-aet', ae.callingAe, '-aec', ae.calledAe, ...extraArgs, ae.host ?? '127.0.0.1', String(ae.port), ...files,
  ]);
  return { ...r, statuses: parseStatuses(r.stdout + r.stderr), associationRejected: /Association Rejected/i.test(r.stdout + r.stderr) };
}

/** DCMTK's names for C-STORE statuses (DU_cstoreStatusString); unknown ones print as hex. */
const STATUS_NAMES: Record<string, number> = {
  Success: 0x0000,
  'Refused: OutOfResources': 0xa700,
  'Refused: SOPClassNotSupported': 0x0122,
  'Error: DataSetDoesNotMatchSOPClass': 0xa900,
  'Error: CannotUnderstand': 0xc000,
  'Warning: CoercionOfDataElements': 0xb000,
  'Warning: DataSetDoesNotMatchSOPClass': 0xb007,
  'Warning: ElementsDiscarded': 0xb006,
};

export function parseStatuses(output: string): number[] {
  const statuses: number[] = [];
  for (const line of output.split('\n')) {
    const m = /Received Store Response \((.*)\)/.exec(line);
    if (!m) continue;
    const hex = /0x([0-9a-f]{4})/i.exec(m[1]);
    statuses.push(STATUS_NAMES[m[1]] ?? (hex ? parseInt(hex[1], 16) : -1));
  }
  return statuses;
}

export async function echoscu(ae: AeOptions): Promise<ToolResult & { associationRejected: boolean }> {
  const r = await runTool('echoscu', ['-v', '-aet', ae.callingAe, '-aec', ae.calledAe, ae.host ?? '127.0.0.1', String(ae.port)]);
  return { ...r, associationRejected: /Association Rejected/i.test(r.stdout + r.stderr) };
}

export type PrivateStorescp = NetnsServer & { port: number };

/**
 * A DCMTK storescp answering to `aet` on a 127.0.0.1 port, writing what it receives to `outDir`. It binds every
 * interface, so it runs in a private network namespace (netns.ts) with its unix sockets in `socketDir`. `extraArgs`
 * go before the others (e.g. `-xf config profile`: a PACS that stores only the classes its profile lists).
 */
export async function startPrivateStorescp(aet: string, outDir: string, socketDir: string, extraArgs: string[] = []): Promise<PrivateStorescp> {
  const server = await startInNetns({ socketDir, command: 'storescp', args: [...extraArgs, '-od', outDir, '-aet', aet, '11112'], env: dcmtkEnv(), listen: { dicom: 11112 } });
  return { ...server, port: server.ports.dicom };
}

