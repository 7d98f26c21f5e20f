// Draws training curves as a PNG with pngjs: one polyline per series over a shared x range, the y axis from 0 to
// the largest value, horizontal grid lines at quarters. Names and scales go in the model card beside the image.
import { PNG } from 'pngjs';

export interface Series {
  points: { x: number; y: number }[];
  rgb: [number, number, number];
}

export function curvePng(series: Series[], width = 480, height = 240, margin = 10): Buffer {
  const w = width + 2 * margin;
  const h = height + 2 * margin;
  const png = new PNG({ width: w, height: h });
  png.data.fill(255);
  const all = series.flatMap((s) => s.points);
  const xMin = Math.min(...all.map((p) => p.x));
  const xMax = Math.max(...all.map((p) => p.x));
  const yMax = Math.max(...all.map((p) => p.y)) || 1;
  const set = (x: number, y: number, rgb: [number, number, number]) => {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    const i = (y * w + x) * 4;
    png.data[i] = rgb[0];
    png.data[i + 1] = rgb[1];
    png.data[i + 2] = rgb[2];
    png.data[i + 3] = 255;
  };
  const px = (p: { x: number; y: number }) =>
    [Math.round(margin + ((p.x - xMin) / (xMax - xMin || 1)) * width), Math.round(margin + (1 - p.y / yMax) * height)] as const;
  const line = (a: { x: number; y: number }, b: { x: number; y: number }, rgb: [number, number, number], thick = 1) => {
    const [x0, y0] = px(a);
    const [x1, y1] = px(b);
    const n = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
    for (let k = 0; k <= n; k++) {
      const x = Math.round(x0 + ((x1 - x0) * k) / n);
      const y = Math.round(y0 + ((y1 - y0) * k) / n);
      for (let dx = -thick + 1; dx < thick; dx++) for (let dy = -thick + 1; dy < thick; dy++) set(x + dx, y + dy, rgb);
    }
  };
  for (let g = 0; g <= 4; g++) line({ x: xMin, y: (yMax * g) / 4 }, { x: xMax, y: (yMax * g) / 4 }, g === 0 ? [150, 150, 150] : [225, 225, 225]);
  for (const s of series) for (let i = 1; i < s.points.length; i++) line(s.points[i - 1], s.points[i], s.rgb, 2);
  return PNG.sync.write(png);
}
