// Failure statuses: a malformed data set gets a failure status while the association and the process stay up
// (sent raw with dcmjs-dimse's Client, since storescu will not send what it cannot parse); free disk below the
// watermark answers A700 and leaves nothing behind; the association limit rejects with "local limit exceeded".
import net from 'node:net';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { Client, Dataset, requests } from 'dcmjs-dimse';
import { readRefusals } from '../../shared/refusals';
import { keys } from '../../shared/studies';
import { echoscu, MR_IMAGE_STORAGE, newUid, storescu, writeMrInstance } from '../helpers/dcmtk';
import { CALLED_AE, CALLING_AE, leftoverTempFiles, listFiles, metricsText, startHarness, tempDir, type Harness } from './harness';

/** dcmjs-dimse's Client proposes implicit VR first and transcodes to it, so raw bytes are written implicit too. */
const IMPLICIT_VR_LE = '1.2.840.10008.1.2';

let files: string;
beforeAll(() => {
  files = tempDir('nt-fail-');
});
afterAll(() => rmSync(files, { recursive: true, force: true }));

interface RawStore {
  /** The data set bytes to put on the wire instead of the dataset's own encoding; undefined sends it as is. */
  wire?: Buffer;
  elements: Record<string, unknown>;
}

/** Sends C-STOREs on one association with dcmjs-dimse's Client; resolves with each response status in order. */
function sendRaw(port: number, stores: RawStore[]): Promise<{ statuses: number[]; rejected: boolean }> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    const statuses: number[] = new Array(stores.length).fill(-1);
    let rejected = false;
    stores.forEach((s, i) => {
      const dataset = new Dataset(s.elements, IMPLICIT_VR_LE);
      if (s.wire) {
        const wire = s.wire;
        (dataset as unknown as { getDenaturalizedDataset: () => Buffer }).getDenaturalizedDataset = () => wire;
      }
      const request = new requests.CStoreRequest(dataset);
      request.on('response', (response: { getStatus(): number }) => {
        statuses[i] = response.getStatus();
      });
      client.addRequest(request);
    });
    client.on('associationRejected', () => {
      rejected = true;
    });
    client.on('networkError', (err: Error) => reject(err));
    client.on('closed', () => resolve({ statuses, rejected }));
    client.send('127.0.0.1', port, CALLING_AE, CALLED_AE);
  });
}

/** The smallest MR image the listener stores: the UIDs and a 2x2 16-bit image. */
function mrElements(study = newUid(), series = newUid(), sop = newUid()): Record<string, unknown> {
  return {
    SOPClassUID: MR_IMAGE_STORAGE,
    SOPInstanceUID: sop,
    StudyInstanceUID: study,
    SeriesInstanceUID: series,
    Modality: 'MR',
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: 2,
    Columns: 2,
    BitsAllocated: 16,
    BitsStored: 16,
    HighBit: 15,
    PixelRepresentation: 0,
    PixelData: [new Uint16Array([1, 2, 3, 4]).buffer],
    _vrMap: { PixelData: 'OW' },
  };
}

describe('with a working store', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ DICOM_MAX_ASSOCIATIONS: 1 });
  });
  afterAll(() => h.stop());

  test('malformed data sets get failure statuses; the association and the process stay up', async () => {
    const good = mrElements();
    // (0008,0016) claiming 0xFFFF bytes: the data set ends inside its first element.
    const truncated = Buffer.from([0x08, 0x00, 0x16, 0x00, 0xff, 0xff, 0x00, 0x00, 0x31, 0x2e, 0x32, 0x00]);
    const noStudy = mrElements();
    delete noStudy.StudyInstanceUID;
    const otherInstance = mrElements();
    const mismatched = new Dataset({ ...otherInstance, SOPInstanceUID: newUid() }, IMPLICIT_VR_LE).getDenaturalizedDataset();
    const pathUid = mrElements();
    pathUid.StudyInstanceUID = '../../etc';
    // The data set carries no SOP Class UID at all: a required UID missing (C000), not one that differs (A900).
    const noClass = mrElements();
    const withoutClass = { ...noClass };
    delete withoutClass.SOPClassUID;
    const classless = new Dataset(withoutClass, IMPLICIT_VR_LE).getDenaturalizedDataset();
    // A sender that puts something else than a UID (here shaped like a patient ID) in the instance UID.
    const notUid = mrElements();
    notUid.SOPInstanceUID = 'SYN99887766';

    const r = await sendRaw(h.ae.port, [
      { elements: mrElements(), wire: truncated },
      { elements: noStudy },
      { elements: otherInstance, wire: mismatched },
      { elements: pathUid },
      { elements: noClass, wire: classless },
      { elements: notUid },
      { elements: good },
    ]);
    expect(r.rejected).toBe(false);
    expect(r.statuses).toEqual([0xc000, 0xc000, 0xa900, 0xc000, 0xc000, 0xc000, 0x0000]);
    // Each failure is logged; the non-UID value is not (it could be an identifier), a real UID is.
    const failures = h.logLines.filter((l) => l.includes('"msg":"C-STORE failed"'));
    expect(failures).toHaveLength(6);
    expect(h.logLines.some((l) => l.includes('SYN99887766'))).toBe(false);
    expect(failures.some((l) => l.includes('"SOPInstanceUID":"(not a UID)"'))).toBe(true);
    expect(failures.some((l) => l.includes(`"SOPInstanceUID":"${otherInstance.SOPInstanceUID as string}"`))).toBe(true);
    expect(await h.client.hexists(keys.studyInstances(good.StudyInstanceUID as string), good.SOPInstanceUID as string)).toBe(1);
    // Nothing of the refused ones reached the store, and no temp file is left.
    expect(listFiles(path.join(h.dataDir, 'store'))).toHaveLength(1);
    expect(leftoverTempFiles(h.dataDir)).toHaveLength(0);

    const echo = await echoscu(h.ae);
    expect(echo.code).toBe(0);
    const text = await metricsText(h.listener.metricsPort);
    expect(text).toMatch(/neurotriage_listener_instances_total\{outcome="MalformedDatasetError"\} 5/);
    expect(text).toMatch(/neurotriage_listener_instances_total\{outcome="DatasetMismatchError"\} 1/);
  });

  test('a refusal whose data set names its study and series is recorded for the study, per series and reason', async () => {
    const study = newUid();
    const t2 = newUid();
    const other = newUid();
    // Rows 3 over the pixel data of a 2x2 image: the image attributes do not match the pixel data (A900).
    const badImages = [1, 2, 3].map(() => ({ ...mrElements(study, t2), Rows: 3 }));
    const mismatchedInstance = mrElements(study, other);
    const mismatchedWire = new Dataset({ ...mismatchedInstance, SOPInstanceUID: newUid() }, IMPLICIT_VR_LE).getDenaturalizedDataset();
    // No SeriesInstanceUID: cannot be attributed to a series, so it stays in the log line and metrics only.
    const noSeries = mrElements(study);
    delete noSeries.SeriesInstanceUID;
    const good = mrElements(study, newUid());
    const records = async () => {
      const text = await metricsText(h.listener.metricsPort);
      return Object.fromEntries([...text.matchAll(/^neurotriage_listener_refusal_records_total\{outcome="([a-z-]+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
    };
    const before = await records();
    expect(Object.keys(before).sort()).toEqual(['counted', 'counted-before', 'error', 'record-full', 'unattributed']);
    const r = await sendRaw(h.ae.port, [
      ...badImages.map((elements) => ({ elements })),
      { elements: mismatchedInstance, wire: mismatchedWire },
      { elements: noSeries },
      { elements: good },
    ]);
    expect(r.statuses).toEqual([0xa900, 0xa900, 0xa900, 0xa900, 0xc000, 0x0000]);
    // The sender tries the refused instances again: each is counted once.
    const again = await sendRaw(h.ae.port, badImages.map((elements) => ({ elements })));
    expect(again.statuses).toEqual([0xa900, 0xa900, 0xa900]);
    const expected = [
      { SeriesInstanceUID: t2, refusal: 'invalid-image', status: 'A900', images: 3 },
      { SeriesInstanceUID: other, refusal: 'dataset-mismatch', status: 'A900', images: 1 },
    ].sort((a, b) => a.SeriesInstanceUID.localeCompare(b.SeriesInstanceUID));
    expect(await readRefusals(h.client, study)).toEqual(expected);
    const failures = h.logLines.filter((l) => l.includes('"msg":"C-STORE failed"') && (l.includes(t2) || l.includes('unattributed')));
    expect(failures.filter((l) => l.includes('"refusalRecord":"counted"'))).toHaveLength(3);
    expect(failures.filter((l) => l.includes('"refusalRecord":"counted-before"'))).toHaveLength(3);
    expect(failures.filter((l) => l.includes('"refusalRecord":"unattributed"')).length).toBeGreaterThanOrEqual(1);
    // The same outcomes on /metrics, so a cap reached (record-full) is seen without reading logs.
    const after = await records();
    expect({ counted: after.counted - before.counted, again: after['counted-before'] - before['counted-before'], full: after['record-full'] - before['record-full'] })
      .toEqual({ counted: 4, again: 3, full: 0 });
    expect(after.unattributed - before.unattributed).toBeGreaterThanOrEqual(1);
  });

  test('header UIDs that start past the first 64 KB (after a long element) are still read', async () => {
    // The listener reads the header from the first 64 KB and only then from everything it kept; group 0010 comes
    // before StudyInstanceUID and SeriesInstanceUID (group 0020).
    const study = newUid();
    const sop = newUid();
    const elements = { ...mrElements(study, newUid(), sop), PatientComments: 'x'.repeat(200_000) };
    const r = await sendRaw(h.ae.port, [{ elements }]);
    expect(r.statuses).toEqual([0x0000]);
    expect(await h.client.hexists(keys.studyInstances(study), sop)).toBe(1);
  });

  test('an association beyond DICOM_MAX_ASSOCIATIONS is rejected as local limit exceeded', async () => {
    // dcmjs-dimse's Client holds its association open for the linger time after its C-ECHO: the one slot is taken.
    const holder = new Client();
    const accepted = new Promise<void>((resolve) => holder.on('associationAccepted', () => resolve()));
    const closed = new Promise<void>((resolve) => holder.on('closed', () => resolve()));
    const hold = new requests.CEchoRequest();
    holder.addRequest(hold);
    holder.send('127.0.0.1', h.ae.port, CALLING_AE, CALLED_AE, { associationLingerTimeout: 1000 });
    await accepted;
    const second = await echoscu(h.ae);
    expect(second.associationRejected).toBe(true);
    expect(second.stdout + second.stderr).toMatch(/Local Limit Exceeded/i);
    await closed;
    const text = await metricsText(h.listener.metricsPort);
    expect(text).toMatch(/neurotriage_listener_associations_total\{result="rejected",reason="local-limit-exceeded"\} 1/);
  });
});

describe('with free disk below DISK_MIN_FREE_MB', () => {
  let h: Harness;
  beforeAll(async () => {
    // No disk has a petabyte free: every instance is below the watermark.
    h = await startHarness({ DISK_MIN_FREE_MB: 1e9 });
  });
  afterAll(() => h.stop());

  test('C-STORE answers A700 (Out of Resources) and leaves nothing half-written', async () => {
    const study = newUid();
    const file = path.join(files, 'low-disk.dcm');
    writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: newUid(), rows: 128, columns: 128 });
    // -nh: keep sending after a failed store, as a PACS retry queue would.
    const r = await storescu(h.ae, [file, file], ['-nh']);
    expect(r.statuses).toEqual([0xa700, 0xa700]);
    expect(listFiles(path.join(h.dataDir, 'store'))).toEqual([]);
    expect(leftoverTempFiles(h.dataDir)).toEqual([]);
    expect(await h.client.exists(keys.study(study))).toBe(0);
    const echo = await echoscu(h.ae);
    expect(echo.code).toBe(0);
  });
});

test('with Redis unreachable a C-STORE answers A700, never Success, and the listener stays up', async () => {
  const h = await startHarness();
  try {
    const file = path.join(files, 'no-redis.dcm');
    writeMrInstance(file, { StudyInstanceUID: newUid(), SeriesInstanceUID: newUid() });
    await h.redis.stop();
    const r = await storescu(h.ae, [file, file], ['-nh']);
    expect(r.statuses).toEqual([0xa700, 0xa700]);
    expect(leftoverTempFiles(h.dataDir)).toEqual([]);
    const echo = await echoscu(h.ae);
    expect(echo.code).toBe(0);
    // Stopping the listener removes its unused pooled temp files too.
    await h.stopListener();
    expect(listFiles(path.join(h.dataDir, 'tmp'))).toEqual([]);
  } finally {
    await h.stop();
  }
});

test('raw TCP garbage instead of an A-ASSOCIATE-RQ gets A-ABORT and closes that connection only', async () => {
  const h = await startHarness();
  try {
    const received = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      const socket = net.connect(h.ae.port, '127.0.0.1', () => socket.end(Buffer.from('GET / HTTP/1.0\r\n\r\n')));
      socket.on('data', (d: Buffer) => chunks.push(d));
      socket.on('error', () => resolve(Buffer.concat(chunks)));
      socket.on('close', () => resolve(Buffer.concat(chunks)));
    });
    // A-ABORT, source 2 (service provider), reason 1 (unrecognised PDU).
    expect([...received]).toEqual([0x07, 0, 0, 0, 0, 4, 0, 0, 2, 1]);
    const echo = await echoscu(h.ae);
    expect(echo.code).toBe(0);
  } finally {
    await h.stop();
  }
});
