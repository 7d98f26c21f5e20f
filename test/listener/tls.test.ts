// DICOM over TLS (PS3.15 B.1) against DCMTK's storescu built with OpenSSL: a peer with a client certificate from
// our CA stores over TLS; a peer without one, or speaking plain DICOM to the TLS port, never gets an association.
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { newUid, storescu, writeMrInstance } from '../helpers/dcmtk';
import { CALLING_AE, listFiles, metricsText, startHarness, tempDir, type Harness } from './harness';

let h: Harness;
let dir: string;
let tlsPort: number;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
function makeCertificates(): void {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=neurotriage test CA']);
  writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const who of ['server', 'client', CALLING_AE]) {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who}`]);
    const ext = who === 'server' ? ['-extfile', 'server.ext'] : [];
    openssl(['x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.crt`, '-days', '2', ...ext]);
  }
}

beforeAll(async () => {
  dir = tempDir('nt-tls-');
  makeCertificates();
  h = await startHarness({
    DICOM_TLS_PORT: 0,
    DICOM_TLS_CERT_FILE: path.join(dir, 'server.crt'),
    DICOM_TLS_KEY_FILE: path.join(dir, 'server.key'),
    DICOM_TLS_CA_FILE: path.join(dir, 'ca.crt'),
    DICOM_TLS_CLIENT_CERT: 'require',
  });
  tlsPort = h.listener.tlsPort as number;
});

afterAll(async () => {
  await h.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('a connection that never starts its TLS handshake is closed after the ARTIM time', async () => {
  const socket = net.connect(tlsPort, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.resume();
  const started = Date.now();
  await new Promise((resolve) => socket.once('close', resolve));
  // DICOM_ARTIM_TIMEOUT_SECONDS defaults to 10 (Node's own handshake timeout would be 120 s).
  expect(Date.now() - started).toBeGreaterThan(8_000);
  expect(Date.now() - started).toBeLessThan(30_000);
}, 60_000);

function instance(): { study: string; file: string } {
  const study = newUid();
  const file = path.join(dir, `${study}.dcm`);
  writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: newUid() });
  return { study, file };
}

test('a peer with a client certificate from our CA stores over TLS', async () => {
  expect(tlsPort).toBeGreaterThan(0);
  expect(tlsPort).not.toBe(h.listener.port);
  const { study, file } = instance();
  const r = await storescu({ ...h.ae, port: tlsPort }, [file], [
    '+tls', path.join(dir, 'client.key'), path.join(dir, 'client.crt'), '+cf', path.join(dir, 'ca.crt'),
  ]);
  expect(r.statuses).toEqual([0]);
  expect(listFiles(path.join(h.dataDir, 'store', study))).toHaveLength(1);
});

test('a peer without a client certificate is refused in the handshake and stores nothing', async () => {
  const { study, file } = instance();
  const r = await storescu({ ...h.ae, port: tlsPort }, [file], ['+tla', '+cf', path.join(dir, 'ca.crt')]);
  expect(r.code).not.toBe(0);
  expect(r.statuses).toEqual([]);
  expect(listFiles(path.join(h.dataDir, 'store', study))).toHaveLength(0);
  expect(await metricsText(h.listener.metricsPort)).toMatch(/neurotriage_listener_associations_total\{result="rejected",reason="tls-handshake"\} [1-9]/);
});

test('plain DICOM on the TLS port gets no association; the plain port still works', async () => {
  const { study, file } = instance();
  const onTlsPort = await storescu({ ...h.ae, port: tlsPort }, [file]);
  expect(onTlsPort.code).not.toBe(0);
  expect(onTlsPort.statuses).toEqual([]);
  const plain = await storescu(h.ae, [file]);
  expect(plain.statuses).toEqual([0]);
  expect(listFiles(path.join(h.dataDir, 'store', study))).toHaveLength(1);
});

describe('DICOM_TLS_AE_FROM_CERT', () => {
  let bound: Harness;
  let port: number;
  beforeAll(async () => {
    bound = await startHarness({
      DICOM_TLS_PORT: 0,
      DICOM_TLS_CERT_FILE: path.join(dir, 'server.crt'),
      DICOM_TLS_KEY_FILE: path.join(dir, 'server.key'),
      DICOM_TLS_CA_FILE: path.join(dir, 'ca.crt'),
      DICOM_TLS_CLIENT_CERT: 'require',
      DICOM_TLS_AE_FROM_CERT: true,
    });
    port = bound.listener.tlsPort as number;
  });
  afterAll(() => bound.stop());

  const send = (who: string, file: string) =>
    storescu({ ...bound.ae, port }, [file], ['+tls', path.join(dir, `${who}.key`), path.join(dir, `${who}.crt`), '+cf', path.join(dir, 'ca.crt')]);

  test('a peer whose certificate names its calling AE title stores', async () => {
    const { study, file } = instance();
    expect((await send(CALLING_AE, file)).statuses).toEqual([0]);
    expect(listFiles(path.join(bound.dataDir, 'store', study))).toHaveLength(1);
  });

  test('a valid certificate for another name cannot use this calling AE title', async () => {
    const { study, file } = instance();
    const r = await send('client', file);
    expect(r.statuses).toEqual([]);
    expect(r.associationRejected).toBe(true);
    expect(r.stdout + r.stderr).toMatch(/Calling AE Title Not Recognized/i);
    expect(listFiles(path.join(bound.dataDir, 'store', study))).toHaveLength(0);
    expect(await metricsText(bound.listener.metricsPort)).toMatch(/neurotriage_listener_associations_total\{result="rejected",reason="calling-ae-not-in-certificate"\} 1/);
  });
});
