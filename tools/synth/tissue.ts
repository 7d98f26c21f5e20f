// Tissue parameters (proton density, T1, T2, ADC, fat fraction, reversible dephasing R2') at 1.5 T and 3 T,
// from the relaxometry literature rounded to what makes textbook contrast. Sequences turn these into signal.

export const enum T {
  AIR = 0,
  SCALP,
  BONE,
  MARROW,
  CSF,
  GM,
  WM,
  DEEP,
  PALLIDUM,
  DURA,
  VITREOUS,
  ORBIT_FAT,
  COUNT,
}

/** Per-tissue parameter columns, indexed by T. T1/T2 in ms, ADC in 10^-3 mm^2/s, R2' in 1/ms. */
export interface TissueTable {
  pd: Float64Array;
  t1: Float64Array;
  t2: Float64Array;
  adc: Float64Array;
  fat: Float64Array;
  /** Reversible (susceptibility) dephasing: 1/T2* = 1/T2 + R2'. Iron-rich pallidum is the darkest grey matter. */
  r2p: Float64Array;
}

type Row = [pd: number, t1_15: number, t1_3: number, t2_15: number, t2_3: number, adc: number, fat: number, r2p_15: number, r2p_3: number];

const ROWS: Record<number, Row> = {
  [T.AIR]: [0, 1000, 1000, 1, 1, 0, 0, 0, 0],
  [T.SCALP]: [0.9, 300, 380, 110, 95, 0.1, 0.75, 0.012, 0.024],
  [T.BONE]: [0.06, 500, 550, 8, 6, 0.3, 0, 0.3, 0.5],
  [T.MARROW]: [0.8, 320, 400, 95, 85, 0.1, 0.85, 0.02, 0.04],
  [T.CSF]: [1.0, 4000, 4300, 1800, 1500, 3.0, 0, 0.0005, 0.001],
  [T.GM]: [0.82, 1100, 1450, 95, 85, 0.85, 0, 0.004, 0.008],
  [T.WM]: [0.7, 650, 850, 72, 66, 0.72, 0, 0.003, 0.007],
  [T.DEEP]: [0.78, 1000, 1300, 85, 74, 0.78, 0, 0.006, 0.012],
  [T.PALLIDUM]: [0.74, 800, 1000, 62, 50, 0.75, 0, 0.015, 0.03],
  [T.DURA]: [0.3, 900, 1000, 30, 25, 0.5, 0, 0.01, 0.02],
  [T.VITREOUS]: [1.0, 3800, 4100, 1400, 1200, 2.9, 0, 0.0005, 0.001],
  [T.ORBIT_FAT]: [0.9, 260, 380, 90, 80, 0.05, 1, 0.012, 0.024],
};

export function tissueTable(fieldT: number): TissueTable {
  const n = T.COUNT;
  const table: TissueTable = {
    pd: new Float64Array(n),
    t1: new Float64Array(n),
    t2: new Float64Array(n),
    adc: new Float64Array(n),
    fat: new Float64Array(n),
    r2p: new Float64Array(n),
  };
  const hi = fieldT >= 2;
  for (let i = 0; i < n; i++) {
    const r = ROWS[i]!;
    table.pd[i] = r[0];
    table.t1[i] = hi ? r[2] : r[1];
    table.t2[i] = hi ? r[4] : r[3];
    table.adc[i] = r[5];
    table.fat[i] = r[6];
    table.r2p[i] = hi ? r[8] : r[7];
  }
  return table;
}

/** Extra R2' (1/ms) of paramagnetic and diamagnetic sources, scaling with the field: deoxygenated venous blood,
 *  deoxy- and intracellular methaemoglobin, haemosiderin, calcification, air-tissue interfaces at the skull base. */
export function susceptibilityR2p(fieldT: number): { vein: number; blood: number; lateBlood: number; haemosiderin: number; calcification: number; airBone: number } {
  const k = fieldT / 1.5;
  return { vein: 0.03 * k, blood: 0.05 * k, lateBlood: 0.006 * k, haemosiderin: 0.07 * k, calcification: 0.06 * k, airBone: 0.035 * k };
}
