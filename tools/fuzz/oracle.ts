// The reference judgement of a corpus instance, independent of the listener's own parser: DCMTK's dcmdump reads
// the instance (as a Part 10 file) and its errors and exit status say whether the structure is readable; the
// Image Pixel attributes it prints are then checked against the pixel data it found, by rules written here again
// rather than imported. An instance is "detectably corrupt" when either finds a fault; the fuzz test asserts the
// listener acknowledges none of those with Success. (dcmjs is not used here: on a huge length it can abort the
// whole Node process, which is the worker's crash in issue 14.)
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { buildFileMeta } from '../../services/listener/part10';
import type { CorpusInstance } from './corpus';

export interface Verdict {
  corrupt: boolean;
  /** What dcmdump or the image rules found; "" when nothing. */
  why: string;
}

const ENHANCED = new Set(['1.2.840.10008.5.1.4.1.1.4.1', '1.2.840.10008.5.1.4.1.1.4.4']);
const NATIVE = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.1.99']);

/** The instance as a Part 10 file (what a PACS would have stored), for DCMTK and for inspection. */
export function writePart10(dir: string, instance: CorpusInstance): string {
  const meta = buildFileMeta({
    MediaStorageSOPClassUID: instance.SOPClassUID,
    MediaStorageSOPInstanceUID: instance.SOPInstanceUID,
    TransferSyntaxUID: instance.transferSyntaxUID,
    ImplementationClassUID: '2.25.311254938190946853917326118423947216215',
    ImplementationVersionName: 'NT_FUZZ',
  });
  const file = path.join(dir, `${instance.id}.dcm`);
  writeFileSync(file, Buffer.concat([meta, instance.dataset]));
  return file;
}

function dcmdump(file: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('dcmdump', ['-Un', '-M', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('latin1')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface Dumped {
  values: Map<string, string>;
  /** Native Pixel Data length, or the item count of an encapsulated one (Basic Offset Table included). */
  pixelLength?: number;
  pixelItems?: number;
}

/** Top-level lines of `dcmdump` output: "(gggg,eeee) VR value   # length, VM Keyword". */
function parseDump(text: string): Dumped {
  const values = new Map<string, string>();
  const out: Dumped = { values };
  let inDataset = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('# Dicom-Data-Set')) inDataset = true;
    if (!inDataset || !line.startsWith('(')) continue;
    const m = /^\(([0-9a-f]{4}),([0-9a-f]{4})\) (\w\w) (.*?)\s*#\s*(u\/l|\d+), \d+ (\S+)/.exec(line);
    if (!m) continue;
    const [, group, element, , value, length, keyword] = m;
    const tag = `${group}${element}`;
    if (tag === '7fe00010') {
      const items = /PixelSequence #=(\d+)/.exec(value);
      if (items) out.pixelItems = Number(items[1]);
      else out.pixelLength = Number(length);
    }
    values.set(keyword, value.replace(/^\[|\]$/g, '').trim());
  }
  return out;
}

function imageFault(d: Dumped, instance: CorpusInstance): string {
  const num = (k: string) => (d.values.has(k) ? Number(d.values.get(k)) : undefined);
  for (const k of ['SOPInstanceUID', 'StudyInstanceUID', 'SeriesInstanceUID']) {
    if (!/^[0-9.]{1,64}$/.test(d.values.get(k) ?? '')) return `${k} missing or not a UID`;
  }
  if (d.values.get('SOPInstanceUID') !== instance.SOPInstanceUID) return 'SOPInstanceUID differs from the command';
  const required = ['Rows', 'Columns', 'BitsAllocated', 'BitsStored', 'SamplesPerPixel', 'PhotometricInterpretation'];
  if (ENHANCED.has(instance.SOPClassUID)) required.push('NumberOfFrames');
  const missing = required.filter((k) => !d.values.get(k));
  if (missing.length) return `missing ${missing.join(', ')}`;
  if (d.pixelLength === undefined && d.pixelItems === undefined) return 'missing PixelData';
  const rows = num('Rows') as number;
  const columns = num('Columns') as number;
  const bits = num('BitsAllocated') as number;
  const stored = num('BitsStored') as number;
  const samples = num('SamplesPerPixel') as number;
  const framesText = d.values.get('NumberOfFrames');
  const frames = framesText === undefined ? 1 : /^\+?\d+$/.test(framesText) ? Number(framesText) : NaN;
  if (!(rows > 0 && columns > 0)) return 'Rows or Columns not positive';
  if (![1, 8, 16, 32, 64].includes(bits) || !(stored >= 1 && stored <= bits)) return 'bits out of range';
  if (samples !== 1 && samples !== 3) return 'SamplesPerPixel out of range';
  if (!(frames >= 1)) return 'NumberOfFrames not a positive integer';
  if (NATIVE.has(instance.transferSyntaxUID)) {
    if (d.pixelLength === undefined) return 'encapsulated Pixel Data in a native transfer syntax';
    const bytes = Math.ceil((rows * columns * frames * samples * bits) / 8);
    if (d.pixelLength !== bytes + (bytes % 2)) return `Pixel Data ${d.pixelLength} bytes for ${bytes}`;
  } else {
    if (d.pixelItems === undefined) return 'native Pixel Data in an encapsulated transfer syntax';
    if (d.pixelItems - 1 < frames) return `${d.pixelItems - 1} fragments for ${frames} frames`;
  }
  return '';
}

/** Judges one instance written as a Part 10 file in `dir`. */
export async function referenceVerdict(dir: string, instance: CorpusInstance): Promise<Verdict> {
  const file = writePart10(dir, instance);
  const r = await dcmdump(file);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('E:') || l.startsWith('F:'));
  if (r.code !== 0 || errors.length > 0) return { corrupt: true, why: `dcmdump: ${errors[0] ?? `exit ${r.code}`}`.slice(0, 160) };
  const fault = imageFault(parseDump(r.stdout), instance);
  return { corrupt: fault !== '', why: fault };
}
