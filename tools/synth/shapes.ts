// The head phantom's brain shapes as signed distances in template space (mm, LPS; negative inside): cerebrum,
// cerebellum, brainstem and their smooth union. phantom.ts renders them; anatomy.ts uses them to place lesions
// that must touch a surface (juxtacortical plaques, dural-based meningiomas).

/** Approximate signed distance to an ellipsoid (Quilez): exact on the axes, good near the surface. */
export function sdEllipsoid(x: number, y: number, z: number, cx: number, cy: number, cz: number, rx: number, ry: number, rz: number): number {
  const px = x - cx;
  const py = y - cy;
  const pz = z - cz;
  const k0 = Math.sqrt((px * px) / (rx * rx) + (py * py) / (ry * ry) + (pz * pz) / (rz * rz));
  const k1 = Math.sqrt((px * px) / (rx * rx * rx * rx) + (py * py) / (ry * ry * ry * ry) + (pz * pz) / (rz * rz * rz * rz));
  if (k1 < 1e-9) return -Math.min(rx, ry, rz);
  return (k0 * (k0 - 1)) / k1;
}

export function smin(a: number, b: number, k: number): number {
  const h = Math.max(k - Math.abs(a - b), 0) / k;
  return Math.min(a, b) - (h * h * k) / 4;
}

export function smax(a: number, b: number, k: number): number {
  return -smin(-a, -b, k);
}

/** Cerebrum: an ellipsoid with a skull-base floor, plus the two temporal lobes. */
export function sdCerebrum(x: number, y: number, z: number): number {
  let d = sdEllipsoid(x, y, z, 0, 4, 14, 66, 84, 58);
  const floor = y < 22 ? -22 : Math.min(-8, -22 + (y - 22) * 0.35);
  d = smax(d, floor - z, 6);
  const ax = Math.abs(x);
  const t = sdEllipsoid(ax, y, z, 42, -4, -16, 24, 40, 20);
  return smin(d, t, 10);
}

export function sdCerebellum(x: number, y: number, z: number): number {
  return sdEllipsoid(x, y, z, 0, 52, -36, 48, 27, 21);
}

export function sdStem(x: number, y: number, z: number): number {
  return sdEllipsoid(x, y, z, 0, 18, -28, 12, 13, 30);
}

/** The whole brain (before atrophy or mass effect): the cranial cavity is this surface pushed out by the CSF gap. */
export function sdBrainUnion(x: number, y: number, z: number): number {
  return smin(smin(sdCerebrum(x, y, z), sdCerebellum(x, y, z), 8), sdStem(x, y, z), 6);
}

/**
 * Where a ray from `origin` (inside) along the unit vector `dir` first reaches the level set sd = level, or null
 * if it does not within `maxMm`. Marches in 1 mm steps, then bisects to 0.05 mm.
 */
export function rayToLevel(sd: (x: number, y: number, z: number) => number, origin: readonly [number, number, number], dir: readonly [number, number, number], level: number, maxMm = 150): [number, number, number] | null {
  const at = (t: number): [number, number, number] => [origin[0] + dir[0] * t, origin[1] + dir[1] * t, origin[2] + dir[2] * t];
  const f = (t: number): number => {
    const p = at(t);
    return sd(p[0], p[1], p[2]) - level;
  };
  if (f(0) >= 0) return null;
  let lo = 0;
  for (let t = 1; t <= maxMm; t++) {
    if (f(t) >= 0) {
      let hi = t;
      while (hi - lo > 0.05) {
        const mid = (lo + hi) / 2;
        if (f(mid) >= 0) hi = mid;
        else lo = mid;
      }
      return at((lo + hi) / 2);
    }
    lo = t;
  }
  return null;
}
