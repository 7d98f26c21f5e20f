// A seeded set of malformed studies for the worker: the malformed-study set (no pixel data, one slice,
// 2000 slices, a 65535-row claim, a 100000-frame claim, in classic and Enhanced MR) and single damaged instances
// inside a good study (SequenceName's VR flipped to "CH", pixel data cut half-way). Each carries the outcome the
// worker must give it: not triaged, with a reason. Built from tools/synth studies (realistic headers) and
// shared/imaging/synthetic series; deterministic for a seed (pixel values and damage; UIDs are derived).
import { dcmjs, type DcmjsDataset } from '../shared/imaging/dcmjs';
import { scanPart10 } from '../shared/imaging/part10';
import { axialPositions, makeEnhancedSeries, makeSeries, phantom } from '../shared/imaging/synthetic';
import { generateStudy } from '../tools/synth/study';
import type { DicomFile } from '../tools/synth/types';

export interface MalformedStudy {
  name: string;
  StudyInstanceUID: string;
  files: { SeriesInstanceUID: string; SOPInstanceUID: string; data: Uint8Array }[];
  /** What the worker must make of it. */
  expect: { status: 'failed' | 'unsupported'; reason: string };
}

const ROOT = '1.2.826.0.1.3680043.8.498.9';

/** Re-encodes a valid instance after `edit` changes its dataset (denaturalised: tag hex -> {vr, Value}). */
function rewrite(data: Uint8Array, edit: (dict: DcmjsDataset) => void): Uint8Array {
  const copy = data.slice();
  const parsed = dcmjs.data.DicomMessage.readFile(copy.buffer as ArrayBuffer);
  edit(parsed.dict);
  return new Uint8Array(parsed.write());
}

/** Overwrites the value of a 2-byte (US) element in place, explicit VR little endian (tag, "US", length 2). */
function patchUS(data: Uint8Array, group: number, element: number, value: number): Uint8Array {
  const out = data.slice();
  const dv = new DataView(out.buffer);
  for (let i = 132; i + 10 <= out.byteLength; i++) {
    if (dv.getUint16(i, true) === group && dv.getUint16(i + 2, true) === element && out[i + 4] === 0x55 && out[i + 5] === 0x53) {
      dv.setUint16(i + 8, value, true);
      return out;
    }
  }
  throw new Error(`(${group.toString(16)},${element.toString(16)}) US not found`);
}

/** SequenceName (0018,0024) with its VR bytes turned into "CH": read as a 4-byte length, it claims hundreds of MB. */
function flipSequenceNameVr(data: Uint8Array): Uint8Array {
  const withName = rewrite(data, (d) => {
    d['00180024'] = { vr: 'SH', Value: ['*tse2d1_15'] };
  });
  const out = withName.slice();
  for (let i = 132; i + 6 <= out.byteLength; i++) {
    if (out[i] === 0x18 && out[i + 1] === 0x00 && out[i + 2] === 0x24 && out[i + 3] === 0x00 && out[i + 4] === 0x53 && out[i + 5] === 0x48) {
      out[i + 4] = 0x43; // 'C'
      return out;
    }
  }
  throw new Error('SequenceName not found');
}

/** Cut half-way through the pixel data. */
function truncatePixels(data: Uint8Array): Uint8Array {
  const px = scanPart10(data).pixelData!;
  return data.slice(0, px.offset + Math.floor((px.length ?? 0) / 2));
}

/** The dataset without its PixelData element (it is the last one in these files). */
function withoutPixels(data: Uint8Array): Uint8Array {
  const px = scanPart10(data).pixelData!;
  return data.slice(0, px.offset - 12);
}

function fromSynth(files: DicomFile[], uid: string, map: (f: DicomFile, i: number) => Uint8Array | undefined): MalformedStudy['files'] {
  const out: MalformedStudy['files'] = [];
  files.forEach((f, i) => {
    const data = map(f, i);
    if (data) out.push({ SeriesInstanceUID: f.SeriesInstanceUID, SOPInstanceUID: f.SOPInstanceUID, data: rewrite(data, (d) => setStudy(d, uid)) });
  });
  return out;
}

function setStudy(d: DcmjsDataset, uid: string): void {
  d['0020000D'] = { vr: 'UI', Value: [uid] };
}

/** One synthetic T2 series (classic MR), `slices` axial slices `spacing` mm apart, `matrix` square. */
function t2Series(uid: string, slices: number, spacing: number, matrix: number, attributes: Record<string, unknown> = {}): MalformedStudy['files'] {
  const centre: [number, number, number] = [0, 10, 25];
  const series = `${uid}.1`;
  const ps = (224 / matrix) as number;
  return makeSeries({
    StudyInstanceUID: uid, SeriesInstanceUID: series, SeriesDescription: 't2_tse_tra', rows: matrix, columns: matrix, pixelSpacing: [ps, ps],
    positions: axialPositions(centre, slices, spacing, matrix, matrix, [ps, ps]), intensity: phantom(centre, [15, 0, 40]), attributes,
  }).map((data, k) => ({ SeriesInstanceUID: series, SOPInstanceUID: `${series}.${k + 1}`, data }));
}

/**
 * The set for one seed. `size` "test" keeps files small (64x64 synth studies, 64x64 2000-slice series);
 * "bench" uses the generator's full-size studies and 128x128 slices.
 */
export function malformedStudies(seed: number, size: 'test' | 'bench' = 'test'): MalformedStudy[] {
  const fast = size === 'test';
  const base = generateStudy(seed, 1, { normalFraction: 1, fast });
  const uid = (n: number) => `${ROOT}.${seed}.${n}`;
  const t2 = base.labels.series.find((x) => x.sequence === 'T2')!.SeriesInstanceUID;
  const t2Files = base.files.filter((f) => f.SeriesInstanceUID === t2);
  const victim = t2Files[Math.floor(t2Files.length / 2)].SOPInstanceUID;
  const matrix = fast ? 64 : 128;

  const enhanced = (n: number) => {
    const u = uid(n);
    const centre: [number, number, number] = [0, 10, 25];
    const data = makeEnhancedSeries({
      StudyInstanceUID: u, SeriesInstanceUID: `${u}.1`, SeriesDescription: 't2_tse_tra', positions: axialPositions(centre, 24, 5), intensity: phantom(centre, [15, 0, 40]),
      attributes: { NumberOfFrames: 100000 },
    });
    return [{ SeriesInstanceUID: `${u}.1`, SOPInstanceUID: `${u}.1.1`, data }];
  };

  return [
    { name: 'no pixel data', StudyInstanceUID: uid(1), files: fromSynth(base.files, uid(1), (f) => withoutPixels(f.data)), expect: { status: 'unsupported', reason: 'not-image' } },
    {
      name: 'one slice per series',
      StudyInstanceUID: uid(2),
      files: fromSynth(base.files, uid(2), (f, i) => (base.files.findIndex((g) => g.SeriesInstanceUID === f.SeriesInstanceUID) === i ? f.data : undefined)),
      expect: { status: 'failed', reason: 'too-few-slices' },
    },
    { name: '2000 slices', StudyInstanceUID: uid(3), files: t2Series(uid(3), 2000, 0.5, matrix), expect: { status: 'failed', reason: 'too-large' } },
    { name: '65535 rows claimed', StudyInstanceUID: uid(4), files: t2Series(uid(4), 24, 5, matrix).map((f) => ({ ...f, data: patchUS(f.data, 0x0028, 0x0010, 65535) })), expect: { status: 'failed', reason: 'corrupt' } },
    { name: '100000 frames claimed', StudyInstanceUID: uid(5), files: t2Series(uid(5), 24, 5, matrix, { NumberOfFrames: 100000 }), expect: { status: 'failed', reason: 'corrupt' } },
    { name: '100000 frames claimed (Enhanced MR)', StudyInstanceUID: uid(6), files: enhanced(6), expect: { status: 'failed', reason: 'corrupt' } },
    {
      name: 'SequenceName VR flipped to CH in one T2 slice',
      StudyInstanceUID: uid(7),
      files: fromSynth(base.files, uid(7), (f) => f.data).map((f) => (f.SOPInstanceUID === victim ? { ...f, data: flipSequenceNameVr(f.data) } : f)),
      expect: { status: 'failed', reason: 'corrupt' },
    },
    {
      name: 'one T2 slice cut half-way through its pixel data',
      StudyInstanceUID: uid(8),
      files: fromSynth(base.files, uid(8), (f) => f.data).map((f) => (f.SOPInstanceUID === victim ? { ...f, data: truncatePixels(f.data) } : f)),
      expect: { status: 'failed', reason: 'corrupt' },
    },
  ];
}

/** A good study of the same seed, to score beside the bad ones. */
export function goodStudy(seed: number, size: 'test' | 'bench' = 'test'): { StudyInstanceUID: string; files: MalformedStudy['files'] } {
  const s = generateStudy(seed, 2, { normalFraction: 1, fast: size === 'test' });
  return { StudyInstanceUID: s.StudyInstanceUID, files: s.files.map((f) => ({ SeriesInstanceUID: f.SeriesInstanceUID, SOPInstanceUID: f.SOPInstanceUID, data: f.data })) };
}
