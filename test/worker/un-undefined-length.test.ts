// A private sequence sent as UN of undefined length (PS3.5 6.2.2: its items in implicit VR little endian, as a node
// that does not know the private dictionary re-encodes it in explicit VR) is valid DICOM: DCMTK
// reads it, the listener acknowledges it, and the worker must read it too. dcmjs 0.50 cannot, so before the header
// parse gave it such elements as defined-length UN, one such instance failed its whole study as `corrupt`
// although the listener had answered Success (and the SR, reading the study's attributes from such an instance,
// failed as source-corrupt). Every part real: the listener over a socket, Redis, the worker.
// The instances go through tools/fuzz's DUL client, byte for byte: storescu re-encodes the element as an SQ.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { resultKeys, type StudyResult } from '../../shared/results';
import { walkDataset } from '../../services/listener/dataset-check';
import { loadSourceStudy } from '../../services/api/outbound/sr/source-study';
import { splitPart10 } from '../../tools/fuzz/corpus';
import { DulClient } from '../../tools/fuzz/dul-client';
import { EXPLICIT_VR_LE, MR_IMAGE_STORAGE, runTool } from '../helpers/dcmtk';
import { CALLED_AE, CALLING_AE } from '../listener/harness';
import { studyEnded } from './helpers';
import { inlineJobDeps, listenerBeside, runWorker, workerParts } from './parts';
import { synthStudy } from './studies';

const CREATOR = 0x00990010;
const PRIVATE_SEQUENCE = 0x00991010;

function element(tag: number, vr: string, length: number, value: Buffer = Buffer.alloc(0)): Buffer {
  const long = vr === 'UN';
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(tag >>> 16, 0);
  head.writeUInt16LE(tag & 0xffff, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(length >>> 0, 8);
  else head.writeUInt16LE(length, 6);
  return Buffer.concat([head, value]);
}

function implicit(tag: number, length: number, value: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16LE(tag >>> 16, 0);
  head.writeUInt16LE(tag & 0xffff, 2);
  head.writeUInt32LE(length >>> 0, 4);
  return Buffer.concat([head, value]);
}

/** The file with a private creator and a private UN of undefined length holding two items, in tag order. */
function withUndefinedLengthUn(file: Uint8Array): Buffer {
  const bytes = Buffer.from(file);
  const { dataset, transferSyntaxUID } = splitPart10(file);
  expect(transferSyntaxUID).toBe('1.2.840.10008.1.2.1');
  let insertAt = dataset.length;
  walkDataset(dataset, transferSyntaxUID, (e) => {
    if (e.depth === 0 && e.tag > PRIVATE_SEQUENCE && insertAt === dataset.length) insertAt = e.offset;
    if (e.depth === 0 && e.tag >>> 16 === 0x0099) throw new Error('group 0099 already used');
  });
  const code = implicit(0x00080100, 4, Buffer.from('T-1 ', 'latin1'));
  const sequence = Buffer.concat([
    element(PRIVATE_SEQUENCE, 'UN', 0xffffffff),
    implicit(0xfffee000, 0xffffffff), code, implicit(0xfffee00d, 0), // an undefined-length item
    implicit(0xfffee000, code.length), code, // a defined-length item
    implicit(0xfffee0dd, 0),
  ]);
  const at = bytes.length - dataset.length + insertAt;
  return Buffer.concat([bytes.subarray(0, at), element(CREATOR, 'LO', 8, Buffer.from('NT TEST ', 'latin1')), sequence, bytes.subarray(at)]);
}

describe('a private sequence as UN of undefined length (listener + worker, real parts)', () => {
  const parts = workerParts('un-undefined');
  const study = synthStudy(7717, 4, { fast: true });
  const listener = listenerBeside(parts);

  it('is acknowledged, read by the worker, and its study scored from every instance', async () => {
    const filesDir = path.join(parts.dataDir, 'outgoing');
    mkdirSync(filesDir, { recursive: true });
    const t2 = study.labels.series.find((s) => s.sequence === 'T2')!.SeriesInstanceUID;
    const t2Files = study.files.filter((f) => f.SeriesInstanceUID === t2);
    // One inside the T2 series, and the first of each series by SOP Instance UID: the one the SR reads the study's
    // attributes from (services/api/outbound/sr/source-study.ts).
    const changed = new Set([t2Files[Math.floor(t2Files.length / 2)].SOPInstanceUID]);
    for (const s of study.labels.series) changed.add(study.files.filter((f) => f.SeriesInstanceUID === s.SeriesInstanceUID).map((f) => f.SOPInstanceUID).sort((a, b) => a.localeCompare(b))[0]);
    const files = study.files.map((f) => {
      const data = changed.has(f.SOPInstanceUID) ? withUndefinedLengthUn(f.data) : Buffer.from(f.data);
      writeFileSync(path.join(filesDir, `${f.SOPInstanceUID}.dcm`), data);
      return splitPart10(data);
    });
    // DCMTK, the reference reader, reads the changed files whole, the private sequence as two items.
    const dump = await runTool('dcmdump', ['-q', '+P', '0099,1010', path.join(filesDir, `${[...changed][0]}.dcm`)]);
    expect(dump.code).toBe(0);
    expect(dump.stderr).toBe('');

    const deps = inlineJobDeps(parts);
    await runWorker(deps, async () => {
      const client = new DulClient('127.0.0.1', listener.port);
      const association = await client.associate(CALLING_AE, CALLED_AE, [{ id: 1, abstractSyntaxUID: MR_IMAGE_STORAGE, transferSyntaxUIDs: [EXPLICIT_VR_LE] }]);
      expect(association.kind).toBe('accepted');
      const statuses: number[] = [];
      for (const { dataset } of files) {
        const facts = walkDataset(dataset, EXPLICIT_VR_LE);
        statuses.push((await client.store(1, facts.SOPClassUID!, facts.SOPInstanceUID!, dataset)).status);
      }
      await client.release();
      expect(statuses).toEqual(files.map(() => 0x0000));
      const uid = study.StudyInstanceUID;
      expect(await studyEnded(parts.client, uid)).toEqual({ status: 'scored', reason: null });
      const result = JSON.parse((await parts.client.get(resultKeys.result(uid)))!) as StudyResult;
      const t2Line = result.series.find((s) => s.SeriesInstanceUID === t2);
      expect(t2Line).toMatchObject({ used: true, sequence: 'T2' });
      expect(t2Line?.dropped ?? []).toEqual([]);
      // The SR's source attributes are read from the stored instances too.
      const source = await loadSourceStudy({ redis: parts.client, dataDir: parts.dataDir }, uid);
      expect(source.attributes.StudyInstanceUID).toBe(uid);
      expect(source.series.map((s) => s.SeriesInstanceUID).sort()).toEqual(study.labels.series.map((s) => s.SeriesInstanceUID).sort());
    });
    rmSync(filesDir, { recursive: true, force: true });
  }, 180_000);
});
