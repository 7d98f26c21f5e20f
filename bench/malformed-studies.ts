// Seeded sets of bad studies for the worker. malformedStudies: the malformed-study set (no pixel data, one
// slice, 2000 slices, a 65535-row claim, a 100000-frame claim, in classic and Enhanced MR) and single damaged
// instances inside a good study (SequenceName's VR flipped to "CH", pixel data cut half-way), each with the outcome
// the worker must give it: not triaged, with a reason. mutatedStudies: a good study with one instance mutated at
// random (bit flips, a VR, a length or a tag overwritten, a cut), where the only rule is "decided, never a crash":
// a flip inside pixel values is undetectable and that study is scored. Built from tools/synth studies (realistic
// headers) and shared/imaging/synthetic series; deterministic for a seed.
import { dcmjs, type DcmjsDataset } from '../shared/imaging/dcmjs';
import { scanPart10 } from '../shared/imaging/part10';
import { axialPositions, makeEnhancedSeries, makeSeries, phantom } from '../shared/imaging/synthetic';
import { Rng } from '../tools/synth/prng';
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

/** A UID of the same length as `uid`, unique for `n`, so it can be swapped into a file byte for byte. */
function sameLengthUid(uid: string, n: number): string {
  const tail = String(n).padStart(6, '0');
  return uid.slice(0, uid.length - tail.length) + tail;
}

/** Every occurrence of one ASCII string replaced by another of the same length (a UID in a Part 10 file). */
function replaceAscii(data: Uint8Array, from: string, to: string): Uint8Array {
  const out = data.slice();
  const a = Buffer.from(from, 'latin1');
  const b = Buffer.from(to, 'latin1');
  const buf = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  for (let at = buf.indexOf(a); at >= 0; at = buf.indexOf(a, at + a.length)) b.copy(buf, at);
  return out;
}

/** Top-level elements before PixelData of an explicit VR little endian file: offset, VR, long-length form. */
function topLevelElements(data: Uint8Array): { at: number; long: boolean }[] {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: { at: number; long: boolean }[] = [];
  const long = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
  let pos = 132;
  while (pos + 8 <= data.byteLength) {
    if (dv.getUint16(pos, true) === 0x7fe0) break;
    const vr = String.fromCharCode(data[pos + 4], data[pos + 5]);
    const isLong = long.has(vr);
    const len = isLong ? dv.getUint32(pos + 8, true) : dv.getUint16(pos + 6, true);
    out.push({ at: pos, long: isLong });
    if (len === 0xffffffff) break; // an undefined-length sequence: enough targets before it
    pos += (isLong ? 12 : 8) + len;
  }
  return out;
}

export const MUTATIONS = ['bit-flips', 'vr', 'length', 'tag', 'truncate'] as const;
export type Mutation = (typeof MUTATIONS)[number];

function mutate(data: Uint8Array, kind: Mutation, rng: Rng): Uint8Array {
  const out = data.slice();
  const dv = new DataView(out.buffer);
  const pixels = scanPart10(data).pixelData?.offset ?? data.byteLength;
  const el = rng.pick(topLevelElements(data).filter((e) => e.at > 300)); // past the file meta group
  switch (kind) {
    case 'bit-flips':
      for (let i = rng.int(1, 8); i > 0; i--) out[rng.int(132, pixels - 1)] ^= 1 << rng.int(0, 7);
      return out;
    case 'vr':
      out[el.at + 4] = rng.int(0x41, 0x5a);
      out[el.at + 5] = rng.int(0x41, 0x5a);
      return out;
    case 'length':
      if (el.long) dv.setUint32(el.at + 8, rng.int(0x10000000, 0xfffffffe), true);
      else dv.setUint16(el.at + 6, rng.int(0x1000, 0xffff), true);
      return out;
    case 'tag':
      out[el.at + rng.int(0, 3)] ^= 1 << rng.int(0, 7);
      return out;
    case 'truncate':
      return out.slice(0, rng.int(132, data.byteLength - 1));
  }
}

/**
 * `count` copies of one generated study, each with one instance (any series) mutated by one of MUTATIONS, in
 * turn; each copy is its own study (StudyInstanceUID swapped in byte for byte, so the damage stays as made).
 */
export function mutatedStudies(seed: number, count: number, size: 'test' | 'bench' = 'test'): (Omit<MalformedStudy, 'expect'> & { mutation: Mutation })[] {
  const base = generateStudy(seed, 3, { normalFraction: 1, fast: size === 'test' });
  const rng = new Rng(seed, 'mutations');
  return Array.from({ length: count }, (_, k) => {
    const uid = sameLengthUid(base.StudyInstanceUID, k + 1);
    const mutation = MUTATIONS[k % MUTATIONS.length];
    const victim = rng.int(0, base.files.length - 1);
    const files = base.files.map((f, i) => {
      const data = replaceAscii(f.data, base.StudyInstanceUID, uid);
      return { SeriesInstanceUID: f.SeriesInstanceUID, SOPInstanceUID: f.SOPInstanceUID, data: i === victim ? mutate(data, mutation, rng) : data };
    });
    return { name: `${mutation} in instance ${victim + 1} of ${base.files.length}`, StudyInstanceUID: uid, files, mutation };
  });
}
