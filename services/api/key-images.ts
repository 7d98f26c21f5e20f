// Key images for the study view, from the instances the listener stored: one frame decoded with shared/imaging
// (the worker's own decoder: every transfer syntax it scores, rescale applied, MONOCHROME1 inverted), windowed to 8
// bits and written as a greyscale PNG with pngjs; and the slices of a series in stack order (the worker's stack
// code), so the reader can step through the neighbours of the key slice. Pixels only: nothing of the header (no
// name, no ID, no date) is drawn or written into the PNG.
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { PNG } from 'pngjs';
import { createPixelDecoder, DicomParseError, fileSource, groupSeries, readInstanceHeader, sourceGeometry, stackOfSeries, type DicomInstance, type PixelDecoder } from '../../shared/imaging';
import { monochrome1Reflection, readFrameBytes } from '../../shared/imaging/pixels';
import { dot, sub } from '../../shared/imaging/geometry';
import { keys, PURGED_FIELD } from '../../shared/studies';
import { HttpProblem } from './plugins/problems';

export interface Window {
  center: number;
  width: number;
}

export interface RenderedFrame {
  png: Buffer;
  rows: number;
  columns: number;
  window: Window;
}

export interface SeriesSlices {
  SeriesInstanceUID: string;
  rows: number;
  columns: number;
  /** [between rows, between columns] mm */
  pixelSpacing: [number, number];
  /** Ascending along the slice normal; positionMm is the distance from the first slice along it. */
  slices: { SOPInstanceUID: string; frame?: number; positionMm: number }[];
}

/** Window for MR, where stored windows are often absent or vendor-specific: the 1st to 99.5th percentile. */
export function autoWindow(values: Float32Array): Window {
  const sorted = Float32Array.from(values).sort();
  const lo = sorted[Math.floor(0.01 * (sorted.length - 1))];
  const hi = sorted[Math.floor(0.995 * (sorted.length - 1))];
  return { center: (lo + hi) / 2, width: Math.max(1, hi - lo) };
}

/** Linear VOI LUT (PS3.3 C.11.2.1.2 without the -0.5 offsets, which are below one grey level here) to 8 bits. */
export function windowTo8Bit(values: Float32Array, w: Window): Uint8Array {
  const lo = w.center - w.width / 2;
  const scale = 255 / w.width;
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = (values[i] - lo) * scale;
    out[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
  }
  return out;
}

export function greyPng(pixels: Uint8Array, columns: number, rows: number): Buffer {
  const png = new PNG({ width: columns, height: rows, colorType: 0, inputColorType: 0, bitDepth: 8, inputHasAlpha: false });
  png.data = Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength);
  return PNG.sync.write(png, { colorType: 0, inputColorType: 0, bitDepth: 8, inputHasAlpha: false });
}

/**
 * Largest frame rendered (Rows x Columns): 4096 x 4096, four times any MR matrix. Its float32 values, their sorted
 * copy for the automatic window and the PNG take about 200 MB; a header claiming more (65535 x 65535 would be 17 GB)
 * is refused before anything is allocated.
 */
export const MAX_RENDER_PIXELS = 4096 * 4096;

export interface KeyImageStore {
  render(StudyInstanceUID: string, SOPInstanceUID: string, opts: { frame?: number; window?: Window }): Promise<RenderedFrame>;
  slices(StudyInstanceUID: string, SeriesInstanceUID: string, containing?: string): Promise<SeriesSlices>;
}

/** Reads stored instances through the listener's Redis record (SOPInstanceUID -> storage key under DATA_DIR). */
export function createKeyImageStore(deps: { redis: Redis; dataDir: string }): KeyImageStore {
  let decoder: PixelDecoder | undefined;
  // A reader steps through one series at a time: its stack is kept for the next request, with the series' instance
  // records it was made from, so instances arriving or removed by retention since are not answered from it.
  const recent = new Map<string, { records: string; slices: SeriesSlices }>();

  /**
   * Retention deletes the files and then the study's instance records, so after a run an instance is simply not
   * known: a 404 "no stored instance" read as a fault. When the study carries retention's mark, say it is gone.
   */
  async function notStored(study: string, detail: string): Promise<HttpProblem> {
    const purgedAt = Number(await deps.redis.hget(keys.study(study), PURGED_FIELD));
    if (purgedAt > 0) {
      return new HttpProblem(410, `the images of study ${study} are no longer stored: retention deleted them on ${new Date(purgedAt).toISOString()} (RETENTION_DAYS); the PACS keeps them`);
    }
    return new HttpProblem(404, detail);
  }

  const gone = (what: string) => new HttpProblem(410, `${what} is no longer stored (retention removes images after RETENTION_DAYS)`);

  /**
   * The header only (up to Pixel Data): a frame's bytes are read on their own when it is rendered, so an enhanced
   * instance of hundreds of frames (or one over the 2 GiB a whole-file read allows) costs one frame, and a series'
   * slice list costs its headers.
   */
  async function read(storageKey: string, what: string): Promise<DicomInstance> {
    const file = path.join(deps.dataDir, storageKey);
    try {
      return await readInstanceHeader(fileSource(file, (await stat(file)).size), what);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw gone(what);
      if (err instanceof DicomParseError) throw new HttpProblem(422, `${what} is not a readable DICOM instance`);
      throw err;
    }
  }

  return {
    async render(study, sop, opts) {
      const storageKey = await deps.redis.hget(keys.studyInstances(study), sop);
      if (!storageKey) throw await notStored(study, `study ${study} has no stored instance ${sop}`);
      const instance = await read(storageKey, `instance ${sop}`);
      const frameNumber = opts.frame ?? 1;
      const frame = instance.frames[frameNumber - 1];
      if (!frame) throw new HttpProblem(400, `instance ${sop} has ${instance.frames.length} frame(s); frame ${frameNumber} does not exist`);
      const rows = instance.header.Rows ?? 0;
      const columns = instance.header.Columns ?? 0;
      if (rows * columns > MAX_RENDER_PIXELS) {
        throw new HttpProblem(422, `frame ${frameNumber} of instance ${sop} is ${rows} x ${columns} pixels, more than the ${MAX_RENDER_PIXELS} (4096 x 4096) a key image is rendered from`);
      }
      decoder ??= createPixelDecoder();
      await decoder.ready();
      const values = new Float32Array(rows * columns);
      try {
        // A deflated instance is read whole (its header cannot be found without inflating it): pixels in memory.
        if (instance.pixelData) decoder.decodeFrameInto(instance, frame, values, 0);
        else decoder.decodeFrameBytesInto(instance, frame, await readFrameBytes(instance, frame.index, new Map()), values, 0);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw gone(`instance ${sop}`);
        if ((err as NodeJS.ErrnoException).code) throw err;
        throw new HttpProblem(422, `frame ${frameNumber} of instance ${sop} cannot be decoded: ${(err as Error).message.split('\n')[0]}`);
      }
      // A window is given and reported in rescaled units; MONOCHROME1 is decoded reflected (K - value), so its
      // window is reflected the same way (and back for X-Window), which also draws high values dark as it must.
      const k = monochrome1Reflection(instance, frame);
      const reflect = (w: Window): Window => (k === undefined ? w : { center: k - w.center, width: w.width });
      const window = opts.window ? reflect(opts.window) : autoWindow(values);
      return { png: greyPng(windowTo8Bit(values, window), columns, rows), rows, columns, window: reflect(window) };
    },

    async slices(study, series, containing) {
      const stored = await deps.redis.hgetall(keys.studyInstances(study));
      // Storage keys are store/<Study>/<Series>/<SOP>.dcm (shared/studies.ts).
      const inSeries = Object.entries(stored).filter(([, k]) => path.posix.basename(path.posix.dirname(k)) === series);
      if (inSeries.length === 0) throw await notStored(study, `study ${study} has no stored instances of series ${series}`);
      // An instance the series does not hold would silently pick the default stack: say so instead.
      if (containing !== undefined && !inSeries.some(([sop]) => sop === containing)) {
        throw new HttpProblem(404, `series ${series} of study ${study} has no stored instance ${containing} (querystring/containing)`);
      }
      const cacheKey = `${study}/${series}/${containing ?? ''}`;
      const records = createHash('sha256').update(inSeries.map(([sop, k]) => `${sop}=${k}`).sort().join('\n')).digest('base64');
      const cached = recent.get(cacheKey);
      if (cached?.records === records) return cached.slices;
      const instances = await Promise.all(inSeries.map(([sop, k]) => read(k, `instance ${sop}`)));
      // The stack the key slice belongs to (a diffusion series splits by b-value), else the largest.
      const groups = groupSeries(instances);
      const group = groups.find((g) => g.frames.some((f) => f.instance.header.SOPInstanceUID === containing)) ?? groups.sort((a, b) => b.frames.length - a.frames.length)[0];
      // The worker keeps the last of frames at one position in a diffusion series without b-values (stackOfSeries):
      // the order that keeps the key slice is the one the worker used.
      const stack = (bLessDiffusion: boolean) => sourceGeometry(stackOfSeries(group, { minSlices: 2, minCoverageMm: 0 }, bLessDiffusion), series);
      let geometry;
      try {
        geometry = stack(false);
        if (containing && !geometry.slices.some((s) => s.SOPInstanceUID === containing)) geometry = stack(true);
      } catch (err) {
        throw new HttpProblem(422, `series ${series} has no slice geometry to step through: ${(err as Error).message}`);
      }
      const first = geometry.slices[0].ImagePositionPatient;
      const out: SeriesSlices = {
        SeriesInstanceUID: series,
        rows: geometry.rows,
        columns: geometry.columns,
        pixelSpacing: geometry.pixelSpacing,
        slices: geometry.slices.map((s) => ({
          SOPInstanceUID: s.SOPInstanceUID,
          ...(s.frame !== undefined ? { frame: s.frame } : {}),
          positionMm: Math.round(dot(sub(s.ImagePositionPatient, first), geometry.normal) * 100) / 100,
        })),
      };
      recent.set(cacheKey, { records, slices: out });
      while (recent.size > 8) recent.delete(recent.keys().next().value as string);
      return out;
    },
  };
}
