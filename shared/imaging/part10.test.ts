// scanPart10 on real files written by dcmjs and DCMTK, then damaged byte by byte: what a bit flip, a cut or a lying
// length does must be a DicomParseError (or a request for more of the file), never a parse of garbage.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DicomParseError } from './errors';
import { MAX_SEQUENCE_DEPTH } from './limits';
import { encapsulatedItems, NeedMoreBytes, scanPart10 } from './part10';
import { axialPositions, makeEnhancedSeries, makeSeries, phantom } from './synthetic';

const CENTRE: [number, number, number] = [0, 0, 20];
const slice = (attributes: Record<string, unknown> = {}) =>
  makeSeries({ SeriesInstanceUID: '1.2.3.4', positions: axialPositions(CENTRE, 1, 5), intensity: phantom(CENTRE, [10, 0, 30]), attributes: { SequenceName: '*tse2d1_15', ...attributes } })[0];

/** Offset of the first element with this tag (explicit VR little endian). */
function find(data: Uint8Array, group: number, element: number): number {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 132; i + 4 <= data.byteLength; i++) if (dv.getUint16(i, true) === group && dv.getUint16(i + 2, true) === element) return i;
  throw new Error('tag not found');
}

function failure(fn: () => unknown): DicomParseError {
  try {
    fn();
  } catch (e) {
    if (e instanceof DicomParseError) return e;
    throw e;
  }
  throw new Error('no DicomParseError');
}

describe('scanPart10', () => {
  it('locates the native pixel data of a good file and ends the header before it', () => {
    const f = slice();
    const layout = scanPart10(f);
    expect(layout.TransferSyntaxUID).toBe('1.2.840.10008.1.2.1');
    expect(layout.pixelData).toEqual({ offset: f.byteLength - 64 * 64 * 2, length: 64 * 64 * 2, encapsulated: false });
    expect(scanPart10(f, { stopAtPixelData: true }).headerEnd).toBe(f.byteLength - 64 * 64 * 2 - 12);
  });

  it('a VR flipped to an unknown one ("CH", read by dcmjs as a 1.7 GB length) is refused at once', () => {
    const f = slice();
    const at = find(f, 0x0018, 0x0024);
    f[at + 4] = 0x43; // SH -> CH
    const t0 = performance.now();
    const e = failure(() => scanPart10(f));
    expect(e.reason).toBe('corrupt');
    expect(e.detail).toMatch(/\(0018,0024\).*unknown VR "CH"/);
    expect(performance.now() - t0).toBeLessThan(1000); // no 1.7 GB read attempted; loose enough for a loaded machine
  });

  it('an element longer than the bytes left, and pixel data cut short, are corrupt', () => {
    const f = slice();
    const at = find(f, 0x0008, 0x103e); // SeriesDescription, LO: 2-byte length
    new DataView(f.buffer).setUint16(at + 6, 0xfff0, true);
    expect(failure(() => scanPart10(f)).detail).toMatch(/claims/);
    const good = slice();
    expect(failure(() => scanPart10(good.subarray(0, good.byteLength - 100))).detail).toMatch(/pixel data truncated: 8092 of 8192 bytes/);
  });

  it('a prefix asks for more bytes until PixelData is reached, then judges PixelData by the file size', () => {
    const f = slice();
    expect(() => scanPart10(f.subarray(0, 200), { fileSize: f.byteLength, stopAtPixelData: true })).toThrow(NeedMoreBytes);
    const header = f.byteLength - 64 * 64 * 2;
    expect(scanPart10(f.subarray(0, header), { fileSize: f.byteLength, stopAtPixelData: true }).pixelData?.length).toBe(8192);
    // The same prefix of a file that is shorter than its pixel data claims.
    expect(failure(() => scanPart10(f.subarray(0, header), { fileSize: f.byteLength - 1, stopAtPixelData: true })).detail).toMatch(/truncated/);
  });

  it('files that are not DICOM are told apart from damaged DICOM', () => {
    expect(failure(() => scanPart10(new TextEncoder().encode('hello'))).reason).toBe('not-dicom');
    expect(failure(() => scanPart10(new Uint8Array(4096))).reason).toBe('not-dicom');
  });

  it('walks functional-group sequences of Enhanced MR and finds a broken item length inside them', () => {
    const f = makeEnhancedSeries({ SeriesInstanceUID: '1.2.3.5', positions: axialPositions(CENTRE, 10, 5), intensity: phantom(CENTRE, [10, 0, 30]) });
    expect(scanPart10(f).pixelData?.length).toBe(10 * 64 * 64 * 2);
    const at = find(f, 0x5200, 0x9230); // PerFrameFunctionalGroupsSequence, SQ
    const item = at + 12;
    expect(new DataView(f.buffer).getUint16(item, true)).toBe(0xfffe);
    new DataView(f.buffer).setUint32(item + 4, 0x7ffffff0, true); // the first item claims 2 GB
    expect(failure(() => scanPart10(f)).detail).toMatch(/runs past|claims/);
  });

  it('sequences nested deeper than any real file are refused: MAX_SEQUENCE_DEPTH levels pass, one more does not (as in the listener)', () => {
    const nested = (levels: number) => {
      let inner: Record<string, unknown> = { CodeValue: 'X' };
      for (let i = 0; i < levels; i++) inner = { ReferencedImageSequence: [inner] };
      return slice(inner);
    };
    expect(scanPart10(nested(MAX_SEQUENCE_DEPTH)).pixelData).toBeDefined();
    expect(failure(() => scanPart10(nested(MAX_SEQUENCE_DEPTH + 1))).detail).toMatch(/nested deeper than 16/);
  });

  describe('encapsulated pixel data (DCMTK RLE)', () => {
    let dir: string;
    beforeAll(() => (dir = mkdtempSync(path.join(tmpdir(), 'nt-part10-'))));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('finds the offset table and the fragments, and a cut one is truncated', () => {
      const plain = path.join(dir, 'plain.dcm');
      const rle = path.join(dir, 'rle.dcm');
      writeFileSync(plain, slice());
      execFileSync('dcmcrle', [plain, rle], { env: { ...process.env, TCP_NODELAY: '1' } });
      const data = new Uint8Array(readFileSync(rle));
      const layout = scanPart10(data);
      expect(layout.pixelData).toMatchObject({ encapsulated: true });
      const items = encapsulatedItems(data, layout.pixelData!.offset);
      expect(items.fragments.length).toBe(1);
      expect(items.end).toBeLessThanOrEqual(data.byteLength);
      expect(failure(() => scanPart10(data.subarray(0, data.byteLength - 20))).detail).toMatch(/truncated/);
    });
  });
});
