// The demo PACS of docker-compose (deploy/orthanc): real Orthanc with our orthanc.json (container paths and hosts
// swapped for this machine's, in a private network namespace) and our Lua auto-routing script, forwarding to a DCMTK storescp that stands in for
// the listener under its AE title. A study with an MR and a CT series arrives as MR only; a CT-only study is not
// forwarded; the REST API asks for the password from the environment.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dcmtkEnv, newUid, runTool, startPrivateStorescp, storescu, writeMrInstance, type PrivateStorescp } from '../helpers/dcmtk';
import { startInNetns, type NetnsServer } from '../helpers/netns';
import { ROOT } from './manifests';
import { waitFor } from './net';

const PASSWORD = 'test-only-password';
const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';

let dir: string;
let orthanc: NetnsServer | undefined;
let scp: PrivateStorescp | undefined;
let http: number;
let dicom: number;
let received: string;

async function rest(p: string, auth = true): Promise<Response> {
  const headers: Record<string, string> = auth ? { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` } : {};
  return fetch(`http://127.0.0.1:${http}${p}`, { headers });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'nt-orthanc-'));
  received = path.join(dir, 'received');
  for (const d of [received, path.join(dir, 'scp'), path.join(dir, 'pacs')]) mkdirSync(d);
  const config = JSON.parse(readFileSync(path.join(ROOT, 'deploy/orthanc/orthanc.json'), 'utf8'));
  // The listener's stand-in answers to the AE title the routing rule calls.
  scp = await startPrivateStorescp(config.DicomModalities.neurotriage.AET, received, path.join(dir, 'scp'));
  // Orthanc and storescp bind every interface, so each runs in a network namespace of its own; Orthanc reaches the
  // storescp through port 4300 in its namespace, and keeps the compose file's own ports there.
  Object.assign(config, {
    StorageDirectory: path.join(dir, 'db'),
    IndexDirectory: path.join(dir, 'db'),
    StableAge: 1,
    LuaScripts: [path.join(ROOT, 'deploy/orthanc/autoroute-mr.lua')],
  });
  Object.assign(config.DicomModalities.neurotriage, { Host: '127.0.0.1', Port: 4300 });
  writeFileSync(path.join(dir, 'orthanc.json'), JSON.stringify(config));
  orthanc = await startInNetns({
    socketDir: path.join(dir, 'pacs'),
    command: 'Orthanc',
    args: [path.join(dir, 'orthanc.json')],
    env: { ...dcmtkEnv(), ORTHANC_ADMIN_PASSWORD: PASSWORD },
    listen: { http: config.HttpPort, dicom: config.DicomPort },
    reach: { listener: { inner: 4300, outer: scp.port } },
  });
  ({ http, dicom } = orthanc.ports);
  const up = await waitFor('Orthanc to answer', async () => {
    if (orthanc!.child.exitCode !== null) return 'exited' as const;
    return (await rest('/system').catch(() => undefined))?.ok ? ('up' as const) : undefined;
  });
  if (up !== 'up') throw new Error(`Orthanc exited: ${orthanc.stderr()}`);
}, 60_000);

afterAll(async () => {
  await Promise.all([orthanc?.stop(), scp?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

test('the REST API needs the password taken from ORTHANC_ADMIN_PASSWORD', async () => {
  expect((await rest('/system', false)).status).toBe(401);
  expect((await rest('/system')).status).toBe(200);
});

test('a stable study is forwarded to neurotriage with its MR series only; a CT-only study is not', async () => {
  const mixed = newUid();
  const ctOnly = newUid();
  const files = path.join(dir, 'in');
  mkdirSync(files);
  const mr = [1, 2].map((n) => writeMrInstance(path.join(files, `mr${n}.dcm`), { StudyInstanceUID: mixed, SeriesInstanceUID: `${mixed}.1`, InstanceNumber: n }));
  const ct: string[] = [];
  for (const [study, name] of [[mixed, 'ct1'], [ctOnly, 'ct2']] as const) {
    const file = path.join(files, `${name}.dcm`);
    ct.push(writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: `${study}.2`, SeriesNumber: 2 }));
    // dcmodify updates MediaStorageSOPClassUID in the meta header with the SOP Class UID.
    const r = await runTool('dcmodify', ['-nb', '-m', '(0008,0060)=CT', '-m', `(0008,0016)=${CT_IMAGE_STORAGE}`, file]);
    expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: '' });
  }
  const sent = await storescu({ port: dicom, callingAe: 'MODALITY', calledAe: 'ORTHANC' }, readdirSync(files).map((f) => path.join(files, f)));
  expect(sent.statuses).toEqual([0, 0, 0, 0]);

  // Both studies become stable and every forwarding job Orthanc started has finished.
  await waitFor('both studies to be stable', async () => {
    const studies = (await (await rest('/studies?expand')).json()) as { IsStable: boolean }[];
    return studies.length === 2 && studies.every((s) => s.IsStable) ? true : undefined;
  });
  await waitFor('the MR instances at the listener', () => (readdirSync(received).length >= mr.length ? true : undefined));
  await waitFor('forwarding jobs to finish', async () => {
    const jobs = (await (await rest('/jobs?expand')).json()) as { State: string }[];
    return jobs.every((j) => j.State === 'Success') ? true : undefined;
  });
  const jobs = (await (await rest('/jobs?expand')).json()) as { Type: string }[];
  expect(jobs.map((j) => j.Type)).toEqual(['DicomModalityStore']);

  // storescp names each file <modality prefix>.<SOPInstanceUID>.
  const got = readdirSync(received).map((f) => f.replace(/^[A-Z]+\./, '')).sort();
  expect(got).toEqual([...mr].sort());
  for (const uid of ct) expect(got).not.toContain(uid);
}, 60_000);
