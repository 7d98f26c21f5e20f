// Evaluation metrics for triage queries: ROC curve and AUC (ties counted half), sensitivity and specificity at a
// threshold, expected calibration error (equal-width probability bins).

export interface RocPoint {
  fpr: number;
  tpr: number;
}

export function roc(scores: number[], labels: boolean[]): { auc: number; points: RocPoint[] } {
  const pos = labels.filter(Boolean).length;
  const neg = labels.length - pos;
  if (pos === 0 || neg === 0) return { auc: NaN, points: [] };
  const order = scores.map((s, i) => [s, labels[i]] as const).sort((a, b) => b[0] - a[0]);
  const points: RocPoint[] = [{ fpr: 0, tpr: 0 }];
  let tp = 0;
  let fp = 0;
  let auc = 0;
  for (let i = 0; i < order.length; ) {
    let dtp = 0;
    let dfp = 0;
    const s = order[i][0];
    for (; i < order.length && order[i][0] === s; i++) {
      if (order[i][1]) dtp++;
      else dfp++;
    }
    // Trapezoid over a run of tied scores = counting ties as half.
    auc += (dfp / neg) * ((tp + dtp / 2) / pos);
    tp += dtp;
    fp += dfp;
    points.push({ fpr: fp / neg, tpr: tp / pos });
  }
  return { auc, points };
}

export function sensSpec(scores: number[], labels: boolean[], threshold: number): { sensitivity: number; specificity: number } {
  let tp = 0;
  let fn = 0;
  let tn = 0;
  let fp = 0;
  scores.forEach((s, i) => {
    const flagged = s >= threshold;
    if (labels[i] && flagged) tp++;
    else if (labels[i]) fn++;
    else if (flagged) fp++;
    else tn++;
  });
  return { sensitivity: tp / (tp + fn), specificity: tn / (tn + fp) };
}

export function expectedCalibrationError(probabilities: number[], labels: boolean[], bins = 10): number {
  let ece = 0;
  for (let b = 0; b < bins; b++) {
    const idx = probabilities.map((p, i) => [p, i] as const).filter(([p]) => (b === 0 ? p >= 0 : p > b / bins) && p <= (b + 1) / bins).map(([, i]) => i);
    if (idx.length === 0) continue;
    const conf = idx.reduce((s, i) => s + probabilities[i], 0) / idx.length;
    const acc = idx.filter((i) => labels[i]).length / idx.length;
    ece += (idx.length / probabilities.length) * Math.abs(conf - acc);
  }
  return ece;
}
