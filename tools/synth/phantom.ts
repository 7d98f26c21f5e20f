// The analytic head phantom: evaluates a Subject at every voxel of an acquisition grid and returns tissue
// parameter maps (PD, T1, T2, ADC, fat fraction, R2', EPI susceptibility). Structures are signed-distance shapes
// with a one-voxel partial-volume ramp: scalp, skull with diploe, subarachnoid CSF, folded cortex (a random-wave
// field's zero set makes the sulci), white matter, deep grey nuclei, ventricles, cerebellum with folia, brainstem,
// orbits; then the lesions; for susceptibility-weighted stacks also veins, the sagittal sinus and the dephasing
// near the air of the skull base. Everything is a pure function of (subject, grid): no state, no randomness here.
import { massDisplacement, type Lesion, type Subject } from './anatomy';
import { sdCerebellum, sdCerebrum, sdEllipsoid, sdStem, smin } from './shapes';
import { susceptibilityR2p, T, tissueTable } from './tissue';

/** Voxel centres: slice s, row r, column c is at origin[s] + c * colStep + r * rowStep (patient mm). */
export interface VoxelGrid {
  cols: number;
  rows: number;
  slices: number;
  origins: Float64Array; // 3 per slice
  colStep: [number, number, number];
  rowStep: [number, number, number];
}

export interface TissueMaps {
  pd: Float32Array;
  t1: Float32Array;
  t2: Float32Array;
  adc: Float32Array;
  fat: Float32Array;
  /** Reversible dephasing R2' (1/ms): tissue iron, blood products, calcification, veins, air-bone interfaces. */
  r2p: Float32Array;
  /** Extra EPI signal factor from susceptibility (blood products bloom on DWI). */
  sus: Float32Array;
}

const ramp = (d: number, soft: number): number => {
  // 1 inside (d << 0), 0 outside, linear over one "soft" width around the surface
  const v = 0.5 - d / soft;
  return v <= 0 ? 0 : v >= 1 ? 1 : v;
};

/** Lateral, third and fourth ventricles for a subject's ventricle scales (mirror-symmetric in x). */
function sdVentricles(x: number, y: number, z: number, s: Subject): number {
  const ax = Math.abs(x);
  const { vx, vz, vt, v3, v4 } = s;
  let d = sdEllipsoid(ax, y, z, 1.2 + 6.5 * vx, -8, 15, 6.5 * vx, 26 + 3 * (vx - 1), 6.5 * vz);
  d = smin(d, sdEllipsoid(ax, y, z, 10 + 3 * vx, 22, 9, 5.5 * vx, 12 + 2 * (vx - 1), 7 * vz), 4);
  d = smin(d, sdEllipsoid(ax, y, z, 13 + 2 * vx, 37, 6, 3 * vx, 10, 3.5 * vz), 3);
  d = smin(d, sdEllipsoid(ax, y, z, 27, 4, -12, 2.2 * vt, 15, 2.8 * vt), 3);
  d = Math.min(d, sdEllipsoid(x, y, z, 0, 8, 2, 1.6 * v3, 14, 9));
  d = Math.min(d, sdEllipsoid(x, y, z, 0, 33, -30, 5 * v4, 3.5 * v4, 5 * v4));
  return d;
}

/** Lesion shape: normalised ellipsoid radius with a wavy surface, returned as approximate mm distance. An
 *  oriented lesion (MS plaque) is a prolate spheroid along its axis. */
function sdLesion(l: Lesion, x: number, y: number, z: number): number {
  let rho: number;
  if (l.axis) {
    const px = x - l.c[0], py = y - l.c[1], pz = z - l.c[2];
    const along = px * l.axis[0] + py * l.axis[1] + pz * l.axis[2];
    const across2 = Math.max(0, px * px + py * py + pz * pz - along * along);
    rho = Math.sqrt((along * along) / (l.r[0] * l.r[0]) + across2 / (l.r[1] * l.r[1]));
  } else {
    const px = (x - l.c[0]) / l.r[0];
    const py = (y - l.c[1]) / l.r[1];
    const pz = (z - l.c[2]) / l.r[2];
    rho = Math.sqrt(px * px + py * py + pz * pz);
  }
  if (l.irregular > 0 && rho < 2) {
    const w = l.waves;
    let n = 0;
    for (let i = 0; i < 3; i++) n += Math.cos(w.kx[i]! * x + w.ky[i]! * y + w.kz[i]! * z + w.ph[i]!);
    rho -= (l.irregular * n) / 3;
  }
  const rm = (l.r[0] + l.r[1] + l.r[2]) / 3;
  return (rho - 1) * rm;
}

/** Vasogenic oedema (around a tumour or meningioma) of weight w: water raises T2, T1, proton density and ADC. */
function vasogenicOedema(P: Float64Array, w: number): void {
  P[2] *= 1 + 1.0 * w;
  P[1] *= 1 + 0.5 * w;
  P[0] += 0.1 * w;
  P[3] += w * (1.5 - P[3]!);
}

/** Blends the voxel's parameters P towards tissue t by weight w (partial volume, layered inside-out). */
function mixInto(P: Float64Array, TAB: Float64Array, w: number, t: number): void {
  if (w <= 0) return;
  const o = t * 6;
  P[0] += w * (TAB[o]! - P[0]!);
  P[1] += w * (TAB[o + 1]! - P[1]!);
  P[2] += w * (TAB[o + 2]! - P[2]!);
  P[3] += w * (TAB[o + 3]! - P[3]!);
  P[4] += w * (TAB[o + 4]! - P[4]!);
  P[5] += w * (TAB[o + 5]! - P[5]!);
}

export function allocMaps(n: number): TissueMaps {
  return {
    pd: new Float32Array(n),
    t1: new Float32Array(n),
    t2: new Float32Array(n),
    adc: new Float32Array(n),
    fat: new Float32Array(n),
    r2p: new Float32Array(n),
    sus: new Float32Array(n),
  };
}

/** Centre and radius of the sphere the folding field lives on: sulci run radially, perpendicular to the surface. */
const FOLD_C = [0, 4, 10] as const;
const FOLD_R = 75;

/** Signed distance (mm) to the nearest sulcus centre, tabulated over direction (theta, phi) from FOLD_C:
 *  f / |tangential grad f| of the subject's random-wave field, clamped to +-12 mm. */
export interface FoldTable {
  dist: Float32Array;
  nt: number;
  np: number;
}

/** Tabulates the folding field; `stepDeg` about the finest voxel size at the cortex (1.5 deg = 2 mm there). */
export function foldTable(s: Subject, stepDeg = 1.5): FoldTable {
  const FOLD_NT = Math.round(180 / stepDeg) + 1;
  const FOLD_NP = Math.round(360 / stepDeg) + 1;
  const w = s.fold;
  const n = w.kx.length;
  const dist = new Float32Array(FOLD_NT * FOLD_NP);
  for (let it = 0; it < FOLD_NT; it++) {
    const th = (it / (FOLD_NT - 1)) * Math.PI;
    for (let ip = 0; ip < FOLD_NP; ip++) {
      const ph = (ip / (FOLD_NP - 1)) * 2 * Math.PI - Math.PI;
      const ux = Math.sin(th) * Math.cos(ph);
      const uy = Math.sin(th) * Math.sin(ph);
      const uz = Math.cos(th);
      const x = FOLD_C[0] + FOLD_R * ux;
      const y = FOLD_C[1] + FOLD_R * uy;
      const z = FOLD_C[2] + FOLD_R * uz;
      let f = 0, gx = 0, gy = 0, gz = 0;
      for (let i = 0; i < n; i++) {
        const a = w.kx[i]! * x + w.ky[i]! * y + w.kz[i]! * z + w.ph[i]!;
        f += Math.cos(a);
        const sn = Math.sin(a);
        gx -= w.kx[i]! * sn;
        gy -= w.ky[i]! * sn;
        gz -= w.kz[i]! * sn;
      }
      const gr = gx * ux + gy * uy + gz * uz;
      const gt = Math.sqrt(Math.max(1e-6, gx * gx + gy * gy + gz * gz - gr * gr));
      dist[it * FOLD_NP + ip] = Math.max(-12, Math.min(12, f / gt));
    }
  }
  return { dist, nt: FOLD_NT, np: FOLD_NP };
}

function foldDistance(t: FoldTable, x: number, y: number, z: number, depth: number): number {
  const dx = x - FOLD_C[0], dy = y - FOLD_C[1], dz = z - FOLD_C[2];
  const r = Math.sqrt(dx * dx + dy * dy + dz * dz) || 1e-6;
  // sulci bend as they go deep instead of running straight to the centre
  const th0 = Math.acos(Math.max(-1, Math.min(1, dz / r)));
  const ph0 = Math.atan2(dy, dx);
  let th = th0 + 0.012 * depth * Math.cos(5 * ph0 + 3 * th0);
  let ph = ph0 + 0.016 * depth * Math.sin(4 * th0 + 2 * ph0);
  th = th < 0 ? -th : th > Math.PI ? 2 * Math.PI - th : th;
  ph = ph > Math.PI ? ph - 2 * Math.PI : ph < -Math.PI ? ph + 2 * Math.PI : ph;
  const FOLD_NT = t.nt;
  const FOLD_NP = t.np;
  const ft = (th / Math.PI) * (FOLD_NT - 1);
  const fp = ((ph + Math.PI) / (2 * Math.PI)) * (FOLD_NP - 1);
  const i0 = Math.min(FOLD_NT - 2, Math.floor(ft));
  const j0 = Math.min(FOLD_NP - 2, Math.floor(fp));
  const a = ft - i0, b = fp - j0;
  const d = t.dist;
  const k = i0 * FOLD_NP + j0;
  const v = (d[k]! * (1 - b) + d[k + 1]! * b) * (1 - a) + (d[k + FOLD_NP]! * (1 - b) + d[k + FOLD_NP + 1]! * b) * a;
  // the table is on the sphere of radius FOLD_R; distances shrink towards the centre
  return Math.abs(v) * Math.min(1.3, r / FOLD_R);
}

/** Air-filled spaces of the skull base (template mm): ethmoid/frontal sinus, sphenoid sinus, mastoids. Tissue near
 *  them dephases on gradient echo (the dark skull-base artefact of SWI and T2*). */
const AIR_SPACES: ReadonlyArray<readonly [number, number, number]> = [[0, -66, -24], [0, -22, -38], [46, 24, -34], [-46, 24, -34]];
const AIR_SIGMA = 13;

/** A deterministic pseudo-random number in [0, 1) from three integers (which medullary veins exist, and where). */
function hash01(a: number, b: number, c: number): number {
  let h = Math.imul(a | 0, 0x9e3779b1) ^ Math.imul(b | 0, 0x85ebca77) ^ Math.imul(c | 0, 0xc2b2ae3d);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}

export interface RenderOptions {
  /** Also draw what only gradient-echo T2* contrast shows: veins, the sagittal sinus, skull-base air artefact. */
  susceptibility?: boolean;
}

export function renderTissue(s: Subject, fieldT: number, g: VoxelGrid, fold: FoldTable = foldTable(s), opts: RenderOptions = {}): TissueMaps {
  const n = g.cols * g.rows * g.slices;
  const maps = allocMaps(n);
  const tab = tissueTable(fieldT);
  const TPD = tab.pd;
  const TT1 = tab.t1;
  const TT2 = tab.t2;
  const TADC = tab.adc;
  const TFAT = tab.fat;
  const TR2P = tab.r2p;
  const sr = susceptibilityR2p(fieldT);
  const suscept = opts.susceptibility === true;
  const bloom = 2 + 2.5 * (fieldT / 3); // mm beyond the clot that acute blood darkens on gradient echo
  const veinSeed = Math.floor(s.fold.ph[0]! * 1e6);

  // patient -> template: q = S^-1 R^T (p - t), then the smooth warp
  const R = s.rot;
  const isx = 1 / s.scale[0];
  const isy = 1 / s.scale[1];
  const isz = 1 / s.scale[2];
  const wv = s.warp;
  const nw = wv.kx.length;
  const hw = s.sulcalHalfWidth;
  const shrink = (1 - s.brainScale) * 40; // mm
  const gap = 1.6 + s.csfGap;
  const soft = Math.max(0.8, Math.min(2.5, Math.hypot(...g.colStep)));
  const masses = s.masses;
  const nMass = masses.length;
  const lesions = s.lesions;
  const wmh = s.wmh;
  const hasWmh = wmh.length > 0 || s.wmhHalo > 0 || s.transependymal > 0;
  const ccTop = 20 + 7 * s.vz;
  const thalX = 8 + 1.5 * s.v3;
  const caudX = Math.min(1.2 + 13 * s.vx + 3, 21);

  // tissue parameters of the current voxel: pd, t1, t2, adc, fat, r2p (a typed array, not closure variables, so
  // the hot loop stays in registers/fast memory)
  const P = new Float64Array(6);
  const TAB = new Float64Array(6 * T.COUNT);
  for (let t = 0; t < T.COUNT; t++) TAB.set([TPD[t]!, TT1[t]!, TT2[t]!, TADC[t]!, TFAT[t]!, TR2P[t]!], t * 6);
  const tx = s.trans[0], ty = s.trans[1], tz = s.trans[2];
  const R0 = R[0]!, R1 = R[1]!, R2 = R[2]!, R3 = R[3]!, R4 = R[4]!, R5 = R[5]!, R6 = R[6]!, R7 = R[7]!, R8 = R[8]!;
  const wkx = wv.kx, wky = wv.ky, wkz = wv.kz, wph = wv.ph, wa = s.warpAmp;
  const skullThick = s.skullThick, scalpThick = s.scalpThick, cortThick = s.cortThick, sulcDepth = s.sulcDepth;
  const nLes = lesions.length, nWmh = wmh.length, wmhHalo = s.wmhHalo, transep = s.transependymal;

  const csx = g.colStep[0], csy = g.colStep[1], csz = g.colStep[2];
  const WC = new Float64Array(nw), WS = new Float64Array(nw), WCD = new Float64Array(nw), WSD = new Float64Array(nw);
  let idx = 0;
  for (let sl = 0; sl < g.slices; sl++) {
    const ox = g.origins[sl * 3]!;
    const oy = g.origins[sl * 3 + 1]!;
    const oz = g.origins[sl * 3 + 2]!;
    for (let r = 0; r < g.rows; r++) {
      const rx0 = ox + r * g.rowStep[0];
      const ry0 = oy + r * g.rowStep[1];
      const rz0 = oz + r * g.rowStep[2];
      // the warp's phases are affine along a row: rotate (cos, sin) by a fixed step instead of calling cos
      {
        const px0 = rx0 - tx, py0 = ry0 - ty, pz0 = rz0 - tz;
        const x0 = (R0 * px0 + R3 * py0 + R6 * pz0) * isx, y0 = (R1 * px0 + R4 * py0 + R7 * pz0) * isy, z0 = (R2 * px0 + R5 * py0 + R8 * pz0) * isz;
        const dxc = (R0 * csx + R3 * csy + R6 * csz) * isx, dyc = (R1 * csx + R4 * csy + R7 * csz) * isy, dzc = (R2 * csx + R5 * csy + R8 * csz) * isz;
        for (let i = 0; i < nw; i++) {
          const ph0 = wkx[i]! * x0 + wky[i]! * y0 + wkz[i]! * z0 + wph[i]!;
          const dph = wkx[i]! * dxc + wky[i]! * dyc + wkz[i]! * dzc;
          WC[i] = Math.cos(ph0);
          WS[i] = Math.sin(ph0);
          WCD[i] = Math.cos(dph);
          WSD[i] = Math.sin(dph);
        }
      }
      for (let c = 0; c < g.cols; c++, idx++) {
        let dx = 0, dy = 0, dz = 0;
        for (let i = 0; i < nw; i++) {
          const cw = WC[i]!;
          dx += wa[i * 3]! * cw;
          dy += wa[i * 3 + 1]! * cw;
          dz += wa[i * 3 + 2]! * cw;
          const sw = WS[i]!;
          WC[i] = cw * WCD[i]! - sw * WSD[i]!;
          WS[i] = sw * WCD[i]! + cw * WSD[i]!;
        }
        const px = rx0 + c * csx - tx;
        const py = ry0 + c * csy - ty;
        const pz = rz0 + c * csz - tz;
        let x = (R0 * px + R3 * py + R6 * pz) * isx;
        let y = (R1 * px + R4 * py + R7 * pz) * isy;
        let z = (R2 * px + R5 * py + R8 * pz) * isz;
        // cheap reject: far outside any head
        if (x * x / 8100 + (y - 4) * (y - 4) / 12100 + (z - 5) * (z - 5) / 9025 > 1.25) continue;
        x += dx;
        y += dy;
        z += dz;

        P[0] = 0; P[1] = 1000; P[2] = 1; P[3] = 0; P[4] = 0; P[5] = 0;
        let sus = 1;
        let r2x = 0; // extra R2' from blood products and veins, on top of the tissue mixture's
        const dCbrQ = sdCerebrum(x, y, z);
        const dCbQ = sdCerebellum(x, y, z);
        const dStQ = sdStem(x, y, z);
        const dUnion = smin(smin(dCbrQ, dCbQ, 8), dStQ, 6);
        const dCav = dUnion - gap;
        const skull = skullThick * (1 + 0.15 * Math.cos(0.05 * y + 0.03 * z));
        const outer = skull + scalpThick;
        if (dCav > outer + soft) {
          // orbits below and in front of the cranial vault
          const ex = Math.abs(x) - 32;
          const ey = y + 70;
          const ez = z + 30;
          const de = Math.sqrt(ex * ex + ey * ey + ez * ez);
          if (de < 17) {
            mixInto(P, TAB, ramp(de - 15, soft), T.ORBIT_FAT);
            mixInto(P, TAB, ramp(de - 11.5, soft), T.VITREOUS);
            maps.pd[idx] = P[0]!; maps.t1[idx] = P[1]!; maps.t2[idx] = P[2]!; maps.adc[idx] = P[3]!; maps.fat[idx] = P[4]!; maps.r2p[idx] = P[5]!; maps.sus[idx] = 1;
          }
          continue;
        }
        // extracranial shells from the cavity outwards: scalp, outer table, diploe, inner table
        mixInto(P, TAB, ramp(dCav - outer, soft), T.SCALP);
        mixInto(P, TAB, ramp(dCav - skull, soft), T.BONE);
        mixInto(P, TAB, ramp(dCav - (skull - 1.6), soft) * ramp(1.8 - dCav, soft), T.MARROW);
        mixInto(P, TAB, ramp(dCav - 1.6, soft), T.BONE);
        const wCav = ramp(dCav, soft);
        if (wCav > 0) {
          mixInto(P, TAB, wCav, T.CSF);
          // brain: shrunk inside the skull by atrophy, pushed aside by masses
          let bx = x, by = y, bz = z;
          for (let k = 0; k < nMass; k++) {
            const mass = masses[k]!;
            const mx = bx - mass.c[0], my = by - mass.c[1], mz = bz - mass.c[2];
            const rm = Math.sqrt(mx * mx + my * my + mz * mz);
            if (rm > 1e-6) {
              const u = massDisplacement(rm, mass.reff) / rm;
              bx -= mx * u; by -= my * u; bz -= mz * u;
            }
          }
          // atrophy: the brain surface sits deeper below the skull, a constant offset of its distance field
          let dCbr = dCbrQ + shrink, dCb = dCbQ + shrink, dSt = dStQ + shrink;
          if (nMass > 0) {
            dCbr = sdCerebrum(bx, by, bz) + shrink;
            dCb = sdCerebellum(bx, by, bz) + shrink;
            dSt = sdStem(bx, by, bz) + shrink;
          }
          const dBrain = smin(smin(dCbr, dCb, 8), dSt, 6);
          const wBrain = ramp(dBrain, soft) * wCav;
          let par = 0; // parenchymal fraction (brain minus its CSF spaces)
          let wmf = 0; // white-matter fraction
          if (wBrain > 0) {
            const abx = Math.abs(bx);
            if (dCbr <= dCb && dCbr <= dSt + 3) {
              // cerebrum: distance to the nearest CSF surface along the cortex (outer surface, sulci, fissures)
              const depth = -dCbr;
              let dcs = depth;
              const sd = sulcDepth * (1 + 0.4 * Math.cos(0.11 * bx + 0.07 * by + 0.05 * bz) * Math.cos(0.05 * bx - 0.09 * by + 0.08 * bz));
              if (depth < sd + cortThick + 3) {
                let ds = foldDistance(fold, bx, by, bz, depth) - hw;
                if (depth > sd) {
                  const d0 = ds > 0 ? ds : 0;
                  ds = Math.sqrt(d0 * d0 + (depth - sd) * (depth - sd));
                }
                dcs = Math.min(dcs, ds);
              }
              // interhemispheric fissure above the corpus callosum, and all the way down in front of and behind it
              // (the corpus callosum and the midline below it form an arch in the sagittal plane)
              const ay = (by - 3) / 40, az = (bz - (ccTop - 12)) / 13;
              const inFissure = ay * ay + az * az > 1 && bz > -14;
              if (inFissure) dcs = Math.min(dcs, abx - 1.2);
              // Sylvian fissure: the insular cistern (a parasagittal CSF slab lateral to the insula) and the cleft
              // from it to the lateral surface between the frontal/parietal operculum and the temporal lobe
              if (abx > 28) {
                const ey = by / 24, ez = (bz - 3) / 13;
                const env = ey * ey + ez * ez;
                if (env < 1.3) {
                  const fade = (1 - Math.min(1, env)) * 6; // the cistern narrows to nothing at its rim
                  const dIns = Math.abs(abx - 37) - Math.min(1.4, fade * 0.3) + (env > 1 ? (env - 1) * 20 : 0);
                  const dCleft = abx > 37 ? Math.abs(bz - (3 + 0.1 * by)) - 1.1 + (env > 1 ? (env - 1) * 20 : 0) : 99;
                  dcs = Math.min(dcs, dIns, dCleft);
                }
              }
              const wGM = ramp(dcs - cortThick, soft);
              const wCSF = ramp(dcs, soft);
              mixInto(P, TAB, wBrain, T.WM);
              wmf = wBrain * (1 - wGM);
              mixInto(P, TAB, wBrain * wGM, T.GM);
              mixInto(P, TAB, wBrain * wCSF, T.CSF);
              par = wBrain * (1 - wCSF);
              if (inFissure && abx < 0.6 && wCav > 0.5) mixInto(P, TAB, 0.8, T.DURA);
              // deep grey nuclei
              if (abx < 34 && by > -26 && by < 30 && bz > -10 && bz < 24) {
                const dCaud = sdEllipsoid(abx, by, bz, caudX, -12, 12, 4.5, 11, 8);
                const dPut = sdEllipsoid(abx, by, bz, 26, -2, 2, 5, 15, 9);
                const dPal = sdEllipsoid(abx, by, bz, 19.5, 0, 0, 3.5, 8, 5.5);
                const dTh = sdEllipsoid(abx, by, bz, thalX, 14, 5, 7.5, 13, 8);
                const wDeep = ramp(Math.min(dCaud, dPut, dTh), soft) * par;
                mixInto(P, TAB, wDeep, T.DEEP);
                const wPal = ramp(dPal, soft) * par;
                mixInto(P, TAB, wPal, T.PALLIDUM);
                wmf *= 1 - Math.max(wDeep, wPal);
              }
              const dV = abx < 37 && by > -42 && by < 52 && bz > -42 && bz < 30 ? sdVentricles(bx, by, bz, s) : 20;
              const wV = ramp(dV, soft) * wBrain;
              if (wV > 0) {
                mixInto(P, TAB, wV, T.CSF);
                par *= 1 - wV;
                wmf *= 1 - wV;
              }
              if (hasWmh && wmf > 0.05) {
                let w = 0;
                if (wmhHalo > 0 || transep > 0) {
                  // periventricular caps and rim: thickest at the frontal and occipital horns
                  const capBoost = transep > 0 ? 1 : 0.55 + 0.45 * Math.min(1, Math.abs(by - 8) / 25);
                  const rim = Math.max(wmhHalo * capBoost, transep);
                  if (dV > -1 && dV < rim + soft) w = ramp(dV - rim, soft);
                }
                for (let i = 0; i < nWmh; i++) {
                  const l = wmh[i]!;
                  if (Math.abs(bx - l.c[0]) > l.r[0] * 1.6 || Math.abs(by - l.c[1]) > l.r[1] * 1.6 || Math.abs(bz - l.c[2]) > l.r[2] * 1.6) continue;
                  w = Math.max(w, ramp(sdLesion(l, bx, by, bz), soft));
                }
                w *= wmf;
                if (w > 0) {
                  P[2] *= 1 + 0.8 * w;
                  P[1] *= 1 + 0.35 * w;
                  P[0] += 0.08 * w;
                  P[3] += w * (1.05 - P[3]!);
                }
              }
            } else if (dCb < dSt) {
              // cerebellum: cortex folded into thin folia around a white-matter core, vermis in the midline
              const px2 = bx / 48, py2 = (by - 52) / 27, pz2 = (bz + 36) / 21;
              const rho = Math.sqrt(px2 * px2 + py2 * py2 + pz2 * pz2);
              const folium = Math.sin(((1 - rho) * 24 * 2 * Math.PI) / 5 + 1.7 * Math.cos(0.25 * bx + 0.1 * bz));
              mixInto(P, TAB, wBrain, T.GM);
              const wCore = ramp((rho - 0.55) * 22, soft) * (abx > 7 ? 1 : 0.3);
              mixInto(P, TAB, wBrain * wCore, T.WM);
              wmf = wBrain * wCore;
              const wFol = rho > 0.7 && folium > 0.55 ? Math.min(1, (folium - 0.55) * 4) * Math.min(1, (rho - 0.7) * 8) : 0;
              mixInto(P, TAB, wBrain * wFol, T.CSF);
              par = wBrain * (1 - wFol);
              const dV = sdVentricles(bx, by, bz, s);
              const wV = ramp(dV, soft) * wBrain;
              mixInto(P, TAB, wV, T.CSF);
              par *= 1 - wV;
            } else {
              // brainstem: mostly tracts with grey nuclei
              mixInto(P, TAB, wBrain, T.WM);
              mixInto(P, TAB, wBrain * 0.35, T.GM);
              wmf = wBrain * 0.65;
              par = wBrain;
              const dV = sdVentricles(bx, by, bz, s);
              const wV = ramp(dV, soft) * wBrain;
              mixInto(P, TAB, wV, T.CSF);
              par *= 1 - wV;
            }
          }
          // focal lesions, in the subject's own (unshifted) brain space
          let plaqueW = 0;
          let plaque: Lesion | null = null;
          for (let i = 0; i < nLes; i++) {
            const l = lesions[i]!;
            const reach = Math.max(l.r[0], l.r[1], l.r[2], l.oedemaR) + 4;
            const lx = x - l.c[0], ly = y - l.c[1], lz = z - l.c[2];
            if (lx * lx + ly * ly + lz * lz > reach * reach) continue;
            const side = l.sideSign === 0 ? 1 : ramp(-(l.sideSign * x) + 1.5, soft);
            const d = sdLesion(l, x, y, z);
            const w = ramp(d, soft) * side;
            if (l.kind === 'infarct') {
              const wi = w * par;
              if (wi > 0) {
                P[3] += wi * (0.4 - P[3]!);
                P[2] *= 1 + 0.38 * wi;
                P[1] *= 1 + 0.12 * wi;
                P[0] *= 1 + 0.05 * wi;
              }
            } else if (l.kind === 'haemorrhage') {
              const dist = Math.sqrt(lx * lx + ly * ly + lz * lz);
              const wo = ramp(dist - l.oedemaR, soft * 2) * par * (1 - w);
              if (wo > 0) {
                P[2] *= 1 + 0.7 * wo;
                P[1] *= 1 + 0.3 * wo;
                P[3] += wo * (1.3 - P[3]!);
              }
              const wh = w * Math.max(par, wCav * 0.9);
              const late = l.blood === 'late_subacute';
              if (wh > 0) {
                P[0] += wh * (0.86 - P[0]!);
                P[1] += wh * (l.bloodT1 - P[1]!);
                P[2] += wh * (l.bloodT2 - P[2]!);
                P[3] += wh * (0.6 - P[3]!);
                P[4] *= 1 - wh;
                P[5] += wh * ((late ? sr.lateBlood : sr.blood) - P[5]!);
              }
              // on gradient echo, deoxy- and intracellular methaemoglobin bloom beyond the clot (more than on T2);
              // late subacute blood is ringed by haemosiderin instead
              r2x = Math.max(r2x, late ? sr.haemosiderin * ramp(Math.abs(d + 0.75) - 1.25, soft) * side * wCav : 0.7 * sr.blood * ramp(d - bloom / 2, bloom) * side * wCav);
              // deoxy/methaemoglobin dephase on gradient-echo EPI: a dark bloom a little larger than the clot
              const wb = ramp(d - 2.5, soft * 2) * side;
              sus = Math.min(sus, 1 - 0.85 * wb);
            } else if (l.kind === 'tumour') {
              const dist = Math.sqrt(lx * lx + ly * ly + lz * lz);
              const wo = ramp(dist - l.oedemaR, soft * 3) * (1 - w) * (wmf + 0.3 * (par - wmf));
              if (wo > 0) vasogenicOedema(P, wo);
              const wt = w * Math.max(par, 0.9 * wCav);
              if (wt > 0) {
                const tt1 = fieldT >= 2 ? 1500 : 1200;
                P[0] += wt * (0.86 - P[0]!);
                P[1] += wt * (tt1 - P[1]!);
                P[2] += wt * (115 - P[2]!);
                P[3] += wt * (1.0 - P[3]!);
                P[4] *= 1 - wt;
                if (l.necrosis > 0) {
                  const wn = ramp(d + (1 - l.necrosis) * (l.r[0] + l.r[1] + l.r[2]) / 3, soft * 1.5) * wt;
                  P[0] += wn * (0.95 - P[0]!);
                  P[1] += wn * (2600 - P[1]!);
                  P[2] += wn * (420 - P[2]!);
                  P[3] += wn * (2.3 - P[3]!);
                }
              }
            } else if (l.kind === 'plaque') {
              // overlapping plaques do not compound: the one weighing most on this voxel decides
              if (w > plaqueW) {
                plaqueW = w;
                plaque = l;
              }
            } else if (l.kind === 'meningioma') {
              const dist = Math.sqrt(lx * lx + ly * ly + lz * lz);
              if (l.oedemaR > 0) {
                const wo = ramp(dist - l.oedemaR, soft * 3) * (1 - w) * (wmf + 0.3 * (par - wmf));
                if (wo > 0) vasogenicOedema(P, wo);
              }
              // extra-axial: it fills the cavity whatever brain or CSF was there (the brain is pushed aside by
              // its mass effect), and the skull clips it into a broad dural base
              if (l.cleft > 0) mixInto(P, TAB, ramp(d - l.cleft, soft) * (1 - w) * side * wCav, T.CSF);
              const wt = w * wCav;
              if (wt > 0) {
                const t = l.tissue!;
                P[0] += wt * (t.pd - P[0]!);
                P[1] += wt * (t.t1 - P[1]!);
                P[2] += wt * (t.t2 - P[2]!);
                P[3] += wt * (t.adc - P[3]!);
                P[4] *= 1 - wt;
                P[5] += wt * (TR2P[T.GM]! - P[5]!);
                if (l.calcified > 0) {
                  // punctate calcification: where the lesion's three surface waves peak together
                  const wv = l.waves;
                  let n3 = 0;
                  for (let k = 0; k < 3; k++) n3 += Math.cos(wv.kx[k]! * x + wv.ky[k]! * y + wv.kz[k]! * z + wv.ph[k]!);
                  const wc = Math.max(0, Math.min(1, (n3 - 3 + 3 * l.calcified) / 0.5)) * wt;
                  P[0] += wc * (0.4 - P[0]!);
                  P[2] += wc * (0.5 * t.t2 - P[2]!);
                  P[3] += wc * (0.6 - P[3]!);
                  P[5] += wc * (sr.calcification - P[5]!);
                }
              }
            }
          }
          if (plaque) {
            // demyelination: T2 and T1 prolonged (black holes much more), ADC raised, or low while active
            const wp = plaqueW * par;
            if (wp > 0) {
              P[2] *= 1 + (plaque.blackHole ? 2.2 : 1.0) * wp;
              P[1] *= 1 + (plaque.blackHole ? 1.1 : 0.45) * wp;
              P[0] += 0.08 * wp;
              P[3] += wp * ((plaque.active ? 0.5 : 1.15) - P[3]!);
            }
          }
          if (suscept) {
            // superior sagittal sinus: along the vertex midline, just under the inner table
            const ax0 = Math.abs(x);
            if (ax0 < 6 && z > 15 && dCav > -8) r2x = Math.max(r2x, 1.5 * sr.vein * ramp(ax0 - 3, soft) * ramp(-dCav - 5, soft) * wCav);
            const abx = Math.abs(bx);
            // paired internal cerebral veins on the roof of the third ventricle
            if (abx < 5 && by > -6 && by < 26) r2x = Math.max(r2x, sr.vein * ramp(Math.hypot(abx - 2.2, bz - 11.5 - 1.6 * (s.v3 - 1)) - 1.2, soft) * par);
            // medullary veins: thin lines running radially through the hemispheric white matter to the ventricles:
            // a fan of candidate lines 0.25 rad apart in coronal planes 6 mm apart, of which a hashed half exist,
            // each shifted along y by up to 2 mm and the fans turned by hashed offsets (no visible lattice)
            if (wmf > 0.3 && abx > 10 && bz > 0 && bz < 55) {
              const rho = Math.hypot(abx - 8, bz - 15);
              const yb = by + 100;
              const ky = Math.floor(yb / 6);
              const th = Math.atan2(bz - 15, abx - 8) - hash01(ky, veinSeed, 0) * 0.25;
              const kt = Math.round(th / 0.25);
              const f2 = hash01(ky, kt + (bx > 0 ? 0 : 1000), veinSeed);
              if (f2 < 0.5) {
                const dy = yb - (ky + 0.5) * 6 - (f2 * 8 - 2);
                const dth = th - 0.25 * kt;
                // a 0.5 mm vein seen by voxels of width `soft`: spread over the voxel, diluted in proportion
                const sig = Math.max(0.5, 0.5 * soft);
                const d2 = dy * dy + dth * rho * dth * rho;
                if (d2 < 9 * sig * sig) r2x = Math.max(r2x, sr.vein * (0.25 / (sig * sig)) * Math.exp(-d2 / (2 * sig * sig)) * wmf);
              }
            }
          }
        }
        if (suscept && z < 18) {
          let a = 0;
          for (const c of AIR_SPACES) {
            const dx = x - c[0], dy = y - c[1], dz = z - c[2];
            const d2 = dx * dx + dy * dy + dz * dz;
            if (d2 < 1600) a += Math.exp(-d2 / (2 * AIR_SIGMA * AIR_SIGMA));
          }
          r2x += sr.airBone * a;
        }
        maps.pd[idx] = P[0]!;
        maps.t1[idx] = P[1]!;
        maps.t2[idx] = P[2]!;
        maps.adc[idx] = P[3]!;
        maps.fat[idx] = P[4]!;
        maps.r2p[idx] = P[5]! + r2x;
        maps.sus[idx] = sus;
      }
    }
  }
  return maps;
}

/** Maps of a coarser stack lying in the same slice planes as `src`, by bilinear in-plane resampling (which at
 *  a 2:1 ratio is the 2x2 average, i.e. the partial volume of the bigger voxel). Saves rendering DWI twice. */
export function resampleInPlane(src: VoxelGrid, m: TissueMaps, dst: VoxelGrid): TissueMaps {
  const out = allocMaps(dst.cols * dst.rows * dst.slices);
  const cs = Math.hypot(...src.colStep);
  const rs = Math.hypot(...src.rowStep);
  const cu = src.colStep.map((v) => v / (cs * cs));
  const ru = src.rowStep.map((v) => v / (rs * rs));
  const keys = ['pd', 't1', 't2', 'adc', 'fat', 'r2p', 'sus'] as const;
  const n = src.cols * src.rows;
  let i = 0;
  for (let k = 0; k < dst.slices; k++) {
    const sx = src.origins[k * 3]!, sy = src.origins[k * 3 + 1]!, sz = src.origins[k * 3 + 2]!;
    for (let r = 0; r < dst.rows; r++) {
      for (let c = 0; c < dst.cols; c++, i++) {
        const px = dst.origins[k * 3]! + c * dst.colStep[0] + r * dst.rowStep[0] - sx;
        const py = dst.origins[k * 3 + 1]! + c * dst.colStep[1] + r * dst.rowStep[1] - sy;
        const pz = dst.origins[k * 3 + 2]! + c * dst.colStep[2] + r * dst.rowStep[2] - sz;
        const u = px * cu[0]! + py * cu[1]! + pz * cu[2]!;
        const v = px * ru[0]! + py * ru[1]! + pz * ru[2]!;
        if (u < 0 || v < 0 || u > src.cols - 1 || v > src.rows - 1) {
          out.t1[i] = 1000;
          out.t2[i] = 1;
          out.sus[i] = 1;
          continue;
        }
        const c0 = Math.min(src.cols - 2, Math.floor(u)), r0 = Math.min(src.rows - 2, Math.floor(v));
        const fu = u - c0, fv = v - r0;
        const a = k * n + r0 * src.cols + c0;
        for (const key of keys) {
          const m0 = m[key];
          out[key][i] = (m0[a]! * (1 - fu) + m0[a + 1]! * fu) * (1 - fv) + (m0[a + src.cols]! * (1 - fu) + m0[a + src.cols + 1]! * fu) * fv;
        }
      }
    }
  }
  return out;
}
