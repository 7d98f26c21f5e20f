// Seeded randomness for the synthetic cohort: one xoshiro128** stream per purpose (anatomy, findings, scanner,
// report, noise), each keyed by a SHA-256 of (seed, study index, purpose), so a study never depends on how many
// others were made before it, on which worker made it, or on the order its series were drawn.
import { createHash } from 'node:crypto';

/** Four 32-bit words from SHA-256 of the parts joined by '|'. */
export function hashWords(...parts: Array<string | number>): Uint32Array {
  const digest = createHash('sha256').update(parts.join('|')).digest();
  return new Uint32Array([digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8), digest.readUInt32LE(12)]);
}

/** xoshiro128** (Blackman & Vigna): small state, fast in 32-bit integer JS arithmetic, good statistical quality. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | null = null;

  constructor(...parts: Array<string | number>) {
    const w = hashWords(...parts);
    this.s0 = w[0]! | 0;
    this.s1 = w[1]! | 0;
    this.s2 = w[2]! | 0;
    this.s3 = w[3]! | 0;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Integer in [lo, hi] inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Picks by relative weight. */
  weighted<T>(items: ReadonlyArray<readonly [T, number]>): T {
    const total = items.reduce((s, [, w]) => s + w, 0);
    let r = this.next() * total;
    for (const [item, w] of items) {
      r -= w;
      if (r < 0) return item;
    }
    return items[items.length - 1]![0];
  }

  /** Standard normal (Box-Muller, caching the second value). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = this.next();
    while (u <= 1e-12) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Fisher-Yates shuffle of a copy. */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  /** One N(0, 1) value from the inverse-CDF table (see fillNormal). */
  fastNormal(): number {
    const u = this.nextU32();
    const k = u >>> 20;
    const t = NORMAL_TABLE;
    return t[k]! + (t[k + 1]! - t[k]!) * ((u & 0xfffff) / 0x100000);
  }

  /** Fills `out` with N(0, sigma^2) values: the hot loop of the Rician noise. Uses a 4096-entry inverse-CDF
   *  table with linear interpolation (tails cut at about 3.4 sigma), several times faster than Box-Muller. */
  fillNormal(out: Float32Array, sigma: number): void {
    const t = NORMAL_TABLE;
    for (let i = 0; i < out.length; i++) {
      const u = this.nextU32();
      const k = u >>> 20;
      const f = (u & 0xfffff) / 0x100000;
      out[i] = sigma * (t[k]! + (t[k + 1]! - t[k]!) * f);
    }
  }
}

/** Inverse standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9). */
function inverseNormal(p: number): number {
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const pl = 0.02425;
  if (p < pl) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  if (p > 1 - pl) return -inverseNormal(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

/** Normal quantiles at the centres of 4096 equal-probability cells, plus one guard entry. A constant. */
const NORMAL_TABLE: Float64Array = (() => {
  const t = new Float64Array(4097);
  for (let k = 0; k <= 4096; k++) t[k] = inverseNormal((Math.min(k, 4095) + 0.5) / 4096);
  return t;
})();

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** UID under the 2.25 root (PS3.5 B.2): the decimal of a 128-bit integer taken from SHA-256 of the parts. */
export function derivedUid(...parts: Array<string | number>): string {
  const w = hashWords('uid', ...parts);
  let v = 0n;
  for (const word of w) v = (v << 32n) | BigInt(word);
  return `2.25.${v.toString(10)}`;
}
