// From tissue maps to stored pixels: the sequences' signal equations (spin echo, inversion recovery, spin-echo
// EPI with diffusion weighting, MPRAGE-like IR gradient echo, spoiled gradient echo with T2* decay for the
// localiser and SWI), a smooth receive-coil bias field, Rician noise, ADC fitted from the noisy b=0 and b=1000 images, the
// SWI phase mask, minimum-intensity projection and phase image, zero-fill interpolation, and quantisation to the
// vendor's stored integer range.
import type { Rng } from './prng';
import type { TissueMaps, VoxelGrid } from './phantom';
import type { CoilField, SeriesProtocol } from './scanner';
import { T, tissueTable } from './tissue';

/** Noise-free signal of each voxel for a sequence; b = diffusion weighting in s/mm^2 (DWI only). */
export function signal(p: SeriesProtocol, m: TissueMaps, b: number, out: Float32Array): void {
  const n = out.length;
  const { tr, te } = p;
  const ti = p.ti ?? 0;
  switch (p.sequence) {
    case 'T2':
      for (let i = 0; i < n; i++) out[i] = m.pd[i]! * (1 - Math.exp(-tr / m.t1[i]!)) * Math.exp(-te / m.t2[i]!);
      break;
    case 'FLAIR':
      for (let i = 0; i < n; i++) {
        const t1 = m.t1[i]!;
        out[i] = m.pd[i]! * Math.abs(1 - 2 * Math.exp(-ti / t1) + Math.exp(-tr / t1)) * Math.exp(-te / m.t2[i]!);
      }
      break;
    case 'DWI':
    case 'ADC':
      for (let i = 0; i < n; i++) {
        // spectral fat saturation; gradient-echo EPI readout adds susceptibility dephasing
        const s0 = m.pd[i]! * (1 - Math.exp(-tr / m.t1[i]!)) * Math.exp(-te / m.t2[i]!) * m.sus[i]! * (1 - 0.95 * m.fat[i]!);
        out[i] = b > 0 ? s0 * Math.exp(-b * m.adc[i]! * 1e-3) : s0;
      }
      break;
    case 'T1':
      if (p.acquisitionType === '3D') {
        for (let i = 0; i < n; i++) {
          const t1 = m.t1[i]!;
          out[i] = m.pd[i]! * Math.abs(1 - (2 * Math.exp(-ti / t1)) / (1 + Math.exp(-tr / t1))) * Math.exp(-te / (0.6 * m.t2[i]!));
        }
      } else {
        for (let i = 0; i < n; i++) out[i] = m.pd[i]! * (1 - Math.exp(-tr / m.t1[i]!)) * Math.exp(-te / m.t2[i]!);
      }
      break;
    case 'LOCALIZER':
    case 'SWI':
    case 'SWI_PHASE': {
      // spoiled gradient echo magnitude with T2* decay: 1/T2* = 1/T2 + R2'
      const a = (p.flip * Math.PI) / 180;
      const ca = Math.cos(a);
      const sa = Math.sin(a);
      for (let i = 0; i < n; i++) {
        const e1 = Math.exp(-tr / m.t1[i]!);
        out[i] = (m.pd[i]! * sa * (1 - e1) / (1 - ca * e1)) * Math.exp(-te * (1 / m.t2[i]! + m.r2p[i]!));
      }
      break;
    }
  }
}

/** Noise-free white-matter signal of a sequence at this field: the reference for SNR and display gain. */
export function whiteMatterSignal(p: SeriesProtocol, fieldT: number, b = 0): number {
  const tab = tissueTable(fieldT);
  const m: TissueMaps = {
    pd: Float32Array.of(tab.pd[T.WM]!),
    t1: Float32Array.of(tab.t1[T.WM]!),
    t2: Float32Array.of(tab.t2[T.WM]!),
    adc: Float32Array.of(tab.adc[T.WM]!),
    fat: Float32Array.of(0),
    r2p: Float32Array.of(tab.r2p[T.WM]!),
    sus: Float32Array.of(1),
  };
  const out = new Float32Array(1);
  signal(p, m, b, out);
  return out[0]!;
}

/** The coil's smooth receive field at each voxel's patient position (multiplicative, around 1 at the head's
 *  centre). It varies over a hundred mm or more, so it is evaluated every 8 pixels and interpolated bilinearly. */
export function biasField(g: VoxelGrid, coil: CoilField, centre: [number, number, number]): Float32Array {
  const img = new Float32Array(g.cols * g.rows * g.slices);
  const at = (s: number, r: number, c: number): number => {
    const x = g.origins[s * 3]! + c * g.colStep[0] + r * g.rowStep[0];
    const y = g.origins[s * 3 + 1]! + c * g.colStep[1] + r * g.rowStep[1];
    const z = g.origins[s * 3 + 2]! + c * g.colStep[2] + r * g.rowStep[2];
    const dx = x - centre[0], dy = y - centre[1], dz = z - centre[2];
    let f = Math.exp(coil.amp * (Math.cos(coil.k1[0] * x + coil.k1[1] * y + coil.k1[2] * z + coil.ph1) + 0.6 * Math.cos(coil.k2[0] * x + coil.k2[1] * y + coil.k2[2] * z + coil.ph2)) + coil.grad[0] * dx + coil.grad[1] * dy + coil.grad[2] * dz);
    if (coil.centre > 0) f *= 1 + coil.centre * Math.exp(-(dx * dx + dy * dy + dz * dz) / (2 * 65 * 65));
    return f;
  };
  const step = 8;
  const gr = Math.ceil((g.rows - 1) / step) + 1;
  const gc = Math.ceil((g.cols - 1) / step) + 1;
  const coarse = new Float64Array(gr * gc);
  let i = 0;
  for (let s = 0; s < g.slices; s++) {
    for (let a = 0; a < gr; a++) for (let b = 0; b < gc; b++) coarse[a * gc + b] = at(s, a * step, b * step);
    for (let r = 0; r < g.rows; r++) {
      const a0 = Math.min(gr - 2, Math.floor(r / step));
      const fa = gr > 1 ? r / step - a0 : 0;
      for (let c = 0; c < g.cols; c++, i++) {
        const b0 = Math.min(gc - 2, Math.floor(c / step));
        const fb = gc > 1 ? c / step - b0 : 0;
        const k = a0 * gc + b0;
        img[i] = (coarse[k]! * (1 - fb) + coarse[k + 1]! * fb) * (1 - fa) + (coarse[k + gc]! * (1 - fb) + coarse[k + gc + 1]! * fb) * fa;
      }
    }
  }
  return img;
}

/** Magnitude of signal plus complex Gaussian noise: Rician, with the right floor in background and CSF. */
export function addRicianNoise(img: Float32Array, sigma: number, rng: Rng): void {
  for (let i = 0; i < img.length; i++) {
    const re = img[i]! + sigma * rng.fastNormal();
    const im = sigma * rng.fastNormal();
    img[i] = Math.sqrt(re * re + im * im);
  }
}

/** Voxel's apparent diffusion coefficient in 10^-6 mm^2/s from noisy b=0 and b images, 0 in background. */
export function fitAdc(b0: Float32Array, bHigh: Float32Array, b: number, floor: number): Float32Array {
  const out = new Float32Array(b0.length);
  for (let i = 0; i < b0.length; i++) {
    const s0 = b0[i]!;
    if (s0 < floor) continue;
    const s1 = Math.max(bHigh[i]!, s0 * 1e-3);
    const adc = (Math.log(s0 / s1) / b) * 1e6;
    out[i] = adc < 0 ? 0 : adc > 4000 ? 4000 : adc;
  }
  return out;
}

/** Bilinear zero-fill-style interpolation of each slice by an integer factor. */
export function upsample(img: Float32Array, rows: number, cols: number, slices: number, f: number): Float32Array {
  if (f === 1) return img;
  const R = rows * f;
  const C = cols * f;
  const out = new Float32Array(R * C * slices);
  for (let s = 0; s < slices; s++) {
    const base = s * rows * cols;
    const obase = s * R * C;
    for (let r = 0; r < R; r++) {
      const v = Math.min(rows - 1, Math.max(0, (r + 0.5) / f - 0.5));
      const r0 = Math.floor(v);
      const r1 = Math.min(rows - 1, r0 + 1);
      const fr = v - r0;
      for (let c = 0; c < C; c++) {
        const u = Math.min(cols - 1, Math.max(0, (c + 0.5) / f - 0.5));
        const c0 = Math.floor(u);
        const c1 = Math.min(cols - 1, c0 + 1);
        const fc = u - c0;
        const a = img[base + r0 * cols + c0]! * (1 - fc) + img[base + r0 * cols + c1]! * fc;
        const bb = img[base + r1 * cols + c0]! * (1 - fc) + img[base + r1 * cols + c1]! * fc;
        out[obase + r * C + c] = a * (1 - fr) + bb * fr;
      }
    }
  }
  return out;
}

/** Scales to stored integers: value = round(signal * gain / slope), clipped to the stored bit depth. */
export function quantise(img: Float32Array, gain: number, slope: number, bitsStored: number): Uint16Array {
  const max = bitsStored >= 16 ? 32767 : (1 << bitsStored) - 1;
  const out = new Uint16Array(img.length);
  const k = gain / slope;
  for (let i = 0; i < img.length; i++) {
    const v = Math.round(img[i]! * k);
    out[i] = v < 0 ? 0 : v > max ? max : v;
  }
  return out;
}

/**
 * SWI processing of a magnitude image: multiplies by a phase mask that darkens paramagnetic sources (veins, blood
 * products) further, as the vendors' SWI reconstruction does with the high-pass filtered phase (mask^4). The
 * mask comes from the tissue's excess R2' over white matter's.
 */
export function swiPhaseMask(mag: Float32Array, m: TissueMaps, te: number, baseR2p: number): Float32Array {
  const out = new Float32Array(mag.length);
  for (let i = 0; i < mag.length; i++) out[i] = mag[i]! * Math.exp(-0.8 * te * Math.max(0, m.r2p[i]! - 2 * baseR2p));
  return out;
}

/** Minimum-intensity projection over a sliding slab of `slab` slices (SWI mIP), same slice count. */
export function minimumProjection(img: Float32Array, rows: number, cols: number, slices: number, slab: number): Float32Array {
  const n = rows * cols;
  const out = new Float32Array(img.length);
  const h = Math.floor(slab / 2);
  for (let k = 0; k < slices; k++) {
    const o = out.subarray(k * n, (k + 1) * n);
    o.set(img.subarray(k * n, (k + 1) * n));
    for (let j = Math.max(0, k - h); j <= Math.min(slices - 1, k + h); j++) {
      const src = img.subarray(j * n, (j + 1) * n);
      for (let i = 0; i < n; i++) if (src[i]! < o[i]!) o[i] = src[i]!;
    }
  }
  return out;
}

/**
 * High-pass filtered phase (radians, -pi..pi) of a gradient echo: paramagnetic sources shift it in proportion to
 * their excess R2' and the echo time; where the magnitude is at the noise floor the phase is uniform noise.
 * Returned as stored integers 0..4095 (value = (phase + pi) / 2pi * 4096).
 */
export function phaseImage(mag: Float32Array, m: TissueMaps, te: number, baseR2p: number, sigma: number, rng: Rng): Uint16Array {
  const out = new Uint16Array(mag.length);
  for (let i = 0; i < mag.length; i++) {
    const s = mag[i]!;
    const phi = -0.6 * te * Math.max(0, m.r2p[i]! - 2 * baseR2p);
    const re = s * Math.cos(phi) + sigma * rng.fastNormal();
    const im = s * Math.sin(phi) + sigma * rng.fastNormal();
    const p = Math.atan2(im, re);
    out[i] = Math.min(4095, Math.max(0, Math.round(((p + Math.PI) / (2 * Math.PI)) * 4096)));
  }
  return out;
}
