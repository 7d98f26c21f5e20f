// Synthetic cohort: determinism by seed, DICOM validity (dcmdump + MR Image Storage attributes), slice geometry,
// findings visible where the labels put them, reports agreeing with labels, held-out phrasings disjoint from
// training ones. Fast mode (64x64 or 128x128, 12 slices) keeps the file well inside a minute on 2 cores.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { templateToPatient, type Lesion, type Vec3 } from './anatomy';
import { createDicomWriter } from './dicom';
import { foldTable, renderTissue, type VoxelGrid } from './phantom';
import { bodyOf, findingMentions, impressionOf, withoutHeadings } from './report';
import { RANGES, type Spans } from './scanner';
import { createStudyContext, generateStudy, planStudy, reportFor } from './study';
import type { FindingType, GeneratedStudy, StudyLabels } from './types';

const ctx = createStudyContext();
const reader = createDicomWriter();

type Img = { ds: Record<string, unknown>; px: Uint16Array };

function series(study: GeneratedStudy, sequence: string): Img[] {
  const s = study.labels.series.find((x) => x.sequence === sequence);
  if (!s) return [];
  return study.files
    .filter((f) => f.SeriesInstanceUID === s.SeriesInstanceUID)
    .map((f) => {
      const ds = reader.read(f.data);
      const buf = (ds.PixelData as ArrayBuffer[])[0]!;
      return { ds, px: new Uint16Array(buf) };
    })
    .sort((a, b) => Number(a.ds.InstanceNumber) - Number(b.ds.InstanceNumber));
}

const vec = (v: unknown): number[] => (v as Array<string | number>).map(Number);
const dot = (a: number[], b: number[]): number => a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;
const cross = (a: number[], b: number[]): number[] => [a[1]! * b[2]! - a[2]! * b[1]!, a[2]! * b[0]! - a[0]! * b[2]!, a[0]! * b[1]! - a[1]! * b[0]!];

/** A quantile (default the median) of the stored values in a (2 half + 1)^2 patch of the slice nearest to
 *  patient point p (NaN if outside the stack, or if that slice is further than maxDistance mm from p): robust to
 *  a sulcus crossing the patch. */
function sampleAt(images: Img[], p: Vec3, quantile = 0.5, half = 1, maxDistance = Infinity): number {
  let best: Img | null = null;
  let bestD = Infinity;
  for (const im of images) {
    const iop = vec(im.ds.ImageOrientationPatient);
    const n = cross(iop.slice(0, 3), iop.slice(3));
    const d = Math.abs(dot(n, p) - dot(n, vec(im.ds.ImagePositionPatient)));
    if (d < bestD) {
      bestD = d;
      best = im;
    }
  }
  if (!best || bestD > Math.min(maxDistance, Number(best.ds.SpacingBetweenSlices ?? 10))) return NaN;
  const iop = vec(best.ds.ImageOrientationPatient);
  const ipp = vec(best.ds.ImagePositionPatient);
  const ps = vec(best.ds.PixelSpacing);
  const rel = [p[0] - ipp[0]!, p[1] - ipp[1]!, p[2] - ipp[2]!];
  const c = Math.round(dot(rel, iop.slice(0, 3)) / ps[1]!);
  const r = Math.round(dot(rel, iop.slice(3)) / ps[0]!);
  const cols = Number(best.ds.Columns);
  const vals: number[] = [];
  for (let dr = -half; dr <= half; dr++)
    for (let dc = -half; dc <= half; dc++) {
      const rr = r + dr, cc = c + dc;
      if (rr < 0 || cc < 0 || rr >= Number(best.ds.Rows) || cc >= cols) continue;
      vals.push(best.px[rr * cols + cc]!);
    }
  vals.sort((a, b) => a - b);
  return vals.length ? vals[Math.floor((vals.length - 1) * quantile)]! : NaN;
}

/** First study indices (seed 1, planned cheaply) that have the finding type. */
function withFinding(type: FindingType, count = 1, only = false): number[] {
  const out: number[] = [];
  for (let i = 0; out.length < count && i < 2000; i++) {
    const f = planStudy(1, i).subject.findings;
    if (f.some((x) => x.type === type) && (!only || f.length === 1)) out.push(i);
  }
  return out;
}

const round1 = (v: number): number => Math.round(v * 10) / 10;
const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)]!;

/** b=1000 images of a DWI series (the b-value is standard or in a vendor's private element). */
function b1000(images: Img[]): Img[] {
  return images.filter((im) => Number(im.ds.DiffusionBValue ?? im.ds['0019100C'] ?? (im.ds['00431039'] as number[] | undefined)?.[0] ?? im.ds['20011003']) % 100000 > 0);
}

/** Area (mm^2) of the pixels darker than `fraction` of the reference median, within `radius` mm of patient point p
 *  on the slice nearest to it; the reference is the median within the same radius of `ref` on its nearest slice. */
function darkArea(images: Img[], p: Vec3, ref: Vec3, radius: number, fraction = 0.5): number {
  const disc = (q: Vec3): { values: number[]; pixel: number } => {
    let best = images[0]!;
    let bestD = Infinity;
    for (const im of images) {
      const iop = vec(im.ds.ImageOrientationPatient);
      const n = cross(iop.slice(0, 3), iop.slice(3));
      const d = Math.abs(dot(n, q) - dot(n, vec(im.ds.ImagePositionPatient)));
      if (d < bestD) [bestD, best] = [d, im];
    }
    const iop = vec(best.ds.ImageOrientationPatient);
    const ipp = vec(best.ds.ImagePositionPatient);
    const ps = vec(best.ds.PixelSpacing);
    const rows = Number(best.ds.Rows), cols = Number(best.ds.Columns);
    const values: number[] = [];
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) {
        const at = [0, 1, 2].map((a) => ipp[a]! + c * ps[1]! * iop[a]! + r * ps[0]! * iop[3 + a]!);
        if (Math.hypot(at[0]! - q[0], at[1]! - q[1], at[2]! - q[2]) <= radius) values.push(best.px[r * cols + c]!);
      }
    return { values, pixel: ps[0]! * ps[1]! };
  };
  const lesion = disc(p);
  const threshold = fraction * median(disc(ref).values);
  return lesion.values.filter((v) => v < threshold).length * lesion.pixel;
}

/** A cube of n^3 voxels of `step` mm centred on patient point p, for rendering tissue maps there. */
function cubeGrid(p: Vec3, n: number, step: number): VoxelGrid {
  const h = ((n - 1) / 2) * step;
  const origins = new Float64Array(n * 3);
  for (let k = 0; k < n; k++) origins.set([p[0] - h, p[1] - h, p[2] - h + k * step], k * 3);
  return { cols: n, rows: n, slices: n, origins, colStep: [step, 0, 0], rowStep: [0, step, 0] };
}

function hashStudy(s: GeneratedStudy): string {
  const h = createHash('sha256');
  for (const f of s.files) h.update(f.path).update(f.data);
  h.update(JSON.stringify(s.report)).update(JSON.stringify(s.labels));
  return h.digest('hex');
}

describe('synthetic cohort', () => {
  test('same seed and index give identical bytes; another seed gives another study', () => {
    const a = generateStudy(42, 3, { fast: true });
    const b = generateStudy(42, 3, { fast: true }, ctx);
    const c = generateStudy(43, 3, { fast: true }, ctx);
    expect(hashStudy(a)).toBe(hashStudy(b));
    expect(hashStudy(a)).not.toBe(hashStudy(c));
    expect(a.StudyInstanceUID).toMatch(/^2\.25\.\d+$/);
    expect(a.StudyInstanceUID.length).toBeLessThanOrEqual(64);
    expect(a.AccessionNumber.length).toBeLessThanOrEqual(16);
  });

  test('every file parses with dcmdump and carries the MR Image Storage attributes', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nt-synth-'));
    try {
      // a study with a localiser and a study with a T1, to cover every series kind
      const idx = [0, 1, 2, 3, 4, 5, 6, 7, 8].filter((i) => {
        const p = planStudy(7, i, { fast: true }).protocol;
        return p.localizer || p.t1;
      }).slice(0, 2);
      const studies = idx.map((i) => generateStudy(7, i, { fast: true }, ctx));
      const files: string[] = [];
      for (const s of studies)
        for (const f of s.files) {
          const p = path.join(dir, f.path);
          mkdirSync(path.dirname(p), { recursive: true });
          writeFileSync(p, f.data);
          files.push(p);
        }
      const required = [
        '0008,0005', '0008,0008', '0008,0016', '0008,0018', '0008,0020', '0008,0030', '0008,0050', '0008,0060', '0008,0070', '0008,0090',
        '0010,0010', '0010,0020', '0010,0030', '0010,0040',
        '0018,0020', '0018,0021', '0018,0022', '0018,0023', '0018,0050', '0018,0080', '0018,0081', '0018,0087', '0018,0091',
        '0020,000d', '0020,000e', '0020,0010', '0020,0011', '0020,0013', '0020,0032', '0020,0037', '0020,0052', '0020,1040',
        '0028,0002', '0028,0004', '0028,0010', '0028,0011', '0028,0030', '0028,0100', '0028,0101', '0028,0102', '0028,0103', '7fe0,0010',
      ];
      for (let i = 0; i < files.length; i += 40) {
        const batch = files.slice(i, i + 40);
        const out = execFileSync('dcmdump', ['-q', '+L', ...batch], { encoding: 'utf8', maxBuffer: 64 << 20 });
        const dumps = out.split(/^# Dicom-File-Format/m).filter((d) => d.trim());
        expect(dumps).toHaveLength(batch.length);
        for (const d of dumps) {
          expect(d).toContain('LittleEndianExplicit');
          expect(d).toContain('=MRImageStorage');
          for (const tag of required) expect(d).toContain(`(${tag})`);
          if (/\(0018,0020\) CS \[[^\]]*IR/.test(d)) expect(d).toContain('(0018,0082)');
        }
      }
      // diffusion series carry the b-value: standard and/or the vendor's private element
      for (const s of studies) {
        const dwi = series(s, 'DWI');
        for (const im of dwi) {
          const b = im.ds.DiffusionBValue ?? im.ds['0019100C'] ?? (im.ds['00431039'] as number[] | undefined)?.[0] ?? im.ds['20011003'];
          expect(b).toBeDefined();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('positions step by SpacingBetweenSlices along the normal of the orientation', () => {
    for (const i of [0, 1]) {
      const s = generateStudy(9, i, { fast: true }, ctx);
      for (const label of s.labels.series) {
        if (label.sequence === 'LOCALIZER') continue;
        const imgs = series(s, label.sequence);
        const groups = new Map<string, Img[]>();
        for (const im of imgs) {
          const key = String(im.ds.DiffusionBValue ?? im.ds['0019100C'] ?? (im.ds['00431039'] as number[] | undefined)?.[0] ?? im.ds['20011003'] ?? '');
          groups.set(key, [...(groups.get(key) ?? []), im]);
        }
        for (const g of groups.values()) {
          expect(g.length).toBeGreaterThan(2);
          const iop = vec(g[0]!.ds.ImageOrientationPatient);
          expect(Math.abs(dot(iop.slice(0, 3), iop.slice(3)))).toBeLessThan(1e-4);
          const n = cross(iop.slice(0, 3), iop.slice(3));
          const spacing = Number(g[0]!.ds.SpacingBetweenSlices);
          const pos = g.map((im) => vec(im.ds.ImagePositionPatient));
          const steps = pos.slice(1).map((p, k) => [p[0]! - pos[k]![0]!, p[1]! - pos[k]![1]!, p[2]! - pos[k]![2]!]);
          const sign = Math.sign(dot(steps[0]!, n));
          for (const st of steps) {
            expect(dot(st, n) * sign).toBeCloseTo(spacing, 2);
            // no in-plane drift: the step is along the normal
            expect(Math.hypot(...st)).toBeCloseTo(spacing, 2);
          }
          for (const im of g) expect(vec(im.ds.ImageOrientationPatient)).toEqual(iop);
        }
      }
    }
  });

  test('an acute infarct is bright on DWI and dark on ADC against the contralateral side', () => {
    for (const i of withFinding('acute_infarct', 1, true)) {
      const plan = planStudy(1, i);
      const s = generateStudy(1, i, { fast: true, matrix: 96 }, ctx);
      const lesion = plan.subject.lesions.find((l) => l.kind === 'infarct')!;
      const at = templateToPatient(plan.subject, lesion.c);
      const mirror = templateToPatient(plan.subject, [-lesion.c[0], lesion.c[1], lesion.c[2]]);
      expect(s.labels.findings[0]!.center_mm).toEqual(at.map((v) => Math.round(v * 10) / 10));
      const dwi = series(s, 'DWI');
      const b1000 = dwi.filter((im) => Number(im.ds.DiffusionBValue ?? im.ds['0019100C'] ?? (im.ds['00431039'] as number[] | undefined)?.[0] ?? im.ds['20011003']) % 100000 > 0);
      // parenchyma within the lesion vs the same place on the other side (quartiles skip sulcal CSF)
      expect(sampleAt(b1000, at, 0.75, 2)).toBeGreaterThan(1.3 * sampleAt(b1000, mirror, 0.75, 2));
      const adc = series(s, 'ADC');
      if (adc.length) expect(sampleAt(adc, at, 0.25, 2)).toBeLessThan(0.75 * sampleAt(adc, mirror, 0.25, 2));
    }
  });

  test('a haemorrhage changes T2 signal and a mass raises it, where the label says', () => {
    for (const type of ['haemorrhage', 'mass'] as const) {
      for (const i of withFinding(type, 1, true)) {
        const plan = planStudy(1, i);
        const s = generateStudy(1, i, { fast: true, matrix: 96 }, ctx);
        const f = s.labels.findings[0]!;
        const lesion = plan.subject.lesions[0]!;
        const mirror = templateToPatient(plan.subject, [-lesion.c[0], lesion.c[1], lesion.c[2]]);
        const t2 = series(s, 'T2').length ? series(s, 'T2') : series(s, 'FLAIR');
        const ratio = sampleAt(t2, f.center_mm!) / sampleAt(t2, mirror);
        if (type === 'mass') expect(ratio).toBeGreaterThan(1.25);
        else if (f.stage === 'late_subacute') expect(ratio).toBeGreaterThan(1.25);
        else expect(ratio).toBeLessThan(0.75);
      }
    }
  });

  test('white-matter lesions are bright on FLAIR', () => {
    // the first one with Fazekas 2 or 3: enough lesions for the 12 fast-mode slices to cross several
    const i = withFinding('white_matter_disease', 10, true).find((k) => planStudy(1, k).subject.findings[0]!.grade! >= 2);
    const plan = planStudy(1, i!);
    const s = generateStudy(1, i!, { fast: true, matrix: 128 }, ctx);
    const flair = series(s, 'FLAIR');
    const big = plan.subject.wmh.filter((l) => l.r[0] >= 3.5);
    const ratios = big.map((l) => {
      const at = templateToPatient(plan.subject, l.c);
      // same depth in the opposite hemisphere, shifted forwards, away from the lesion
      const ref = templateToPatient(plan.subject, [-l.c[0], l.c[1], l.c[2]]);
      return sampleAt(flair, at) / sampleAt(flair, ref);
    }).filter((r) => Number.isFinite(r));
    ratios.sort((a, b) => a - b);
    expect(ratios.length).toBeGreaterThan(2);
    expect(ratios[Math.floor(ratios.length / 2)]!).toBeGreaterThan(1.1);
  });

  test('MS plaques are FLAIR-bright against the mirror point; the label counts them and gives the largest', () => {
    const [i] = withFinding('multiple_sclerosis', 1, true);
    const plan = planStudy(1, i!);
    const s = generateStudy(1, i!, { matrix: 128 }, ctx);
    const f = s.labels.findings[0]!;
    const plaques = plan.subject.lesions.filter((l) => l.kind === 'plaque');
    expect(f.count).toBe(plaques.length);
    expect(plaques.length).toBeGreaterThanOrEqual(5);
    const largest = plaques.reduce((a, b) => (b.r[0] > a.r[0] ? b : a));
    expect(f.center_mm).toEqual(templateToPatient(plan.subject, largest.c).map(round1));
    expect(f.size_mm).toBeGreaterThanOrEqual(3);
    expect(f.size_mm).toBeLessThanOrEqual(16);
    const flair = series(s, 'FLAIR');
    // lateral plaques crossed by a slice, whose mirror point is clear of other plaques
    const clear = (l: Lesion): boolean => plaques.every((o) => Math.hypot(-l.c[0] - o.c[0], l.c[1] - o.c[1], l.c[2] - o.c[2]) > o.r[0] + 3);
    const ratios = plaques
      .filter((l) => Math.abs(l.c[0]) > 8 && clear(l))
      .map((l) => sampleAt(flair, templateToPatient(plan.subject, l.c), 0.5, 1, l.r[1] * 0.6) / sampleAt(flair, templateToPatient(plan.subject, [-l.c[0], l.c[1], l.c[2]])))
      .filter((r) => Number.isFinite(r));
    expect(ratios.length).toBeGreaterThan(1);
    expect(median(ratios)).toBeGreaterThan(1.2);
  });

  test('active MS plaques restrict diffusion: low ADC in the tissue, DWI brighter and ADC lower than the mirror point', () => {
    const ratios: { dwi: number; adc: number }[] = [];
    for (let i = 0; ratios.length < 2 && i < 2000; i++) {
      const plan = planStudy(1, i);
      const f = plan.subject.findings.find((x) => x.type === 'multiple_sclerosis');
      if (!f?.active || plan.subject.findings.length > 1) continue;
      const plaques = plan.subject.lesions.filter((l) => l.kind === 'plaque');
      expect(plaques.some((l) => l.active)).toBe(true);
      // periventricular ones: juxtacortical plaques may straddle a sulcus, infratentorial ones the midline
      const active = plaques.filter((l) => l.active && l.site === 'periventricular' && Math.abs(l.c[0]) > 8 && l.r[1] >= 2.4);
      if (active.length === 0) continue;
      const s = generateStudy(1, i, { matrix: 160 }, ctx);
      const dwi = b1000(series(s, 'DWI'));
      const adc = series(s, 'ADC');
      for (const l of active) {
        const at = templateToPatient(plan.subject, l.c);
        const maps = renderTissue(plan.subject, plan.protocol.scanner.fieldT, cubeGrid(at, 1, 1), foldTable(plan.subject));
        expect(maps.adc[0]!).toBeLessThan(0.6);
        const mirror = templateToPatient(plan.subject, [-l.c[0], l.c[1], l.c[2]]);
        const near = l.r[1] * 0.6;
        const dwiRatio = sampleAt(dwi, at, 0.5, 0, near) / sampleAt(dwi, mirror, 0.5, 0);
        const adcRatio = sampleAt(adc, at, 0.5, 0, near) / sampleAt(adc, mirror, 0.5, 0);
        if (Number.isFinite(dwiRatio) && Number.isFinite(adcRatio)) ratios.push({ dwi: dwiRatio, adc: adcRatio });
      }
    }
    expect(ratios.length).toBeGreaterThan(0);
    expect(median(ratios.map((r) => r.dwi))).toBeGreaterThan(1.2);
    expect(median(ratios.map((r) => r.adc))).toBeLessThan(0.85);
  });

  test('a meningioma is extra-axial where its label says: its own tissue at the centre, skull within reach, FLAIR-bright', () => {
    let checked = 0;
    for (const i of withFinding('meningioma', 6, true)) {
      const plan = planStudy(1, i);
      const f = plan.subject.findings[0]!;
      if (f.side === 'midline' || f.size_mm < 18 || checked >= 2) continue;
      const l = plan.subject.lesions.find((x) => x.kind === 'meningioma')!;
      const c = f.center_mm!;
      // tissue maps around the labelled centre (patient coordinates), 2 mm apart
      const n = 2 * Math.ceil((f.size_mm / 2 + 4) / 2) + 1;
      const maps = renderTissue(plan.subject, plan.protocol.scanner.fieldT, cubeGrid(c, n, 2), foldTable(plan.subject, 3));
      const mid = ((n - 1) / 2) * (n * n + n + 1);
      // the centre is the meningioma itself: its T1 (grey-matter-like) and proton density, not brain or CSF
      expect(maps.t1[mid]!).toBeCloseTo(l.tissue!.t1, 0);
      if (!f.calcified) expect(maps.pd[mid]!).toBeCloseTo(l.tissue!.pd, 2);
      // dural-based: skull (bone: low proton density, very short T2) within the lesion's radius of the centre
      let nearestBone = Infinity;
      for (let k = 0; k < n * n * n; k++) {
        if (maps.pd[k]! > 0.1 || maps.t2[k]! > 20) continue;
        const z = Math.floor(k / (n * n)), y = Math.floor(k / n) % n, x = k % n, h = (n - 1) / 2;
        nearestBone = Math.min(nearestBone, 2 * Math.hypot(x - h, y - h, z - h));
      }
      expect(nearestBone).toBeLessThan(f.size_mm / 2 + 2);
      // and visible: FLAIR brighter than the same place on the other side (mirrored about the head's centre)
      const s = generateStudy(1, i, { matrix: 128 }, ctx);
      const mirror: Vec3 = [2 * plan.subject.trans[0] - c[0], c[1], c[2]];
      const flair = series(s, 'FLAIR').length ? series(s, 'FLAIR') : series(s, 'T2');
      expect(sampleAt(flair, c, 0.5, 2)).toBeGreaterThan(1.15 * sampleAt(flair, mirror, 0.5, 2));
      checked++;
    }
    expect(checked).toBe(2);
  });

  test('on SWI acute and early subacute blood is markedly dark and blooms: a larger dark area than on T2', () => {
    let checked = 0;
    for (let i = 0; checked < 2 && i < 2000; i++) {
      const plan = planStudy(1, i, { matrix: 128 });
      const f = plan.subject.findings;
      if (f.length !== 1 || f[0]!.type !== 'haemorrhage' || f[0]!.stage === 'late_subacute' || !plan.protocol.swi) continue;
      const s = generateStudy(1, i, { matrix: 128 }, ctx);
      const l = plan.subject.lesions[0]!;
      const at = templateToPatient(plan.subject, l.c);
      const mirror = templateToPatient(plan.subject, [-l.c[0], l.c[1], l.c[2]]);
      const swi = series(s, 'SWI');
      const t2 = series(s, 'T2').length ? series(s, 'T2') : series(s, 'FLAIR');
      const swiRatio = sampleAt(swi, at) / sampleAt(swi, mirror);
      expect(swiRatio).toBeLessThan(0.3);
      expect(swiRatio).toBeLessThan(sampleAt(t2, at) / sampleAt(t2, mirror));
      const radius = Math.max(...l.r) * 1.1 + 8;
      expect(darkArea(swi, at, mirror, radius)).toBeGreaterThan(1.1 * darkArea(t2, at, mirror, radius));
      checked++;
    }
    expect(checked).toBe(2);
  });

  test('hydrocephalus ventricles are larger than any normal study, with an Evans index above 0.3', () => {
    // CSF volume (bright on T2) inside a central box around the lateral ventricles, in mm^3
    const centralCsf = (seed: number, i: number): number => {
      const plan = planStudy(seed, i);
      const s = generateStudy(seed, i, { fast: true, matrix: 96 }, ctx);
      const t2 = series(s, 'T2').length ? series(s, 'T2') : series(s, 'DWI').slice(0, 12);
      const all = t2.flatMap((im) => Array.from(im.px));
      const hi = [...all].sort((a, b) => a - b)[Math.floor(all.length * 0.995)]!;
      let vol = 0;
      for (const im of t2) {
        const ps = vec(im.ds.PixelSpacing);
        const voxel = ps[0]! * ps[1]! * Number(im.ds.SpacingBetweenSlices);
        const iop = vec(im.ds.ImageOrientationPatient);
        const ipp = vec(im.ds.ImagePositionPatient);
        const cols = Number(im.ds.Columns);
        for (let r = 0; r < Number(im.ds.Rows); r++)
          for (let c = 0; c < cols; c++) {
            if (im.px[r * cols + c]! < 0.45 * hi) continue;
            const p = [0, 1, 2].map((a) => ipp[a]! + c * ps[1]! * iop[a]! + r * ps[0]! * iop[3 + a]!);
            // back to template space approximately (pose only) to test the central box
            const q = [p[0]! - plan.subject.trans[0], p[1]! - plan.subject.trans[1], p[2]! - plan.subject.trans[2]];
            if (Math.abs(q[0]!) < 24 && q[1]! > -36 && q[1]! < 34 && q[2]! > -2 && q[2]! < 30) vol += voxel;
          }
      }
      return vol;
    };
    const normals: number[] = [];
    for (let i = 0; normals.length < 3; i++) if (planStudy(1, i).subject.findings.length === 0) normals.push(centralCsf(1, i));
    const [h] = withFinding('hydrocephalus', 1, true);
    const hydro = centralCsf(1, h!);
    expect(hydro).toBeGreaterThan(1.5 * Math.max(...normals));
    const hydroLabel = planStudy(1, h!).subject.findings[0]!;
    expect(hydroLabel.evans_index!).toBeGreaterThan(0.3);
  });

  test('reports agree with labels, in both phrasing sets, and held-out phrasings are not training phrasings', () => {
    const sentences: Record<string, Set<string>> = { train: new Set(), heldout: new Set() };
    for (const set of ['train', 'heldout'] as const) {
      for (let i = 0; i < 250; i++) {
        const plan = planStudy(5, i, { phrasingSet: set });
        const labels: StudyLabels = {
          AccessionNumber: 'A', StudyInstanceUID: '1', normal: plan.subject.findings.length === 0, findings: plan.subject.findings,
          age: plan.subject.age, sex: plan.subject.sex, manufacturer: '', model: '', fieldStrength: 1.5, series: [],
        };
        const text = reportFor(5, i, plan, labels);
        expect(bodyOf(text)).not.toBe('');
        expect(impressionOf(text)).not.toBe('');
        const want = [...new Set(labels.findings.map((f) => f.type))].sort();
        expect([...findingMentions(impressionOf(text))].sort()).toEqual(want);
        expect([...findingMentions(bodyOf(text))].sort()).toEqual(want);
        for (const f of labels.findings) if (f.side === 'left' || f.side === 'right') expect(bodyOf(text).toLowerCase()).toContain(f.side);
        const body = withoutHeadings(bodyOf(text));
        for (const sentence of body.split(/(?<=\.)\s+|\n/)) {
          const skeleton = sentence.replace(/^(\d+\.|-)\s*/, '').replace(/[\d.]+/g, '#').trim();
          if (skeleton.length > 12) sentences[set]!.add(skeleton);
        }
      }
    }
    const shared = [...sentences.heldout!].filter((s) => sentences.train!.has(s));
    expect(shared).toEqual([]);
    // enough distinct sentences that a text model cannot memorise a handful
    expect(sentences.train!.size).toBeGreaterThan(200);
    expect(sentences.heldout!.size).toBeGreaterThan(100);
  });

  test('held-out scanners and settings lie outside training: unseen vendors and models, disjoint ranges', () => {
    const plans = (scannerSet: 'train' | 'heldout') => Array.from({ length: 300 }, (_, i) => planStudy(13, i, { scannerSet }).protocol);
    const train = plans('train');
    const held = plans('heldout');
    const vendors = (ps: typeof train) => new Set(ps.map((p) => p.scanner.vendor));
    const unseen = [...vendors(held)].filter((v) => !vendors(train).has(v));
    expect(unseen.sort()).toEqual(['CANON', 'HITACHI', 'UIH']);
    const trainModels = new Set(train.map((p) => p.scanner.model));
    expect(held.filter((p) => trainModels.has(p.scanner.model))).toEqual([]);
    // every axis the table varies: no held-out value inside a training range
    const overlap = (a: Spans, b: Spans): boolean => a.some(([a0, a1]) => b.some(([b0, b1]) => a0 <= b1 && b0 <= a1));
    const T = RANGES.train;
    const H = RANGES.heldout;
    const axes: Record<string, [Spans, Spans]> = {
      thickness: [T.thickness, H.thickness], matrixScale: [T.matrixScale, H.matrixScale], fov: [T.fov, H.fov], dwiThickness: [T.dwiThickness, H.dwiThickness],
      tiltDeg: [T.tiltDeg, H.tiltDeg], t2Tr: [T.t2.tr, H.t2.tr], t2Te: [T.t2.te, H.t2.te], flairTr: [T.flair.tr, H.flair.tr], flairTe: [T.flair.te, H.flair.te],
      dwiTr: [T.dwi.tr, H.dwi.tr], dwiTe15: [T.dwi.te15, H.dwi.te15], dwiTe3: [T.dwi.te3, H.dwi.te3], t1Tr: [T.t1se.tr, H.t1se.tr], t1Te: [T.t1se.te, H.t1se.te],
      mprageTr: [T.mprage.tr, H.mprage.tr], mprageTi: [T.mprage.ti, H.mprage.ti], swiTr15: [T.swi3d.tr15, H.swi3d.tr15], swiTr3: [T.swi3d.tr3, H.swi3d.tr3],
      swiTe15: [T.swi3d.te15, H.swi3d.te15], swiTe3: [T.swi3d.te3, H.swi3d.te3], swiFlip: [T.swi3d.flip, H.swi3d.flip], swiThickness: [T.swi3d.thickness, H.swi3d.thickness],
      greTr: [T.gre2d.tr, H.gre2d.tr], greTe15: [T.gre2d.te15, H.gre2d.te15], greTe3: [T.gre2d.te3, H.gre2d.te3], greFlip: [T.gre2d.flip, H.gre2d.flip],
      snr: [T.snrScale, H.snrScale], biasAmp: [T.bias.amp, H.bias.amp], biasWavelength: [T.bias.wavelength, H.bias.wavelength],
      biasGradient: [T.bias.gradient, H.bias.gradient], dielectric: [T.bias.dielectric, H.bias.dielectric],
    };
    expect(Object.entries(axes).filter(([, [t, h]]) => overlap(t, h)).map(([k]) => k)).toEqual([]);
    expect(T.matrix.filter((m) => H.matrix.includes(m))).toEqual([]);
    // and the drawn protocols honour it, FLAIR inversion times (set by TR and field) included
    const range = (ps: typeof train, f: (p: (typeof train)[number]) => number[]) => {
      const v = ps.flatMap(f);
      return [Math.min(...v), Math.max(...v)];
    };
    const byField = (hi: boolean) => (p: (typeof train)[number]) => (p.scanner.fieldT >= 2) === hi;
    const checks: Array<(p: (typeof train)[number]) => number[]> = [
      (p) => [p.axial.thickness],
      (p) => p.series.filter((s) => s.sequence === 'T2').map((s) => s.te),
      (p) => p.series.filter((s) => s.sequence === 'FLAIR').map((s) => s.te),
      (p) => p.series.filter((s) => s.sequence === 'DWI').map((s) => s.tr),
      (p) => [p.snrScale],
      (p) => [p.coil.amp],
    ];
    for (const hi of [false, true]) checks.push((p) => (byField(hi)(p) ? p.series.filter((s) => s.sequence === 'FLAIR').map((s) => s.ti!) : []));
    for (const f of checks) {
      const [t0, t1] = range(train, f);
      expect(held.flatMap(f).filter((v) => v >= t0 && v <= t1)).toEqual([]);
    }
  });

  test('normal fraction is respected, every finding type occurs, SWI in about 40%', () => {
    const n = 400;
    let normal = 0;
    let swi = 0;
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const { subject, protocol } = planStudy(11, i);
      if (subject.findings.length === 0) normal++;
      if (protocol.series.some((s) => s.sequence === 'SWI')) swi++;
      for (const x of subject.findings) seen.add(x.type);
    }
    expect(normal / n).toBeGreaterThan(0.42);
    expect(normal / n).toBeLessThan(0.58);
    expect(seen.size).toBe(8);
    // an SWI or T2* gradient-echo series in about 40% of studies
    expect(swi / n).toBeGreaterThan(0.32);
    expect(swi / n).toBeLessThan(0.48);
  });

  test('--swi-share sets that share: 1 gives every study SWI (a cohort for an SWI encoder), 0 none; the rest is unchanged', () => {
    const hasSwi = (options: { swiShare?: number }, i: number) => planStudy(11, i, options).protocol.series.some((s) => s.sequence === 'SWI');
    for (let i = 0; i < 40; i++) {
      expect(hasSwi({ swiShare: 1 }, i)).toBe(true);
      expect(hasSwi({ swiShare: 0 }, i)).toBe(false);
      expect(planStudy(11, i, { swiShare: 1 }).subject).toEqual(planStudy(11, i).subject);
    }
  });
});
