// YBR_FULL_422 pixel data holds two samples a pixel (PS3.5 8.2.1), not SamplesPerPixel (3): the listener counts it
// so before Success, and the worker's size check must too. It counted three, so one such instance (acknowledged)
// was "cannot be read" and failed its whole study `corrupt`; now it is read and its series is the colour series it
// is (not scored, as for RGB). Every part real: the listener over a socket (tools/fuzz's DUL client), Redis, the
// worker.
import { walkDataset } from '../../services/listener/dataset-check';
import { axialPositions, makeSeries, phantom, uid } from '../../shared/imaging/synthetic';
import { splitPart10 } from '../../tools/fuzz/corpus';
import { DulClient } from '../../tools/fuzz/dul-client';
import { EXPLICIT_VR_LE, MR_IMAGE_STORAGE } from '../helpers/dcmtk';
import { CALLED_AE, CALLING_AE } from '../listener/harness';
import { studyEnded } from './helpers';
import { inlineJobDeps, listenerBeside, runWorker, workerParts } from './parts';

/** The data set as YBR_FULL_422: SamplesPerPixel 3, two samples' worth of pixel data (Pixel Data is last). */
function asYbrFull422(dataset: Buffer): Buffer {
  const out = Buffer.from(dataset);
  let pixel: { offset: number; headerLength: number; length: number } | undefined;
  walkDataset(dataset, EXPLICIT_VR_LE, (e) => {
    if (e.depth !== 0) return;
    if (e.tag === 0x00280002) out.writeUInt16LE(3, e.offset + e.headerLength);
    if (e.tag === 0x00280004) {
      expect(e.length).toBe(12);
      out.write('YBR_FULL_422', e.offset + e.headerLength, 'latin1');
    }
    if (e.tag === 0x7fe00010) pixel = e;
  });
  expect(pixel!.offset + pixel!.headerLength + pixel!.length).toBe(dataset.length);
  out.writeUInt32LE(2 * pixel!.length, pixel!.offset + 8);
  return Buffer.concat([out, Buffer.alloc(pixel!.length, 0x40)]);
}

describe('YBR_FULL_422 native pixel data (listener + worker, real parts)', () => {
  const parts = workerParts('ybr422');
  const listener = listenerBeside(parts);

  it('an acknowledged YBR_FULL_422 instance is read by the worker: the study ends as colour, not corrupt', async () => {
    const study = uid();
    const centre: [number, number, number] = [0, 10, 25];
    const files = makeSeries({ StudyInstanceUID: study, SeriesInstanceUID: `${study}.1`, positions: axialPositions(centre, 16, 5), intensity: phantom(centre, [15, 0, 40]) });
    const datasets = files.map((f, k) => (k === 5 ? asYbrFull422(splitPart10(f).dataset) : splitPart10(f).dataset));

    const deps = inlineJobDeps(parts);
    await runWorker(deps, async () => {
      const client = new DulClient('127.0.0.1', listener.port);
      expect((await client.associate(CALLING_AE, CALLED_AE, [{ id: 1, abstractSyntaxUID: MR_IMAGE_STORAGE, transferSyntaxUIDs: [EXPLICIT_VR_LE] }])).kind).toBe('accepted');
      const statuses: number[] = [];
      for (const dataset of datasets) statuses.push((await client.store(1, MR_IMAGE_STORAGE, walkDataset(dataset, EXPLICIT_VR_LE).SOPInstanceUID!, dataset)).status);
      await client.release();
      expect(statuses).toEqual(datasets.map(() => 0x0000));

      const { status, reason } = await studyEnded(parts.client, study);
      expect([status, reason?.split(':')[0]]).toEqual(['unsupported', 'colour']);
      expect(reason).toMatch(/SamplesPerPixel 3/);
    });
  }, 120_000);
});
