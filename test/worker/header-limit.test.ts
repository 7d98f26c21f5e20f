// The worker reads an instance's header (everything before Pixel Data) up to 64 MB and fails the study `too-large`
// past that (shared/imaging/limits.ts). The listener used to acknowledge such an instance (a huge private element
// is well-formed), so one of them failed a whole study whose every instance had been answered Success. Now the
// listener refuses it (C000) and the association carries on; the study is scored from the rest and lists the
// refusal; an instance just under the listener's bound is acknowledged and read by the worker. A deflated file the
// worker reads whole, so a deflated data set over the bound is refused too. Every part real: the listener over a
// socket (tools/fuzz's DUL client, byte for byte), Redis, the worker.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { resultKeys, type StudyResult } from '../../shared/results';
import { studyStorageKey } from '../../shared/studies';
import { MAX_DATASET_HEADER_BYTES } from '../../shared/imaging/limits';
import { walkDataset } from '../../services/listener/dataset-check';
import { axialPositions, makeSeries, phantom } from '../../shared/imaging/synthetic';
import { splitPart10 } from '../../tools/fuzz/corpus';
import { DulClient } from '../../tools/fuzz/dul-client';
import { EXPLICIT_VR_LE, MR_IMAGE_STORAGE } from '../helpers/dcmtk';
import { CALLED_AE, CALLING_AE } from '../listener/harness';
import { studyEnded } from './helpers';
import { inlineJobDeps, listenerBeside, runWorker, workerParts } from './parts';
import { synthStudy } from './studies';

const CREATOR = 0x00990010;
const PRIVATE_BLOB = 0x00991010;

function element(tag: number, vr: string, value: Buffer): Buffer {
  const long = vr === 'OB';
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(tag >>> 16, 0);
  head.writeUInt16LE(tag & 0xffff, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(value.length, 8);
  else head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

/** The data set with a private OB inserted in tag order, sized so that Pixel Data's header ends `headerBytes` in. */
function withPrivateBlob(dataset: Buffer, headerBytes: number, fill: (size: number) => Buffer = (size) => Buffer.alloc(size)): Buffer {
  let insertAt = -1;
  let pixelHeaderEnd = -1;
  walkDataset(dataset, EXPLICIT_VR_LE, (e) => {
    if (e.depth === 0 && e.tag > PRIVATE_BLOB && insertAt < 0) insertAt = e.offset;
    if (e.depth === 0 && e.tag === 0x7fe00010) pixelHeaderEnd = e.offset + e.headerLength;
  });
  const creator = element(CREATOR, 'LO', Buffer.from('NT TEST ', 'latin1'));
  const size = headerBytes - pixelHeaderEnd - creator.length - 12;
  expect(size % 2).toBe(0);
  return Buffer.concat([dataset.subarray(0, insertAt), creator, element(PRIVATE_BLOB, 'OB', fill(size)), dataset.subarray(insertAt)]);
}

/** A small T2 series of its own in the study (the deflated case). */
function makeSeriesFor(StudyInstanceUID: string): Uint8Array[] {
  const centre: [number, number, number] = [0, 10, 25];
  return makeSeries({ StudyInstanceUID, SeriesInstanceUID: `${StudyInstanceUID}.77`, positions: axialPositions(centre, 2, 5), intensity: phantom(centre, [15, 0, 40]) });
}

describe('the worker header limit, checked by the listener before Success (listener + worker, real parts)', () => {
  const parts = workerParts('header-limit');
  const study = synthStudy(7717, 5, { fast: true });
  const listener = listenerBeside(parts);

  it('refuses a data set whose elements before Pixel Data pass the bound, acknowledges one at it, and the study is scored', async () => {
    const seriesOf = (sequence: string) => study.labels.series.find((s) => s.sequence === sequence)!.SeriesInstanceUID;
    const [t2, flair] = [seriesOf('T2'), seriesOf('FLAIR')];
    const pick = (series: string) => study.files.filter((f) => f.SeriesInstanceUID === series)[3].SOPInstanceUID;
    const [over, atBound] = [pick(t2), pick(flair)];
    const instances = study.files.map((f) => {
      const { dataset } = splitPart10(f.data);
      if (f.SOPInstanceUID === over) return { sop: f.SOPInstanceUID, dataset: withPrivateBlob(dataset, MAX_DATASET_HEADER_BYTES + 2) };
      if (f.SOPInstanceUID === atBound) return { sop: f.SOPInstanceUID, dataset: withPrivateBlob(dataset, MAX_DATASET_HEADER_BYTES) };
      return { sop: f.SOPInstanceUID, dataset };
    });
    // The oversized one in the middle of the association: the instances after it are stored as usual.
    const order = [...instances.filter((i) => i.sop !== over).slice(0, 5), instances.find((i) => i.sop === over)!, ...instances.filter((i) => i.sop !== over).slice(5)];

    const deps = inlineJobDeps(parts);
    await runWorker(deps, async () => {
      const client = new DulClient('127.0.0.1', listener.port);
      const association = await client.associate(CALLING_AE, CALLED_AE, [{ id: 1, abstractSyntaxUID: MR_IMAGE_STORAGE, transferSyntaxUIDs: [EXPLICIT_VR_LE] }]);
      expect(association.kind).toBe('accepted');
      const answers = [];
      for (const i of order) answers.push({ sop: i.sop, ...(await client.store(1, MR_IMAGE_STORAGE, i.sop, i.dataset)) });
      await client.release();
      for (const a of answers) {
        if (a.sop === over) expect(a).toEqual({ sop: over, status: 0xc000, errorComment: 'data set before Pixel Data larger than 64 MB' });
        else expect(a.status).toBe(0x0000);
      }

      const uid = study.StudyInstanceUID;
      // Its two 64 MB headers make this study slow to read on a loaded machine (8 s alone, past 90 s once in CI).
      expect(await studyEnded(parts.client, uid, 180_000)).toEqual({ status: 'scored', reason: null });
      const result = JSON.parse((await parts.client.get(resultKeys.result(uid)))!) as StudyResult;
      const line = (series: string) => result.series.find((s) => s.SeriesInstanceUID === series && s.used);
      // The refused slice is listed (and leaves a gap in the T2 stack).
      expect(line(t2)?.dropped).toEqual([{ images: 1, reason: 'missing-slices' }, { images: 1, reason: 'refused-at-intake', refusal: 'malformed-dataset', status: 'C000' }]);
      expect(line(flair)?.dropped ?? []).toEqual([]);
    });
  }, 300_000);

  it('refuses a deflated data set over the bound (the worker reads it whole) and stores the next one', async () => {
    const DEFLATED = '1.2.840.10008.1.2.1.99';
    const series = makeSeriesFor(study.StudyInstanceUID);
    const big = splitPart10(series[0]).dataset;
    // Random bytes do not deflate: the deflated data set is larger than the bound.
    const oversized = deflateRawSync(withPrivateBlob(big, MAX_DATASET_HEADER_BYTES + 2, () => randomBytes(MAX_DATASET_HEADER_BYTES)));
    expect(oversized.length).toBeGreaterThan(MAX_DATASET_HEADER_BYTES);
    const good = deflateRawSync(splitPart10(series[1]).dataset);
    const client = new DulClient('127.0.0.1', listener.port);
    expect((await client.associate(CALLING_AE, CALLED_AE, [{ id: 1, abstractSyntaxUID: MR_IMAGE_STORAGE, transferSyntaxUIDs: [DEFLATED] }])).kind).toBe('accepted');
    const sops = series.slice(0, 2).map((f) => walkDataset(splitPart10(f).dataset, EXPLICIT_VR_LE).SOPInstanceUID!);
    expect(await client.store(1, MR_IMAGE_STORAGE, sops[0], oversized)).toEqual({ status: 0xc000, errorComment: 'deflated data set larger than 64 MB' });
    expect(await client.store(1, MR_IMAGE_STORAGE, sops[1], good)).toEqual({ status: 0x0000 });
    await client.release();
    const dir = path.join(parts.dataDir, studyStorageKey(study.StudyInstanceUID), `${study.StudyInstanceUID}.77`);
    expect([existsSync(path.join(dir, `${sops[0]}.dcm`)), existsSync(path.join(dir, `${sops[1]}.dcm`))]).toEqual([false, true]);
  }, 120_000);
});
