// The subject: one person's head as numbers. Samples age, sex, head pose and size, a smooth deformation, the
// cortical folding field, ventricle and sulcal size (age, atrophy, hydrocephalus) and the lesions of each
// finding, all from the study's seeded streams. phantom.ts turns a Subject into tissue parameters.
import type { Rng } from './prng';
import { rayToLevel, sdBrainUnion, sdCerebrum } from './shapes';
import { T, tissueTable } from './tissue';
import type { FindingLabel, FindingType, Side } from './types';

export type Vec3 = [number, number, number];

/** Random plane waves: a band-limited random field is sum_i cos(k_i . q + phase_i). */
export interface Waves {
  kx: Float64Array;
  ky: Float64Array;
  kz: Float64Array;
  ph: Float64Array;
}

export function randomWaves(rng: Rng, n: number, wavelengthMin: number, wavelengthMax: number): Waves {
  const w: Waves = { kx: new Float64Array(n), ky: new Float64Array(n), kz: new Float64Array(n), ph: new Float64Array(n) };
  for (let i = 0; i < n; i++) {
    const k = (2 * Math.PI) / rng.uniform(wavelengthMin, wavelengthMax);
    // uniform direction on the sphere
    const z = rng.uniform(-1, 1);
    const a = rng.uniform(0, 2 * Math.PI);
    const s = Math.sqrt(1 - z * z);
    w.kx[i] = k * s * Math.cos(a);
    w.ky[i] = k * s * Math.sin(a);
    w.kz[i] = k * z;
    w.ph[i] = rng.uniform(0, 2 * Math.PI);
  }
  return w;
}

export type LesionKind = 'infarct' | 'haemorrhage' | 'tumour' | 'wmh' | 'plaque' | 'meningioma';

export interface Lesion {
  kind: LesionKind;
  /** Centre in template space (mm, LPS). */
  c: Vec3;
  /** Semi-axes (mm). */
  r: Vec3;
  /** Surface irregularity: relative amplitude of 3 waves on the normalised radius. */
  irregular: number;
  waves: Waves;
  /** Keep the lesion on one side of the midline: +1 left (x > 0), -1 right, 0 either. */
  sideSign: number;
  /** Haemorrhage rim / mass oedema radius (mm, spherical), 0 if none. */
  oedemaR: number;
  /** Mass: necrotic core as a fraction of the radius. */
  necrosis: number;
  /** Haemorrhage: T1/T2 of the blood products at this stage (ms), and the stage (how they dephase). */
  bloodT1: number;
  bloodT2: number;
  blood: 'acute' | 'early_subacute' | 'late_subacute' | null;
  /** MS plaque: unit long axis (a prolate spheroid: r[0] along it, r[1] = r[2] across); null = axis-aligned. */
  axis: Vec3 | null;
  /** MS plaque: where it is (periventricular, juxtacortical, callosal, infratentorial). */
  site: string;
  /** MS plaque: active (restricts diffusion); a T1 "black hole" (marked T1 and T2 prolongation). */
  active: boolean;
  blackHole: boolean;
  /** Meningioma: its own tissue parameters (T1/T2 in ms, ADC in 10^-3 mm^2/s). */
  tissue: { pd: number; t1: number; t2: number; adc: number } | null;
  /** Meningioma: how much of it is calcified, 0 (none) to 1: punctate foci where its surface waves peak. */
  calcified: number;
  /** Meningioma: width of the CSF cleft between it and the brain (mm, 0: none). */
  cleft: number;
}

export interface MassEffect {
  c: Vec3;
  /** Radius of the displaced volume (mass plus oedema), mm. */
  reff: number;
}

export interface Subject {
  age: number;
  sex: 'F' | 'M';
  /** Patient = trans + rot * (scale * template). rot is row-major 3x3. */
  rot: number[];
  scale: Vec3;
  trans: Vec3;
  /** Smooth deformation of template space: waves with per-wave displacement amplitudes. */
  warp: Waves;
  warpAmp: Float64Array; // 3 per wave
  fold: Waves;
  /** Brain shrink inside the skull (1 = none). */
  brainScale: number;
  /** Extra subarachnoid CSF (mm) over the 2.5 mm baseline. */
  csfGap: number;
  /** Half-width of the sulci (mm). */
  sulcalHalfWidth: number;
  cortThick: number;
  sulcDepth: number;
  skullThick: number;
  scalpThick: number;
  /** Ventricle scale: lateral width, lateral height, temporal horns, third, fourth. */
  vx: number;
  vz: number;
  vt: number;
  v3: number;
  v4: number;
  /** Transependymal oedema rim (mm), 0 if none. */
  transependymal: number;
  /** White-matter hyperintensities: blobs and a periventricular halo thickness (mm). */
  wmh: Lesion[];
  wmhHalo: number;
  lesions: Lesion[];
  /** Space-occupying lesions that displace the brain (mass, large haematoma, meningioma). */
  masses: MassEffect[];
  findings: FindingLabel[];
}

const SIDES: Side[] = ['left', 'right'];
const sideSign = (side: Side): number => (side === 'left' ? 1 : side === 'right' ? -1 : 0);
const round1 = (v: number): number => Math.round(v * 10) / 10;

/** Which findings a study has: none with probability normalFraction, else 1-3 compatible ones (each type about
 *  equally often). */
export function drawFindingTypes(rng: Rng, normalFraction: number): FindingType[] {
  if (rng.chance(normalFraction)) return [];
  const all: FindingType[] = ['acute_infarct', 'hydrocephalus', 'haemorrhage', 'mass', 'white_matter_disease', 'atrophy', 'multiple_sclerosis', 'meningioma'];
  const count = rng.weighted<number>([[1, 0.68], [2, 0.26], [3, 0.06]]);
  const chosen: FindingType[] = [rng.pick(all)];
  while (chosen.length < count) {
    const t = rng.pick(all);
    if (chosen.includes(t)) continue;
    // hydrocephalus (ventricles out of proportion to sulci) and atrophy (both enlarged) exclude each other
    if ((t === 'hydrocephalus' && chosen.includes('atrophy')) || (t === 'atrophy' && chosen.includes('hydrocephalus'))) continue;
    chosen.push(t);
  }
  return chosen;
}

/** Every lesion has every field (one object shape, so the renderer's hot loop stays monomorphic). */
function lesion(rng: Rng, kind: LesionKind, c: Vec3, r: Vec3, side: number, irregular: number): Lesion {
  return {
    kind,
    c,
    r,
    irregular,
    waves: randomWaves(rng, 3, 14, 30),
    sideSign: side,
    oedemaR: 0,
    necrosis: 0,
    bloodT1: 0,
    bloodT2: 0,
    blood: null,
    axis: null,
    site: '',
    active: false,
    blackHole: false,
    tissue: null,
    calcified: 0,
    cleft: 0,
  };
}

/** Findings whose lesions are placed after the others: MS plaques around the final ventricles, then a meningioma
 *  on a free stretch of dura (its tissue overrides anything drawn before it). */
const PLACED_LAST: FindingType[] = ['multiple_sclerosis', 'meningioma'];

export function drawSubject(rng: Rng, findings: FindingType[], fieldT: number): Subject {
  const has = (t: FindingType): boolean => findings.includes(t);
  // older patients carry more of the degenerative and vascular findings; MS is a disease of young adults (it may
  // still come with vascular findings in middle age); meningiomas grow in older adults, more often women
  const old = has('atrophy') || has('white_matter_disease') || has('acute_infarct') || has('haemorrhage');
  const ms = has('multiple_sclerosis');
  const age = ms ? (old ? rng.int(48, 70) : rng.int(20, 55)) : old ? rng.int(55, 92) : has('meningioma') ? rng.int(40, 85) : has('hydrocephalus') ? rng.int(20, 85) : rng.int(18, 85);
  const sex: 'F' | 'M' = rng.chance(ms || has('meningioma') ? 0.7 : 0.5) ? 'F' : 'M';
  const ageing = Math.min(1, Math.max(0, (age - 35) / 55)); // 0 at 35, 1 at 90

  // head pose: pitch dominates (chin up/down), small roll and yaw; size varies by sex and person
  const pitch = (rng.normal() * 6 * Math.PI) / 180;
  const roll = (rng.normal() * 2.5 * Math.PI) / 180;
  const yaw = (rng.normal() * 3 * Math.PI) / 180;
  const rot = rotation(pitch, roll, yaw);
  const base = sex === 'M' ? 1.02 : 0.97;
  const scale: Vec3 = [base * rng.uniform(0.94, 1.06), base * rng.uniform(0.94, 1.06), base * rng.uniform(0.94, 1.05)];
  const trans: Vec3 = [rng.normal() * 3, rng.normal() * 4, rng.normal() * 4];
  const warp = randomWaves(rng, 4, 130, 220);
  const warpAmp = new Float64Array(12);
  for (let i = 0; i < 12; i++) warpAmp[i] = rng.normal() * 1.2;
  const fold = randomWaves(rng, 28, 15, 23);

  const s: Subject = {
    age,
    sex,
    rot,
    scale,
    trans,
    warp,
    warpAmp,
    fold,
    brainScale: 1 - 0.035 * ageing * rng.uniform(0.5, 1),
    csfGap: 1.2 * ageing * rng.uniform(0.5, 1.2),
    sulcalHalfWidth: 0.45 + 0.9 * ageing * rng.uniform(0.4, 1.1),
    cortThick: rng.uniform(2.9, 3.5) - 0.3 * ageing,
    sulcDepth: rng.uniform(14, 19),
    skullThick: rng.uniform(5.5, 8),
    scalpThick: rng.uniform(4, 7.5),
    vx: 1 + 0.25 * ageing * rng.uniform(0.3, 1.2) + rng.normal() * 0.05,
    vz: 1 + 0.15 * ageing * rng.uniform(0.3, 1.2),
    vt: 1,
    v3: 1 + 0.4 * ageing * rng.uniform(0.3, 1.2),
    v4: 1,
    transependymal: 0,
    wmh: [],
    wmhHalo: 0,
    lesions: [],
    masses: [],
    findings: [],
  };
  // Age-appropriate small-vessel change in normal elderly: a thin cap only, below the reporting threshold.
  if (!has('white_matter_disease') && age > 65) s.wmhHalo = rng.uniform(0, 1.2);

  const order = [...findings].sort((a, b) => PLACED_LAST.indexOf(a) - PLACED_LAST.indexOf(b));
  for (const type of order) {
    switch (type) {
      case 'atrophy': {
        s.brainScale = rng.uniform(0.9, 0.94);
        s.csfGap = rng.uniform(3.5, 6);
        s.sulcalHalfWidth = rng.uniform(2.3, 3.2);
        s.vx = rng.uniform(1.45, 1.75);
        s.vz = rng.uniform(1.2, 1.45);
        s.v3 = rng.uniform(1.8, 2.6);
        s.vt = rng.uniform(1.2, 1.6);
        s.cortThick = rng.uniform(2.3, 2.7);
        const span = frontalHornSpan(s);
        s.findings.push({
          type,
          side: 'bilateral',
          size_mm: round1(2 * s.sulcalHalfWidth * s.scale[0]),
          location: rng.pick(['generalised', 'generalised', 'frontotemporal predominant', 'parietal predominant']),
          evans_index: round1((100 * span) / innerSkullWidth(s)) / 100,
        });
        break;
      }
      case 'hydrocephalus': {
        s.vx = rng.uniform(1.75, 2.25);
        s.vz = rng.uniform(1.35, 1.7);
        s.vt = rng.uniform(2.0, 2.8);
        s.v3 = rng.uniform(2.8, 4.0);
        const communicating = rng.chance(0.5);
        s.v4 = communicating ? rng.uniform(1.6, 2.2) : 1;
        // sulci are effaced rather than widened: the ventricles are out of proportion to them
        s.sulcalHalfWidth = rng.uniform(0.25, 0.5);
        s.csfGap = Math.min(s.csfGap, 0.5);
        s.brainScale = 1;
        const pv = rng.chance(0.55);
        if (pv) s.transependymal = rng.uniform(3, 6);
        s.findings.push({
          type,
          side: 'bilateral',
          size_mm: round1(frontalHornSpan(s)),
          location: communicating ? 'lateral, third and fourth ventricles' : 'lateral and third ventricles',
          evans_index: Math.round((100 * frontalHornSpan(s)) / innerSkullWidth(s)) / 100,
          periventricular_oedema: pv,
        });
        break;
      }
      case 'acute_infarct': {
        const side = rng.pick(SIDES);
        const sx = sideSign(side);
        const territory = rng.weighted<'MCA' | 'ACA' | 'PCA' | 'deep'>([['MCA', 0.5], ['ACA', 0.15], ['PCA', 0.2], ['deep', 0.15]]);
        let c: Vec3;
        let r: Vec3;
        let region: string;
        if (territory === 'MCA') {
          const d = rng.uniform(25, 60);
          region = rng.pick(['frontal', 'parietal', 'temporal', 'frontoparietal']);
          const y = region === 'frontal' ? -22 : region === 'parietal' ? 22 : region === 'temporal' ? 2 : 0;
          const z = region === 'temporal' ? -6 : region === 'parietal' ? 32 : 22;
          c = [sx * rng.uniform(40, 50), y + rng.normal() * 4, z + rng.normal() * 4];
          r = [d * 0.42, d / 2, d * 0.45];
        } else if (territory === 'ACA') {
          const d = rng.uniform(22, 45);
          region = 'medial frontal';
          c = [sx * 9, rng.uniform(-40, -10), rng.uniform(40, 52)];
          r = [9, d / 2, d * 0.4];
        } else if (territory === 'PCA') {
          const d = rng.uniform(22, 45);
          region = 'occipital';
          c = [sx * rng.uniform(14, 24), rng.uniform(60, 68), rng.uniform(0, 12)];
          r = [d * 0.4, d / 2, d * 0.4];
        } else {
          const d = rng.uniform(14, 22);
          region = rng.pick(['basal ganglia', 'corona radiata', 'thalamus']);
          c = region === 'thalamus' ? [sx * 11, 14, 6] : region === 'basal ganglia' ? [sx * 22, 0, 5] : [sx * 22, 0, 28];
          r = [d / 2, d / 2, d / 2];
        }
        const l = lesion(rng, 'infarct', c, r, sx, 0.12);
        s.lesions.push(l);
        s.findings.push({
          type,
          side,
          size_mm: round1(2 * Math.max(...r) * s.scale[1]),
          location: territory === 'deep' ? `${side} ${region}` : `${side} ${territory} territory`,
          territory,
          region,
          center_mm: c,
        });
        break;
      }
      case 'haemorrhage': {
        const side = rng.pick(SIDES);
        const sx = sideSign(side);
        const region = rng.weighted<string>([['basal ganglia', 0.3], ['thalamus', 0.15], ['frontal', 0.15], ['parietal', 0.15], ['temporal', 0.1], ['occipital', 0.07], ['cerebellum', 0.08]]);
        const maxD = region === 'thalamus' || region === 'cerebellum' ? 30 : 50;
        const d = rng.uniform(16, maxD);
        const centres: Record<string, Vec3> = {
          'basal ganglia': [24, 0, 4],
          thalamus: [12, 14, 7],
          frontal: [30, -42, 26],
          parietal: [32, 28, 38],
          temporal: [44, 0, -12],
          occipital: [22, 62, 10],
          cerebellum: [22, 52, -36],
        };
        const c0 = centres[region]!;
        const c: Vec3 = [sx * c0[0] + rng.normal() * 2, c0[1] + rng.normal() * 3, c0[2] + rng.normal() * 3];
        const r: Vec3 = [d / 2 * rng.uniform(0.8, 1), d / 2, d / 2 * rng.uniform(0.75, 1)];
        const stage = rng.weighted<'acute' | 'early_subacute' | 'late_subacute'>([['acute', 0.5], ['early_subacute', 0.3], ['late_subacute', 0.2]]);
        const l = lesion(rng, 'haemorrhage', c, r, sx, 0.08);
        const hi = fieldT >= 2;
        l.bloodT1 = stage === 'acute' ? (hi ? 1300 : 1000) : hi ? 380 : 300;
        l.bloodT2 = stage === 'late_subacute' ? 260 : hi ? 32 : 42;
        l.blood = stage;
        l.oedemaR = d / 2 + rng.uniform(3, 8);
        s.lesions.push(l);
        if (d > 30 && region !== 'cerebellum') s.masses.push({ c, reff: d * 0.45 });
        s.findings.push({
          type,
          side,
          size_mm: round1(d * s.scale[1]),
          location: `${side} ${region === 'basal ganglia' ? 'basal ganglia' : region === 'thalamus' ? 'thalamus' : region === 'cerebellum' ? 'cerebellar hemisphere' : `${region} lobe`}`,
          region,
          stage,
          center_mm: c,
        });
        break;
      }
      case 'mass': {
        const side = rng.pick(SIDES);
        const sx = sideSign(side);
        const region = rng.pick(['frontal', 'parietal', 'temporal', 'occipital']);
        const centres: Record<string, Vec3> = { frontal: [30, -40, 24], parietal: [32, 26, 36], temporal: [42, -2, -10], occipital: [24, 60, 10] };
        const c0 = centres[region]!;
        const d = rng.uniform(18, 45);
        const c: Vec3 = [sx * c0[0] + rng.normal() * 3, c0[1] + rng.normal() * 4, c0[2] + rng.normal() * 4];
        const r: Vec3 = [d / 2 * rng.uniform(0.85, 1), d / 2, d / 2 * rng.uniform(0.8, 1)];
        const l = lesion(rng, 'tumour', c, r, sx, 0.15);
        l.necrosis = rng.chance(0.6) ? rng.uniform(0.35, 0.6) : 0;
        l.oedemaR = d / 2 + rng.uniform(10, 25);
        s.lesions.push(l);
        const m: MassEffect = { c, reff: d / 2 + (l.oedemaR - d / 2) * 0.6 };
        s.masses.push(m);
        const shift = midlineShift(m);
        s.findings.push({
          type,
          side,
          size_mm: round1(d * s.scale[1]),
          location: `${side} ${region} lobe`,
          region,
          center_mm: c,
          midline_shift_mm: round1(shift),
          oedema_mm: round1(2 * l.oedemaR),
        });
        break;
      }
      case 'white_matter_disease': {
        const grade = rng.weighted<number>([[1, 0.2], [2, 0.45], [3, 0.35]]);
        const n = grade === 1 ? rng.int(8, 12) : grade === 2 ? rng.int(14, 22) : rng.int(22, 32);
        const rMin = grade === 1 ? 2.5 : grade === 2 ? 3 : 4;
        const rMax = grade === 1 ? 4 : grade === 2 ? 6 : 9;
        let largest = 0;
        for (let i = 0; i < n; i++) {
          const sx = rng.chance(0.5) ? 1 : -1;
          // periventricular and deep (centrum semiovale) white matter
          const deep = rng.chance(0.45);
          const c: Vec3 = deep
            ? [sx * rng.uniform(16, 32), rng.uniform(-35, 35), rng.uniform(26, 42)]
            : [sx * rng.uniform(15, 26), rng.pick([-1, 1]) * rng.uniform(10, 38), rng.uniform(10, 24)];
          const rr = rng.uniform(rMin, rMax);
          largest = Math.max(largest, 2 * rr);
          s.wmh.push(lesion(rng, 'wmh', c, [rr, rr * rng.uniform(1, 1.6), rr], 0, 0.2));
        }
        s.wmhHalo = grade === 1 ? rng.uniform(1.5, 2.5) : grade === 2 ? rng.uniform(2.5, 4) : rng.uniform(4.5, 7);
        s.findings.push({
          type,
          side: 'bilateral',
          size_mm: round1(largest),
          location: grade === 3 ? 'confluent periventricular and deep white matter' : 'periventricular and deep white matter',
          grade,
        });
        break;
      }
      case 'multiple_sclerosis':
        s.findings.push(drawMultipleSclerosis(rng, s));
        break;
      case 'meningioma':
        s.findings.push(drawMeningioma(rng, s, fieldT));
        break;
    }
  }
  // Patient-space centres for the focal findings, so tests and viewers can find them in the images.
  for (const f of s.findings) if (f.center_mm) f.center_mm = templateToPatient(s, f.center_mm).map(round1) as Vec3;
  return s;
}

const MS_SITES = ['periventricular', 'juxtacortical', 'callosal', 'infratentorial'] as const;
type MsSite = (typeof MS_SITES)[number];

/** "periventricular, juxtacortical and infratentorial white matter" from the plaques' sites. */
function msLocation(sites: Set<MsSite>): string {
  const names = MS_SITES.filter((x) => sites.has(x));
  const list = names.length === 1 ? names[0]! : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]!}`;
  return `${list} white matter`;
}

/**
 * Multiple sclerosis: 5-30 ovoid plaques of 3-15 mm. Periventricular ones have their long axis perpendicular to
 * the ventricular wall (Dawson's fingers); others are juxtacortical (just under the cortical ribbon), callosal
 * (on the callosal-septal interface) or infratentorial (pons, middle cerebellar peduncle, cerebellar white
 * matter). About a third of patients have 1-3 active plaques that restrict diffusion; some chronic plaques are
 * T1 black holes. The label's size and centre are the largest plaque's.
 */
function drawMultipleSclerosis(rng: Rng, s: Subject): FindingLabel {
  const n = rng.int(5, 30);
  const active = rng.chance(0.35);
  const sites = new Set<MsSite>();
  const plaques: Lesion[] = [];
  const bodyX = 1.2 + 6.5 * s.vx; // lateral ventricle body: centre |x|, see phantom.ts
  const shrink = (1 - s.brainScale) * 40;
  for (let i = 0; i < n; i++) {
    let site: MsSite = i === 0 ? 'periventricular' : rng.weighted<MsSite>([['periventricular', 0.45], ['juxtacortical', 0.2], ['callosal', 0.15], ['infratentorial', 0.2]]);
    const sx = rng.chance(0.5) ? 1 : -1;
    let d = 3 + 12 * rng.next() ** 1.6;
    let c: Vec3 | null = null;
    let r: Vec3;
    let axis: Vec3 | undefined;
    if (site === 'juxtacortical') {
      d = Math.min(d, 10);
      const el = rng.uniform(5, 60) * (Math.PI / 180);
      const az = rng.uniform(-Math.PI, Math.PI);
      const dir: Vec3 = [Math.cos(el) * Math.cos(az), Math.cos(el) * Math.sin(az), Math.sin(el)];
      const surface = rayToLevel(sdCerebrum, [0, 4, 14], dir, -shrink);
      if (surface) {
        const depth = s.cortThick + d * 0.3 + rng.uniform(2.5, 4.5);
        c = [surface[0] - dir[0] * depth, surface[1] - dir[1] * depth, surface[2] - dir[2] * depth];
      } else site = 'periventricular';
      r = [d / 2, (d / 2) * rng.uniform(0.75, 1), (d / 2) * rng.uniform(0.7, 1)];
    } else if (site === 'infratentorial') {
      d = Math.min(d, 10);
      const where = rng.weighted<string>([['pons', 0.4], ['peduncle', 0.3], ['cerebellum', 0.3]]);
      c = where === 'pons'
        ? [rng.uniform(-6, 6), rng.uniform(14, 22), rng.uniform(-34, -20)]
        : where === 'peduncle' ? [sx * rng.uniform(6, 9), rng.uniform(19, 24), rng.uniform(-32, -24)] : [sx * rng.uniform(12, 26), rng.uniform(44, 56), rng.uniform(-40, -30)];
      r = [d / 2, (d / 2) * rng.uniform(0.75, 1), (d / 2) * rng.uniform(0.75, 1)];
    } else if (site === 'callosal') {
      d = Math.min(d, 10);
      const x = rng.uniform(-7, 7);
      const u = (Math.abs(x) - bodyX) / (6.5 * s.vx);
      const roof = 15 + 6.5 * s.vz * Math.sqrt(Math.max(0, 1 - u * u));
      c = [x, rng.uniform(-22, 12), roof + d * 0.35 + 1.5];
      axis = [0, 0, 1];
      r = [d / 2, d / 2 / rng.uniform(1.2, 1.6), 0];
      r[2] = r[1];
    } else r = [0, 0, 0];
    if (site === 'periventricular') {
      // on the lateral ventricle's body or atrium, long axis along the wall's outward normal in the coronal plane
      const y = rng.chance(0.75) ? rng.uniform(-24, 14) : rng.uniform(16, 26);
      const [vcx, vcz, vrx, vrz] = y < 15 ? [bodyX, 15, 6.5 * s.vx, 6.5 * s.vz] : [10 + 3 * s.vx, 9, 5.5 * s.vx, 7 * s.vz];
      const th = rng.uniform(15, 90) * (Math.PI / 180);
      axis = [sx * Math.cos(th), 0, Math.sin(th)];
      const a = d / 2;
      const out = a * 0.8 + 1;
      c = [sx * (vcx + vrx * Math.cos(th)) + axis[0] * out, y, vcz + vrz * Math.sin(th) + axis[2] * out];
      r = [a, a / rng.uniform(1.5, 2.2), 0];
      r[2] = r[1];
    }
    const l = lesion(rng, 'plaque', c!, r, 0, 0.1);
    if (axis) l.axis = axis;
    l.site = site;
    l.blackHole = d > 6 && rng.chance(0.3);
    sites.add(site);
    plaques.push(l);
  }
  if (active) for (const l of rng.shuffle(plaques).slice(0, rng.int(1, 3))) l.active = true;
  s.lesions.push(...plaques);
  const largest = plaques.reduce((a, b) => (2 * b.r[0] > 2 * a.r[0] ? b : a));
  return {
    type: 'multiple_sclerosis',
    side: 'bilateral',
    size_mm: round1(2 * largest.r[0] * s.scale[1]),
    location: msLocation(sites),
    center_mm: [...largest.c],
    count: n,
    active,
  };
}

type MeningiomaSite = 'convexity' | 'parasagittal' | 'falx' | 'sphenoid wing' | 'olfactory groove' | 'posterior fossa';

const norm3 = (v: Vec3): Vec3 => {
  const l = Math.hypot(v[0], v[1], v[2]);
  return [v[0] / l, v[1] / l, v[2] / l];
};

/**
 * Meningioma: an extra-axial, dural-based, well-circumscribed sphere of 10-60 mm whose centre sits 0.45 radii
 * inside the inner table, so the skull truncates it into a broad dural base (parasagittal and falcine ones are
 * also flattened against the falx). It displaces the brain, often with a CSF cleft between the two, sometimes
 * with vasogenic oedema in the adjacent white matter and punctate calcification. Tissue close to grey matter (T1 iso,
 * T2 iso to mildly hyperintense, ADC normal to mildly low). The label's centre is the middle of its visible part.
 */
function drawMeningioma(rng: Rng, s: Subject, fieldT: number): FindingLabel {
  const site = rng.weighted<MeningiomaSite>([['convexity', 0.35], ['parasagittal', 0.15], ['falx', 0.08], ['sphenoid wing', 0.15], ['olfactory groove', 0.08], ['posterior fossa', 0.19]]);
  const midline = site === 'olfactory groove';
  const side: Side = midline ? 'midline' : rng.pick(SIDES);
  const sx = sideSign(side);
  const maxD = site === 'convexity' || site === 'parasagittal' || site === 'falx' ? 60 : 45;
  const d = 10 + (maxD - 10) * rng.next() ** 1.3;
  const R = d / 2;
  const lobe = site === 'convexity' ? rng.pick(['frontal', 'parietal', 'temporal', 'occipital']) : '';
  const gap = 1.6 + s.csfGap; // the inner table, see phantom.ts
  const others = [...s.lesions.filter((l) => l.kind !== 'plaque').map((l) => ({ c: l.c, r: Math.max(...l.r, l.oedemaR) })), ...s.masses.map((m) => ({ c: m.c, r: m.reff }))];
  let c: Vec3 = [0, 0, 0];
  let dir: Vec3 = [0, 0, 1];
  let inset = 0;
  // a few tries for a stretch of dura clear of the other lesions
  for (let attempt = 0; attempt < 6; attempt++) {
    const j = (): number => rng.normal() * 0.1;
    let origin: Vec3;
    inset = 0.45 * R;
    switch (site) {
      case 'convexity':
        [origin, dir] =
          lobe === 'frontal' ? [[sx * 20, -25, 20], [sx * 0.6, -0.55, 0.55]]
          : lobe === 'parietal' ? [[sx * 20, 20, 30], [sx * 0.7, 0.15, 0.7]]
          : lobe === 'temporal' ? [[sx * 30, -2, -12], [sx, 0.05, -0.15]]
          : [[sx * 15, 50, 12], [sx * 0.45, 0.88, 0.15]];
        break;
      case 'parasagittal':
      case 'falx':
        // against the falx: centre half a radius off the midline, the side clamp flattens its medial face
        origin = [sx * R * 0.55, rng.uniform(-35, 30), 25];
        dir = [0, 0, 1];
        if (site === 'falx') inset = R + rng.uniform(4, 12);
        break;
      case 'sphenoid wing':
        [origin, dir] = [[sx * 22, -5, -5], [sx * 0.5, -0.8, -0.3]];
        break;
      case 'olfactory groove':
        [origin, dir] = [[0, -30, 5], [0, -0.45, -0.9]];
        break;
      default:
        [origin, dir] = [[sx * 18, 52, -36], [sx * 0.55, 0.55, -0.6]];
    }
    dir = norm3([dir[0] + (site === 'parasagittal' || site === 'falx' || midline ? 0 : j()), dir[1] + j(), dir[2] + j()]);
    const surface = rayToLevel(sdBrainUnion, origin, dir, gap) ?? origin;
    c = [surface[0] - dir[0] * inset, surface[1] - dir[1] * inset, surface[2] - dir[2] * inset];
    if (others.every((o) => Math.hypot(c[0] - o.c[0], c[1] - o.c[1], c[2] - o.c[2]) > R + o.r + 3)) break;
  }
  const l = lesion(rng, 'meningioma', c, [R, R, R], sx, 0.04);
  const tab = tissueTable(fieldT);
  l.tissue = { pd: rng.uniform(0.84, 0.9), t1: tab.t1[T.GM]! * rng.uniform(0.95, 1.08), t2: tab.t2[T.GM]! * rng.uniform(1.02, 1.3), adc: rng.uniform(0.72, 0.9) };
  const calcified = rng.chance(0.25);
  l.calcified = calcified ? rng.uniform(0.2, 0.4) : 0;
  l.cleft = rng.chance(0.65) ? rng.uniform(1, 2.5) : 0;
  const oedema = rng.chance(d > 35 ? 0.5 : 0.25);
  l.oedemaR = oedema ? R + rng.uniform(6, 16) : 0;
  s.lesions.push(l);
  const m: MassEffect = { c, reff: R * 0.9 };
  s.masses.push(m);
  const shift = midlineShift(m);
  // middle of the visible part: the sphere minus the cap the skull cuts off (falcine ones are whole)
  const mid = site === 'falx' ? 0 : (R - inset) / 2;
  const label: FindingLabel = {
    type: 'meningioma',
    side,
    size_mm: round1(d * s.scale[1]),
    location: site === 'convexity' ? `${side} ${lobe} convexity` : midline ? site : site === 'parasagittal' ? `${side} parasagittal region` : site === 'falx' ? `${side} side of the falx` : `${side} ${site}`,
    region: site,
    center_mm: [c[0] - dir[0] * mid, c[1] - dir[1] * mid, c[2] - dir[2] * mid],
    oedema,
    calcified,
  };
  if (shift >= 1) label.midline_shift_mm = round1(shift);
  return label;
}

export function midlineShift(m: MassEffect): number {
  return massDisplacement(Math.abs(m.c[0]), m.reff);
}

/** Radial outward displacement (mm) at distance r from a mass of effective radius reff. */
export function massDisplacement(r: number, reff: number): number {
  const rr = Math.max(r, reff);
  const u = (reff * reff * reff) / (3 * rr * rr);
  const inner = r < reff ? r / reff : 1;
  return u * inner * Math.exp(-((r / 90) ** 2));
}

/** Outer span of the frontal horns (mm), as measured for Evans' index. See phantom.ts for the ventricle model. */
export function frontalHornSpan(s: Subject): number {
  return 2 * (1.2 + 13 * s.vx) * s.scale[0] * s.brainScale;
}

export function innerSkullWidth(s: Subject): number {
  return 2 * (66 + 1.6 + s.csfGap) * s.scale[0];
}

function rotation(pitch: number, roll: number, yaw: number): number[] {
  // R = Rz(yaw) * Ry(roll) * Rx(pitch)
  const [cx, sx] = [Math.cos(pitch), Math.sin(pitch)];
  const [cy, sy] = [Math.cos(roll), Math.sin(roll)];
  const [cz, sz] = [Math.cos(yaw), Math.sin(yaw)];
  const rx = [1, 0, 0, 0, cx, -sx, 0, sx, cx];
  const ry = [cy, 0, sy, 0, 1, 0, -sy, 0, cy];
  const rz = [cz, -sz, 0, sz, cz, 0, 0, 0, 1];
  return mul3(rz, mul3(ry, rx));
}

function mul3(a: number[], b: number[]): number[] {
  const o = new Array<number>(9).fill(0);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) o[i * 3 + j]! += a[i * 3 + k]! * b[k * 3 + j]!;
  return o;
}

/** Template -> patient, inverting the smooth warp by fixed-point iteration (it is small and smooth). */
export function templateToPatient(s: Subject, q: Vec3): Vec3 {
  // patientToTemplate(p) = A^-1 (p - t) + w(A^-1 (p - t)); solve for u = A^-1 (p - t): u + w(u) = q
  let u: Vec3 = [q[0], q[1], q[2]];
  for (let it = 0; it < 8; it++) {
    const w = warpAt(s, u);
    u = [q[0] - w[0], q[1] - w[1], q[2] - w[2]];
  }
  const a: Vec3 = [u[0] * s.scale[0], u[1] * s.scale[1], u[2] * s.scale[2]];
  const R = s.rot;
  return [
    s.trans[0] + R[0]! * a[0] + R[1]! * a[1] + R[2]! * a[2],
    s.trans[1] + R[3]! * a[0] + R[4]! * a[1] + R[5]! * a[2],
    s.trans[2] + R[6]! * a[0] + R[7]! * a[1] + R[8]! * a[2],
  ];
}

export function warpAt(s: Subject, u: Vec3): Vec3 {
  const w = s.warp;
  const o: Vec3 = [0, 0, 0];
  for (let i = 0; i < w.kx.length; i++) {
    const c = Math.cos(w.kx[i]! * u[0] + w.ky[i]! * u[1] + w.kz[i]! * u[2] + w.ph[i]!);
    o[0] += s.warpAmp[i * 3]! * c;
    o[1] += s.warpAmp[i * 3 + 1]! * c;
    o[2] += s.warpAmp[i * 3 + 2]! * c;
  }
  return o;
}
