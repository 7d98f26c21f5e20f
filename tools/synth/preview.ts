// The preview montage: one row per study, a middle slice of each series resized to a fixed tile, with the
// sequence name on each tile and the ground truth (accession, findings) above the row. Written as a grey PNG.
import { PNG } from 'pngjs';
import { drawText, GLYPH_H } from './font';
import type { FindingLabel, GeneratedStudy, PreviewSlice } from './types';

/** Tile order; one tile per sequence (the first series of it), so a phase image or an SWI mIP makes no tile. */
const ORDER = ['LOCALIZER', 'T1', 'T2', 'FLAIR', 'DWI', 'ADC', 'SWI'];

export function findingSummary(f: FindingLabel): string {
  const name = f.type.replace(/_/g, ' ');
  const extra = f.grade ? ` FAZEKAS ${f.grade}` : f.midline_shift_mm ? ` MLS ${f.midline_shift_mm}MM` : '';
  return `${name} ${f.side === 'bilateral' ? '' : f.side + ' '}${f.location === f.side ? '' : f.location.replace(`${f.side} `, '')} ${f.size_mm}MM${extra}`.replace(/\s+/g, ' ');
}

function resize(p: PreviewSlice, tile: number): Uint8Array {
  const out = new Uint8Array(tile * tile);
  const s = Math.max(p.width, p.height) / tile;
  for (let y = 0; y < tile; y++) {
    for (let x = 0; x < tile; x++) {
      const sx = Math.min(p.width - 1, Math.floor((x + 0.5) * s));
      const sy = Math.min(p.height - 1, Math.floor((y + 0.5) * s));
      out[y * tile + x] = p.pixels[sy * p.width + sx]!;
    }
  }
  return out;
}

/** Builds a PNG (as bytes) for up to `maxStudies` studies. */
export function previewPng(studies: GeneratedStudy[], tile = 192): Buffer {
  const cols = ORDER.length;
  const header = 2 * (GLYPH_H + 3) + 4;
  const rowH = tile + header;
  const width = cols * tile;
  const height = Math.max(1, studies.length) * rowH;
  const grey = new Uint8Array(width * height);
  studies.forEach((st, r) => {
    const y0 = r * rowH;
    const truth = st.labels.normal ? 'NORMAL' : st.labels.findings.map(findingSummary).join('; ');
    drawText(grey, width, height, 4, y0 + 3, `${st.AccessionNumber} ${st.labels.age}${st.labels.sex} ${st.labels.model} ${st.labels.fieldStrength}T`, 200);
    drawText(grey, width, height, 4, y0 + 3 + GLYPH_H + 3, truth, 255);
    const firsts = st.preview.filter((p, i) => ORDER.includes(p.sequence) && st.preview.findIndex((q) => q.sequence === p.sequence) === i);
    const tiles = firsts.sort((a, b) => ORDER.indexOf(a.sequence) - ORDER.indexOf(b.sequence));
    tiles.slice(0, cols).forEach((p, c) => {
      const img = resize(p, tile);
      for (let y = 0; y < tile; y++) grey.set(img.subarray(y * tile, (y + 1) * tile), (y0 + header + y) * width + c * tile);
      drawText(grey, width, height, c * tile + 3, y0 + header + 3, p.label, 255);
    });
  });
  const png = new PNG({ width, height, colorType: 0, inputColorType: 0, bitDepth: 8, inputHasAlpha: false });
  png.data = Buffer.from(grey);
  return PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false });
}
