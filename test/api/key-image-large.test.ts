// Key images from large stored instances: the API reads an instance's header and then the one frame it renders,
// not the whole file, and refuses a frame too large to render before allocating for it. The instances here claim
// gigabytes of native pixel data held as sparse files (zeros, valid pixel values), so a whole-file read would fail
// (Node reads at most 2 GiB at once) or hold gigabytes per request.
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { PNG } from 'pngjs';
import { axialPositions, makeEnhancedSeries, makeSeries, uid, type SeriesSpec } from '../../shared/imaging/synthetic';
import { instanceStorageKey, keys } from '../../shared/studies';
import { COMPRESSED_TRANSFER_SYNTAX, compress, type Compression } from '../helpers/dcmtk';
import { startRedisClient, stopRedisClient } from '../helpers/redis-client';
import { READER, buildTestApp, testDeps } from './helpers';

let redis: Redis;
let app: FastifyInstance;
let dataDir: string;
const study = uid();

beforeAll(async () => {
  redis = await startRedisClient('producer');
  const deps = testDeps(redis);
  dataDir = deps.config.DATA_DIR;
  app = await buildTestApp(redis, { config: deps.config });
}, 60_000);

afterAll(async () => {
  await stopRedisClient(redis, app);
  // The sparse files claim about 10 GB: none is left behind.
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/**
 * Stores an instance made with 2 x 2 pixels whose header claims `rows` x `columns` (x `frames`): its Pixel Data (the
 * last element, explicit VR little endian) is given the claimed length and the file extended, sparse, to hold it.
 */
async function storeClaiming(series: string, sop: string, made: Uint8Array, rows: number, columns: number, frames = 1): Promise<void> {
  const pixelBytes = rows * columns * 2 * frames;
  const tag = Buffer.from(made.buffer, made.byteOffset, made.byteLength).lastIndexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x57, 0, 0]));
  const header = made.slice(0, tag + 12);
  new DataView(header.buffer).setUint32(tag + 8, pixelBytes, true);
  const key = instanceStorageKey(study, series, sop);
  mkdirSync(path.dirname(path.join(dataDir, key)), { recursive: true });
  const fd = openSync(path.join(dataDir, key), 'w');
  try {
    writeSync(fd, header);
    ftruncateSync(fd, header.byteLength + pixelBytes);
  } finally {
    closeSync(fd);
  }
  await redis.hset(keys.studyInstances(study), sop, key);
}

const spec = (SeriesInstanceUID: string, count: number, attributes: Record<string, unknown>): SeriesSpec => ({
  StudyInstanceUID: study, SeriesInstanceUID, rows: 2, columns: 2, positions: axialPositions([0, 0, 0], count, 5, 2, 2), intensity: () => 0, attributes,
});

describe('key images of large instances', () => {
  it('renders one frame of an enhanced instance over 2 GiB, reading that frame only', async () => {
    const series = uid();
    const frames = 20_000; // 256 x 256 x 16 bits each: 2.6 GB of pixel data
    await storeClaiming(series, `${series}.1`, makeEnhancedSeries(spec(series, 2, { Rows: 256, Columns: 256, NumberOfFrames: frames })), 256, 256, frames);
    const res = await app.inject({ url: `/api/v1/studies/${study}/images/${series}.1.png?frame=${frames}`, headers: READER });
    expect(res.statusCode).toBe(200);
    const png = PNG.sync.read(res.rawPayload);
    expect([png.width, png.height]).toEqual([256, 256]);
  });

  it('refuses a frame larger than 4096 x 4096 with 422 naming the limit, before allocating for it', async () => {
    const series = uid();
    // 40000 x 40000 x 16 bits: 3.2 GB stored, 6.4 GB as float32.
    await storeClaiming(series, `${series}.1`, makeSeries(spec(series, 1, { Rows: 40_000, Columns: 40_000 }))[0], 40_000, 40_000);
    const res = await app.inject({ url: `/api/v1/studies/${study}/images/${series}.1.png`, headers: READER });
    expect(res.statusCode).toBe(422);
    expect(res.json().detail).toBe(`frame 1 of instance ${series}.1 is 40000 x 40000 pixels, more than the 16777216 (4096 x 4096) a key image is rendered from`);
  });

  it('lists the slices of a series of instances over 2 GiB each from their headers', async () => {
    const series = uid();
    const made = makeSeries(spec(series, 2, { Rows: 33_000, Columns: 33_000 }));
    for (const [k, m] of made.entries()) await storeClaiming(series, `${series}.${k + 1}`, m, 33_000, 33_000);
    const res = await app.inject({ url: `/api/v1/studies/${study}/series/${series}/slices`, headers: READER });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ rows: 33_000, columns: 33_000, slices: [{ SOPInstanceUID: `${series}.1`, positionMm: 0 }, { SOPInstanceUID: `${series}.2`, positionMm: 5 }] });
  });
});

describe('every transfer syntax the listener accepts, read header first', () => {
  it('renders the same pixels as the uncompressed instance (an odd 3 x 5 matrix)', async () => {
    const series = uid();
    const [plain] = makeSeries({ ...spec(series, 1, {}), rows: 3, columns: 5, positions: axialPositions([0, 0, 0], 1, 5, 3, 5), intensity: (p) => 100 * p[0] + 7 * p[1] });
    const key = (sop: string) => path.join(dataDir, instanceStorageKey(study, series, sop));
    mkdirSync(path.dirname(key(`${series}.1`)), { recursive: true });
    writeFileSync(key(`${series}.1`), plain);
    await redis.hset(keys.studyInstances(study), `${series}.1`, instanceStorageKey(study, series, `${series}.1`));
    const render = (sop: string) => app.inject({ url: `/api/v1/studies/${study}/images/${sop}.png`, headers: READER });
    const reference = await render(`${series}.1`);
    expect(reference.statusCode).toBe(200);
    for (const [k, kind] of (Object.keys(COMPRESSED_TRANSFER_SYNTAX) as Compression[]).entries()) {
      const sop = `${series}.${k + 2}`;
      await compress(key(`${series}.1`), key(sop), kind);
      expect(readFileSync(key(sop)).includes(COMPRESSED_TRANSFER_SYNTAX[kind])).toBe(true);
      await redis.hset(keys.studyInstances(study), sop, instanceStorageKey(study, series, sop));
      const res = await render(sop);
      expect([kind, res.statusCode]).toEqual([kind, 200]);
      expect([kind, res.headers['x-window']]).toEqual([kind, reference.headers['x-window']]);
      expect(Buffer.compare(res.rawPayload, reference.rawPayload)).toBe(0);
    }
  });
});
