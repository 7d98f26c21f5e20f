// Compressed and uncompressed copies of the same series decode to identical volumes. Compressed copies are made
// by the real DCMTK tools (dcmcjpeg: JPEG lossless SV1, dcmcjpls: JPEG-LS lossless, dcmcrle: RLE, dcmconv +td:
// deflated) and, for JPEG 2000 (no encoder in DCMTK 3.6.7), by dcmjs-codecs' OpenJPEG encoder.
// None of them is lossy history; a near-lossless JPEG-LS copy is (lossyCompressed), by its syntax alone.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { NativeCodecs, Transcoder, constants } from 'dcmjs-codecs';
import { readInstance, TRANSFER_SYNTAX } from '../../shared/imaging/dicom-header';
import { createPixelDecoder } from '../../shared/imaging/pixels';
import { loadStudyVolumes, type StudyVolumes } from '../../shared/imaging/study';
import { DEFAULT_PREPROCESSING } from '../../shared/imaging/spec';
import type { Vec3 } from '../../shared/imaging/dicom-header';
import { axialPositions, makeEnhancedSeries, makeSeries, phantom, uid } from '../../shared/imaging/synthetic';

const run = promisify(execFile);
const CENTRE: Vec3 = [0, 0, 20];

/** Phantom plus deterministic texture, so the codecs have real work and any decode error shows. */
function textured(signedOffset: number) {
  const base = phantom(CENTRE, [20, -15, 30]);
  return (p: Vec3) => {
    const h = Math.sin(p[0] * 12.9898 + p[1] * 78.233 + p[2] * 37.719) * 43758.5453;
    return base(p) + Math.floor((h - Math.floor(h)) * 200) - signedOffset;
  };
}

let dir: string;
const decoder = createPixelDecoder();
// Series 1: unsigned, rescale slope 2 / intercept -100. Series 2: signed pixels with negative values.
const files: { name: string; data: Uint8Array }[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'nt-imaging-'));
  const study = uid();
  const s1 = makeSeries({ StudyInstanceUID: study, SeriesInstanceUID: uid(), SeriesNumber: 2, SeriesDescription: 't2_tse_tra', positions: axialPositions(CENTRE, 10, 6), intensity: textured(0), rescale: { slope: 2, intercept: -100 } });
  const s2 = makeSeries({ StudyInstanceUID: study, SeriesInstanceUID: uid(), SeriesNumber: 3, SeriesDescription: 'tirm_tra_dark-fluid', positions: axialPositions(CENTRE, 10, 6), intensity: textured(500), signed: true });
  [...s1, ...s2].forEach((data, i) => files.push({ name: `i${String(i).padStart(3, '0')}.dcm`, data }));
  await Promise.all(files.map((f) => writeFile(path.join(dir, f.name), f.data)));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function dcmtk(tool: string, args: string[], suffix: string): Promise<{ name: string; data: Uint8Array }[]> {
  const out: { name: string; data: Uint8Array }[] = [];
  // Two at a time: the machine has two cores.
  for (let i = 0; i < files.length; i += 2) {
    await Promise.all(
      files.slice(i, i + 2).map(async (f) => {
        const target = path.join(dir, `${f.name}.${suffix}`);
        await run(tool, [...args, path.join(dir, f.name), target], { env: { ...process.env, TCP_NODELAY: '1' } });
        out.push({ name: target, data: new Uint8Array(await readFile(target)) });
      }),
    );
  }
  return out;
}

async function volumes(fs: { name: string; data: Uint8Array }[]): Promise<StudyVolumes> {
  return loadStudyVolumes(fs, DEFAULT_PREPROCESSING, { decoder });
}

let reference: StudyVolumes;
beforeAll(async () => {
  reference = await volumes(files);
});

describe('compressed transfer syntaxes decode to the same volumes as uncompressed', () => {
  it('reference study has both sequences', () => {
    expect(reference.missing).toEqual(expect.arrayContaining(['T1', 'DWI', 'ADC']));
    expect(reference.volumes.T2).toBeDefined();
    expect(reference.volumes.FLAIR).toBeDefined();
  });

  it.each([
    ['JPEG Lossless SV1 (dcmcjpeg)', 'dcmcjpeg', ['+e1'], TRANSFER_SYNTAX.JpegLosslessProcess14SV1],
    ['JPEG Lossless Process 14, any predictor (dcmcjpeg +el)', 'dcmcjpeg', ['+el'], TRANSFER_SYNTAX.JpegLosslessProcess14],
    ['JPEG-LS lossless (dcmcjpls)', 'dcmcjpls', ['+el'], TRANSFER_SYNTAX.JpegLsLossless],
    ['RLE lossless (dcmcrle)', 'dcmcrle', [], TRANSFER_SYNTAX.RleLossless],
    ['Deflated explicit VR LE (dcmconv +td)', 'dcmconv', ['+td'], TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian],
    ['Implicit VR LE (dcmconv +ti)', 'dcmconv', ['+ti'], TRANSFER_SYNTAX.ImplicitVRLittleEndian],
    ['Explicit VR big endian (dcmconv +tb)', 'dcmconv', ['+tb'], TRANSFER_SYNTAX.ExplicitVRBigEndian],
  ])('%s', async (_name, tool, args, ts) => {
    const copies = await dcmtk(tool, args as string[], tool + (args as string[]).join(''));
    expect(readInstance(copies[0].data).header.TransferSyntaxUID).toBe(ts);
    const out = await volumes(copies);
    expect(out.volumes.T2).toEqual(reference.volumes.T2);
    expect(out.volumes.FLAIR).toEqual(reference.volumes.FLAIR);
    // a lossless syntax is no lossy history
    expect(out.series.filter((r) => r.lossyCompressed)).toEqual([]);
  });

  it('a lossy syntax the decoder reads (JPEG-LS near-lossless, dcmcjpls +en) marks the series lossyCompressed, with or without (0028,2110)', async () => {
    expect(reference.series.filter((r) => r.lossyCompressed)).toEqual([]);
    // The unsigned series (T2) only: DCMTK's near-lossless JPEG-LS does not take signed pixels.
    const env = { ...process.env, TCP_NODELAY: '1' };
    const erased: { name: string; data: Uint8Array }[] = [];
    for (const f of files.slice(0, 10)) {
      const target = path.join(dir, `${f.name}.near`);
      await run('dcmcjpls', ['+en', path.join(dir, f.name), target], { env });
      if (erased.length === 0) {
        expect(readInstance(await readFile(target)).header).toMatchObject({ TransferSyntaxUID: TRANSFER_SYNTAX.JpegLsNearLossless, LossyImageCompression: '01' });
      }
      // The transfer syntax alone says it: (0028,2110) erased (a file placed by hand for `npm run score`).
      await run('dcmodify', ['-nb', '-ea', '(0028,2110)', target], { env });
      erased.push({ name: target, data: new Uint8Array(await readFile(target)) });
    }
    expect(readInstance(erased[0].data).header.LossyImageCompression).toBeUndefined();
    const out = await volumes(erased);
    expect(out.series.filter((r) => r.used)).toEqual([expect.objectContaining({ sequence: 'T2', lossyCompressed: true })]);
  });

  it('JPEG 2000 lossless (encoded by dcmjs-codecs)', async () => {
    await NativeCodecs.initializeAsync();
    const copies = files.map((f) => {
      const t = new Transcoder(f.data.slice().buffer as ArrayBuffer);
      t.transcode(constants.TransferSyntax.Jpeg2000Lossless);
      return { name: f.name, data: new Uint8Array(t.getDicomPart10()) };
    });
    expect(readInstance(copies[0].data).header.TransferSyntaxUID).toBe(TRANSFER_SYNTAX.Jpeg2000Lossless);
    const out = await volumes(copies);
    expect(out.volumes.T2).toEqual(reference.volumes.T2);
    expect(out.volumes.FLAIR).toEqual(reference.volumes.FLAIR);
  });

  it('raw decoded pixels equal the stored values with rescale applied (signed and unsigned)', () => {
    const inst = readInstance(files[0].data);
    const out = new Float32Array(64 * 64);
    decoder.decodeFrameInto(inst, inst.frames[0], out, 0);
    const stored = new Uint16Array(inst.pixelData!.kind === 'native' ? inst.pixelData!.bytes.slice().buffer : new ArrayBuffer(0));
    expect(out[100]).toBe(stored[100] * 2 - 100);
    const signed = readInstance(files[12].data);
    decoder.decodeFrameInto(signed, signed.frames[0], out, 0);
    expect(Math.min(...out)).toBeLessThan(0);
  });

  it('Enhanced MR multi-frame compressed by DCMTK (JPEG-LS, RLE, JPEG lossless) decodes frame by frame to the same volume', async () => {
    const enhanced = makeEnhancedSeries({ SeriesInstanceUID: uid(), SeriesDescription: 'T2W_TSE', positions: axialPositions(CENTRE, 16, 5), intensity: textured(0) });
    const src = path.join(dir, 'enhanced.dcm');
    await writeFile(src, enhanced);
    const ref = await volumes([{ name: 'enhanced.dcm', data: enhanced }]);
    expect(ref.volumes.T2).toBeDefined();
    for (const [tool, args, ts] of [
      ['dcmcjpls', [], TRANSFER_SYNTAX.JpegLsLossless],
      ['dcmcrle', [], TRANSFER_SYNTAX.RleLossless],
      ['dcmcjpeg', ['+e1'], TRANSFER_SYNTAX.JpegLosslessProcess14SV1],
    ] as const) {
      const target = path.join(dir, `enhanced.${tool}.dcm`);
      await run(tool, [...args, src, target], { env: { ...process.env, TCP_NODELAY: '1' } });
      const data = new Uint8Array(await readFile(target));
      const inst = readInstance(data);
      expect(inst.header.TransferSyntaxUID).toBe(ts);
      expect(inst.pixelData?.kind === 'encapsulated' && inst.pixelData.fragments.length).toBe(16);
      const out = await volumes([{ name: target, data }]);
      expect(out.volumes.T2).toEqual(ref.volumes.T2);
    }
  });

  it('a damaged RLE segment, a codestream larger than Rows x Columns, and a rescale out of float range are corrupt, not decoded', async () => {
    await decoder.ready();
    const out = new Float32Array(64 * 64);
    // RLE: the last segment cut short decodes (PackBits) to fewer than Rows x Columns bytes; the codec would fill zeros.
    const [rle] = await dcmtk('dcmcrle', [], 'rle-damaged');
    const inst = readInstance(rle.data);
    expect(inst.pixelData?.kind).toBe('encapsulated');
    const frames = (inst.pixelData as { fragments: Uint8Array[] }).fragments;
    expect(() => decoder.decodeFrameInto(inst, inst.frames[0], out, 0)).not.toThrow();
    frames[0] = frames[0].subarray(0, frames[0].byteLength - 400);
    expect(() => decoder.decodeFrameInto(inst, inst.frames[0], out, 0)).toThrow(/RLE segment 2 decodes to \d+ of 4096 bytes/);
    // JPEG-LS: a 64x64 codestream under a header that says 32x32 would be read with the wrong stride.
    const [jpls] = await dcmtk('dcmcjpls', ['+el'], 'jpls-rows');
    const wrong = readInstance(jpls.data);
    Object.assign(wrong.header, { Rows: 32, Columns: 32 });
    expect(() => decoder.decodeFrameInto(wrong, wrong.frames[0], new Float32Array(32 * 32), 0)).toThrow(/codestream is 64x64, the header says 32x32: not decoded/);
    // A Rescale Slope and Intercept of 3e38 overflow float32: Infinity would turn the whole volume into NaN.
    const native = readInstance(files[0].data, path.join(dir, files[0].name));
    const frame = { ...native.frames[0], RescaleSlope: 3e38, RescaleIntercept: 3e38 };
    expect(() => decoder.decodeFrameInto(native, frame, out, 0)).toThrow(/Rescale Slope 3e\+38 and Intercept 3e\+38 give values out of range/);
    // BitsStored 0 masked every pixel to 0 (reported as a blank scan); more than allocated is no better.
    for (const BitsStored of [0, 40]) {
      const lying = readInstance(files[0].data, path.join(dir, files[0].name));
      Object.assign(lying.header, { BitsStored });
      expect(() => decoder.decodeFrameInto(lying, lying.frames[0], out, 0)).toThrow(`corrupt: ${files[0].name}: BitsStored ${BitsStored} does not fit BitsAllocated 16`);
    }
    // Reasons name the file, never its path on the server.
    expect(() => decoder.decodeFrameInto(native, frame, out, 0)).toThrow(new RegExp(`^corrupt: ${files[0].name}: `));
  });

  it('a small codestream declaring another size than Rows x Columns (65535 x 65535) is corrupt before the codec allocates for it', async () => {
    await decoder.ready();
    const j2k = new Transcoder(files[0].data.slice().buffer as ArrayBuffer);
    j2k.transcode(constants.TransferSyntax.Jpeg2000Lossless);
    const [jpls] = await dcmtk('dcmcjpls', [], 'jpls-size');
    const [jpeg] = await dcmtk('dcmcjpeg', ['+e1'], 'jpeg-size');
    // The frame header's size fields: SIZ's Xsiz/Ysiz (32 bits, after SOC), SOF55's and SOF3's Y/X (16 bits).
    for (const [name, data, marker, at, write] of [
      ['j2k.dcm', new Uint8Array(j2k.getDicomPart10()), [0xff, 0x4f, 0xff, 0x51], [12, 8], (b: Buffer, o: number, v: number) => b.writeUInt32BE(v, o)],
      ['jpls.dcm', jpls.data, [0xff, 0xf7], [5, 7], (b: Buffer, o: number, v: number) => b.writeUInt16BE(v, o)],
      ['jpeg.dcm', jpeg.data, [0xff, 0xc3], [5, 7], (b: Buffer, o: number, v: number) => b.writeUInt16BE(v, o)],
    ] as const) {
      const inst = readInstance(data, name);
      const frame = (inst.pixelData as { fragments: Uint8Array[] }).fragments[0];
      const b = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
      const i = b.indexOf(Buffer.from(marker));
      expect(i).toBeGreaterThanOrEqual(0);
      for (const o of at) write(b, i + o, 65535);
      expect(() => decoder.decodeFrameInto(inst, inst.frames[0], new Float32Array(64 * 64), 0)).toThrow(`corrupt: ${name}: frame 0: codestream is 65535x65535, the header says 64x64: not decoded`);
    }
  });

  it('native pixel data longer than Rows x Columns x BitsAllocated x frames is unreadable (the listener refuses it too)', async () => {
    const target = path.join(dir, 'rows-half.dcm');
    await writeFile(target, files[0].data);
    await run('dcmodify', ['-nb', '-m', '(0028,0010)=32', target], { env: { ...process.env, TCP_NODELAY: '1' } });
    expect(() => readInstance(new Uint8Array(readFileSync(target)), 'rows-half.dcm')).toThrow(/pixel data holds 8192 bytes; 1 frame\(s\) of 32x64 at 16 bits need 4096/);
  });

  it('a truncated compressed instance is unreadable, not decoded from zero-filled data', async () => {
    const [copy] = await dcmtk('dcmcjpls', ['+el'], 'trunc');
    const cut = copy.data.slice(0, copy.data.byteLength - 200);
    expect(() => readInstance(cut, 'cut.dcm')).toThrow(/truncated/);
    expect(() => readInstance(copy.data)).not.toThrow();
  });
});
