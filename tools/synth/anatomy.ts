// The subject: one person's head as numbers. Samples age, sex, head pose and size, a smooth deformation, the
// cortical folding field, ventricle and sulcal size (age, atrophy, hydrocephalus) and the lesions of each
// finding, all from the study's seeded streams. phantom.ts turns a Subject into tissue parameters.
import type { Rng } from './prng';
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

export type LesionKind = 'infarct' | 'haemorrhage' | 'tumour' | 'wmh';

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
  /** Haemorrhage: T1/T2 of the blood products at this stage (ms). */
  bloodT1: number;
  bloodT2: number;
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
  mass: MassEffect | null;
  findings: FindingLabel[];
}

const SIDES: Side[] = ['left', 'right'];
const sideSign = (side: Side): number => (side === 'left' ? 1 : side === 'right' ? -1 : 0);
const round1 = (v: number): number => Math.round(v * 10) / 10;

/** Which findings a study has: none with probability normalFraction, else 1-3 compatible ones. */
export function drawFindingTypes(rng: Rng, normalFraction: number): FindingType[] {
  if (rng.chance(normalFraction)) return [];
  const all: FindingType[] = ['acute_infarct', 'hydrocephalus', 'haemorrhage', 'mass', 'white_matter_disease', 'atrophy'];
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
  };
}

export function drawSubject(rng: Rng, findings: FindingType[], fieldT: number): Subject {
  const has = (t: FindingType): boolean => findings.includes(t);
  // older patients carry more of the degenerative and vascular findings
  const old = has('atrophy') || has('white_matter_disease') || has('acute_infarct') || has('haemorrhage');
  const age = old ? rng.int(55, 92) : has('hydrocephalus') ? rng.int(20, 85) : rng.int(18, 85);
  const sex: 'F' | 'M' = rng.chance(0.5) ? 'F' : 'M';
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
    mass: null,
    findings: [],
  };
  // Age-appropriate small-vessel change in normal elderly: a thin cap only, below the reporting threshold.
  if (!has('white_matter_disease') && age > 65) s.wmhHalo = rng.uniform(0, 1.2);

  for (const type of findings) {
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
        l.oedemaR = d / 2 + rng.uniform(3, 8);
        s.lesions.push(l);
        if (d > 30 && region !== 'cerebellum') s.mass = { c, reff: d * 0.45 };
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
        s.mass = { c, reff: d / 2 + (l.oedemaR - d / 2) * 0.6 };
        const shift = midlineShift(s.mass);
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
    }
  }
  // Patient-space centres for the focal findings, so tests and viewers can find them in the images.
  for (const f of s.findings) if (f.center_mm) f.center_mm = templateToPatient(s, f.center_mm).map(round1) as Vec3;
  return s;
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
