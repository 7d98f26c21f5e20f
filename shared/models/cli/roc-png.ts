// Draws a ROC curve as a PNG with pngjs: unit square with a grid at 0.1, the chance diagonal in grey and the
// curve in blue. Text (query name, AUC) goes in the model card beside the image, not in the pixels.
import { PNG } from 'pngjs';
import type { RocPoint } from '../metrics';

export function rocPng(points: RocPoint[], size = 240, margin = 10): Buffer {
  const w = size + 2 * margin;
  const png = new PNG({ width: w, height: w });
  png.data.fill(255);
  const set = (x: number, y: number, rgb: [number, number, number]) => {
    if (x < 0 || y < 0 || x >= w || y >= w) return;
    const i = (y * w + x) * 4;
    png.data[i] = rgb[0];
    png.data[i + 1] = rgb[1];
    png.data[i + 2] = rgb[2];
    png.data[i + 3] = 255;
  };
  const px = (fpr: number, tpr: number) => [Math.round(margin + fpr * size), Math.round(margin + (1 - tpr) * size)] as const;
  const line = (a: RocPoint, b: RocPoint, rgb: [number, number, number], thick = 1) => {
    const [x0, y0] = px(a.fpr, a.tpr);
    const [x1, y1] = px(b.fpr, b.tpr);
    const n = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
    for (let k = 0; k <= n; k++) {
      const x = Math.round(x0 + ((x1 - x0) * k) / n);
      const y = Math.round(y0 + ((y1 - y0) * k) / n);
      for (let dx = -thick + 1; dx < thick; dx++) for (let dy = -thick + 1; dy < thick; dy++) set(x + dx, y + dy, rgb);
    }
  };
  for (let g = 0; g <= 10; g++) {
    const t = g / 10;
    const c: [number, number, number] = g % 5 === 0 ? [150, 150, 150] : [225, 225, 225];
    line({ fpr: t, tpr: 0 }, { fpr: t, tpr: 1 }, c);
    line({ fpr: 0, tpr: t }, { fpr: 1, tpr: t }, c);
  }
  line({ fpr: 0, tpr: 0 }, { fpr: 1, tpr: 1 }, [170, 170, 170]);
  for (let i = 1; i < points.length; i++) line(points[i - 1], points[i], [20, 70, 200], 2);
  return PNG.sync.write(png);
}
