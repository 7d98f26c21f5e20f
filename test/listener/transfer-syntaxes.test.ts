// Every transfer syntax in the conformance statement is accepted and stored as received: JPEG Lossless SV1
// (dcmcjpeg), JPEG-LS lossless (dcmcjpls), RLE (dcmcrle), Deflated (dcmconv +td), JPEG 2000 lossless (dcmjs-codecs;
// Debian's DCMTK has no J2K encoder) and implicit VR little endian (storescu -xi).
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { instanceStorageKey } from '../../shared/studies';
import {
  COMPRESSED_TRANSFER_SYNTAX,
  compress,
  newUid,
  runTool,
  STORESCU_PROPOSE,
  storescu,
  transferSyntaxOf,
  writeMrInstance,
  type Compression,
} from '../helpers/dcmtk';
import { startHarness, tempDir, type Harness } from './harness';

let h: Harness;
let files: string;

beforeAll(async () => {
  h = await startHarness();
  files = tempDir('nt-ts-');
});

afterAll(async () => {
  await h.stop();
  rmSync(files, { recursive: true, force: true });
});

/** The bytes after the File Meta Information group: the data set as it travelled. */
function datasetBytes(file: string): Buffer {
  const buf = readFileSync(file);
  const groupLength = buf.readUInt32LE(128 + 4 + 8);
  return buf.subarray(128 + 4 + 12 + groupLength);
}

/** Equal, allowing the NULL byte that pads an odd-length deflated stream on the wire (PS3.5 A.5). */
function sameDataset(stored: Buffer, sent: Buffer): boolean {
  if (stored.equals(sent)) return true;
  return stored.length === sent.length + 1 && stored[stored.length - 1] === 0 && stored.subarray(0, sent.length).equals(sent);
}

/** storescu arguments proposing MR Image Storage with this one transfer syntax (a config file: no -x option does). */
function proposeOnly(transferSyntax: string): string[] {
  const cfg = path.join(files, `propose-${transferSyntax}.cfg`);
  writeFileSync(
    cfg,
    [
      '[[TransferSyntaxes]]', '[TS]', `TransferSyntax1 = ${transferSyntax}`,
      '[[PresentationContexts]]', '[MR]', 'PresentationContext1 = MRImageStorage\\TS',
      '[[Profiles]]', '[ONLY]', 'PresentationContexts = MR', '',
    ].join('\n'),
  );
  return ['-xf', cfg, 'ONLY'];
}

const KINDS: Compression[] = ['jpeg-lossless', 'jpeg-ls', 'rle', 'jpeg2000', 'deflated'];

test.each(KINDS)('%s instance is accepted and stored as received', async (kind) => {
  const study = newUid();
  const series = newUid();
  const source = path.join(files, `${kind}-src.dcm`);
  const sent = path.join(files, `${kind}.dcm`);
  const sop = writeMrInstance(source, { StudyInstanceUID: study, SeriesInstanceUID: series, rows: 96, columns: 96 });
  await compress(source, sent, kind);
  expect(await transferSyntaxOf(sent)).toBe(COMPRESSED_TRANSFER_SYNTAX[kind]);

  const r = await storescu(h.ae, [sent], [STORESCU_PROPOSE[kind]]);
  expect(r.statuses).toEqual([0]);

  const stored = path.join(h.dataDir, instanceStorageKey(study, series, sop));
  expect(await transferSyntaxOf(stored)).toBe(COMPRESSED_TRANSFER_SYNTAX[kind]);
  expect(sameDataset(datasetBytes(stored), datasetBytes(sent))).toBe(true);
  // A reference parser reads the whole stored file, pixel data included.
  const dump = await runTool('dcmdump', ['-q', stored]);
  expect(dump.code).toBe(0);
  expect(dump.stdout).toContain(sop);
});

test('JPEG Lossless Process 14 (1.2.840.10008.1.2.4.57, dcmcjpeg +el) is accepted when that is all the SCU proposes', async () => {
  // Lossless like SV1 and decoded by the worker; storescu has no option for it, so a config file proposes it alone.
  const study = newUid();
  const series = newUid();
  const source = path.join(files, 'jpeg57-src.dcm');
  const sent = path.join(files, 'jpeg57.dcm');
  const sop = writeMrInstance(source, { StudyInstanceUID: study, SeriesInstanceUID: series, rows: 96, columns: 96 });
  const enc = await runTool('dcmcjpeg', ['+el', source, sent]);
  expect(enc.code).toBe(0);
  expect(await transferSyntaxOf(sent)).toBe('1.2.840.10008.1.2.4.57');
  const r = await storescu(h.ae, [sent], proposeOnly('1.2.840.10008.1.2.4.57'));
  expect(r.statuses).toEqual([0]);
  const stored = path.join(h.dataDir, instanceStorageKey(study, series, sop));
  expect(await transferSyntaxOf(stored)).toBe('1.2.840.10008.1.2.4.57');
  expect(sameDataset(datasetBytes(stored), datasetBytes(sent))).toBe(true);
});

test.each([
  ['Explicit VR Big Endian (dcmconv +tb)', 'dcmconv', ['+tb'], '1.2.840.10008.1.2.2'],
  ['JPEG Baseline, lossy (dcmcjpeg +eb)', 'dcmcjpeg', ['+eb'], '1.2.840.10008.1.2.4.50'],
])('%s proposed alone is refused (result 4), and the log names the syntax', async (_name, tool, args, ts) => {
  const source = path.join(files, `refused-${ts}-src.dcm`);
  const sent = path.join(files, `refused-${ts}.dcm`);
  writeMrInstance(source, { StudyInstanceUID: newUid(), SeriesInstanceUID: newUid(), rows: 96, columns: 96 });
  const enc = await runTool(tool, [...args, source, sent]);
  expect(enc.code).toBe(0);
  expect(await transferSyntaxOf(sent)).toBe(ts);
  const r = await storescu(h.ae, [sent], proposeOnly(ts));
  expect(r.statuses).toEqual([]);
  expect(r.stdout + r.stderr).toMatch(/No Acceptable Presentation Contexts/i);
  const line = h.logLines.find((l) => l.includes('"msg":"MR presentation contexts refused"') && l.includes(ts));
  expect(line).toBeDefined();
  expect(JSON.parse(line as string)).toMatchObject({
    callingAeTitle: h.ae.callingAe,
    acceptedMr: false,
    refused: [{ abstractSyntax: '1.2.840.10008.5.1.4.1.1.4', transferSyntaxes: [ts], result: 'transfer-syntaxes-not-supported' }],
  });
});

test('implicit VR little endian is accepted when that is all the SCU proposes', async () => {
  const study = newUid();
  const series = newUid();
  const file = path.join(files, 'implicit.dcm');
  const sop = writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: series });
  const r = await storescu(h.ae, [file], ['-xi']);
  expect(r.statuses).toEqual([0]);
  const stored = path.join(h.dataDir, instanceStorageKey(study, series, sop));
  expect(await transferSyntaxOf(stored)).toBe('1.2.840.10008.1.2');
  const dump = await runTool('dcmdump', ['-q', stored]);
  expect(dump.code).toBe(0);
  expect(dump.stdout).toContain(study);
});

test('with DICOM_OTHER_STORAGE=reject a storage class other than MR is not negotiated', async () => {
  const rejecting = await startHarness({ DICOM_OTHER_STORAGE: 'reject' }, { redis: h.redis, dataDir: tempDir('nt-ts-reject-') });
  try {
    const file = path.join(files, 'ct.dcm');
    writeMrInstance(file, { StudyInstanceUID: newUid(), SeriesInstanceUID: newUid() });
    // dcmodify also updates MediaStorageSOPClassUID in the meta header.
    const mod = await runTool('dcmodify', ['-nb', '-m', '(0008,0016)=1.2.840.10008.5.1.4.1.1.2', file]);
    expect(mod.code).toBe(0);
    const r = await storescu(rejecting.ae, [file]);
    expect(r.statuses).toEqual([]);
    expect(r.stdout + r.stderr).toMatch(/no presentation context|No Acceptable Presentation Contexts|not supported/i);
  } finally {
    await rejecting.stop();
    rmSync(rejecting.dataDir, { recursive: true, force: true });
  }
});
