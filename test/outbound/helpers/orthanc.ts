// A private Orthanc for integration tests. Orthanc 1.10 has no setting to bind its DICOM or HTTP port to one
// address, so it runs inside its own network namespace with only loopback (test/helpers/netns.ts).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startInNetns } from '../../helpers/netns';

export interface TestOrthanc {
  aet: string;
  /** 127.0.0.1 ports on this side. */
  dicomPort: number;
  httpPort: number;
  rest<T = unknown>(pathname: string): Promise<T>;
  /** A POST to the REST API: its HTTP status and body (Orthanc answers 500 when a job fails). */
  post(pathname: string, body: unknown, timeoutMs?: number): Promise<{ status: number; body: string }>;
  stop(): Promise<void>;
}

export interface OrthancOptions {
  aet?: string;
  /** Calling AE titles allowed to store (each from 127.0.0.1). */
  allowedAes: string[];
  /** Modalities Orthanc may send to, by name: an AE title on a 127.0.0.1 port of this side (bridged into the namespace). */
  modalities?: Record<string, { aet: string; port: number }>;
}

export async function startOrthanc(opts: OrthancOptions): Promise<TestOrthanc> {
  const aet = opts.aet ?? 'ORTHANC';
  const dir = mkdtempSync(path.join(tmpdir(), 'nt-orthanc-'));
  mkdirSync(path.join(dir, 'db'));
  // Inside the namespace the ports are private, so fixed ones cannot collide.
  const innerDicom = 4242;
  const innerHttp = 8042;
  // A modality is reached through a port in the namespace bridged to one here.
  const reach = Object.fromEntries(Object.entries(opts.modalities ?? {}).map(([name, m], i) => [name, { aet: m.aet, inner: 4300 + i, outer: m.port }]));
  const config = {
    Name: 'neurotriage-test',
    StorageDirectory: path.join(dir, 'db'),
    IndexDirectory: path.join(dir, 'db'),
    StorageCompression: false,
    Plugins: [],
    DicomServerEnabled: true,
    DicomAet: aet,
    DicomPort: innerDicom,
    DicomCheckCalledAet: true,
    DicomAlwaysAllowStore: false,
    DicomCheckModalityHost: true,
    DicomModalities: {
      ...Object.fromEntries(opts.allowedAes.map((ae) => [ae.toLowerCase(), [ae, '127.0.0.1', 104]])),
      ...Object.fromEntries(Object.entries(reach).map(([name, m]) => [name, [m.aet, '127.0.0.1', m.inner]])),
    },
    HttpServerEnabled: true,
    HttpPort: innerHttp,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    HttpThreadsCount: 4,
    ConcurrentJobs: 1,
    SaveJobs: false,
    StableAge: 1,
  };
  const configPath = path.join(dir, 'orthanc.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));

  const server = await startInNetns({
    socketDir: dir,
    command: '/usr/sbin/Orthanc',
    args: [configPath],
    listen: { dicom: innerDicom, http: innerHttp },
    reach,
  });
  const { dicom: dicomPort, http: httpPort } = server.ports;

  // Every request has its own timeout: a connection the bridge accepted but Orthanc never answers (seen once
  // under heavy load) must not hang the start-up loop past its deadline, nor leave jest waiting at exit.
  const rest = async <T>(pathname: string, timeoutMs = 10_000): Promise<T> => {
    const res = await fetch(`http://127.0.0.1:${httpPort}${pathname}`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`Orthanc ${pathname}: HTTP ${res.status}`);
    return (await res.json()) as T;
  };

  const post = async (pathname: string, body: unknown, timeoutMs = 60_000): Promise<{ status: number; body: string }> => {
    const res = await fetch(`http://127.0.0.1:${httpPort}${pathname}`, {
      method: 'POST',
      body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: res.status, body: await res.text() };
  };

  const stop = async (): Promise<void> => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await rest('/system', 2000);
      break;
    } catch {
      if (server.child.exitCode !== null || Date.now() > deadline) {
        await stop();
        throw new Error(`Orthanc did not start: ${server.stderr().slice(-1500)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { aet, dicomPort, httpPort, rest, post, stop };
}
