// A private Orthanc for integration tests. Orthanc 1.10 has no setting to bind its DICOM or HTTP port to one
// address, so it runs inside its own network namespace (unshare, needs root or user namespaces) with only
// loopback, reached through unix sockets bridged to OS-chosen 127.0.0.1 ports on our side. Where namespaces are
// not allowed it falls back to a plain process on OS-chosen ports that refuses remote HTTP and unknown AEs.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface TestOrthanc {
  aet: string;
  /** 127.0.0.1 ports on this side. */
  dicomPort: number;
  httpPort: number;
  /** "netns" (isolated) or "plain" (fallback). */
  mode: 'netns' | 'plain';
  rest<T = unknown>(pathname: string): Promise<T>;
  /** A POST to the REST API: its HTTP status and body (Orthanc answers 500 when a job fails). */
  post(pathname: string, body: unknown, timeoutMs?: number): Promise<{ status: number; body: string }>;
  stop(): Promise<void>;
}

export interface OrthancOptions {
  aet?: string;
  /** Calling AE titles allowed to store (each from 127.0.0.1). */
  allowedAes: string[];
  /** Modalities Orthanc may send to, by name: an AE title on a 127.0.0.1 port of this side (bridged in netns mode). */
  modalities?: Record<string, { aet: string; port: number }>;
}

/** A port the OS says is free right now (tiny race until Orthanc binds it; acceptable in tests). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function canUnshare(): boolean {
  const r = spawnSync('unshare', ['--net', '--pid', '--fork', '--', 'ip', 'link', 'set', 'lo', 'up'], { stdio: 'ignore', timeout: 5000 });
  return r.status === 0;
}

/** 127.0.0.1:0 on our side, each connection piped to the unix socket the bridge listens on. */
async function bridgeToUnix(socketPath: string): Promise<net.Server> {
  const server = net.createServer((tcp) => {
    tcp.setNoDelay(true);
    const unix = net.connect(socketPath);
    tcp.pipe(unix).pipe(tcp);
    tcp.on('error', () => unix.destroy());
    unix.on('error', () => tcp.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/** A unix socket here whose connections go to 127.0.0.1:`port` (a modality Orthanc sends to from its namespace). */
async function bridgeFromUnix(socketPath: string, port: number): Promise<net.Server> {
  const server = net.createServer((unix) => {
    const tcp = net.connect({ host: '127.0.0.1', port, noDelay: true });
    unix.pipe(tcp).pipe(unix);
    unix.on('error', () => tcp.destroy());
    tcp.on('error', () => unix.destroy());
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return server;
}

export async function startOrthanc(opts: OrthancOptions): Promise<TestOrthanc> {
  const aet = opts.aet ?? 'ORTHANC';
  const dir = mkdtempSync(path.join(tmpdir(), 'nt-orthanc-'));
  mkdirSync(path.join(dir, 'db'));
  const mode: TestOrthanc['mode'] = canUnshare() ? 'netns' : 'plain';
  // Inside the namespace the ports are private, so fixed ones cannot collide.
  const innerDicom = mode === 'netns' ? 4242 : await freePort();
  const innerHttp = mode === 'netns' ? 8042 : await freePort();
  // In the namespace a modality is reached through a port there bridged to a unix socket served here.
  const modalities = opts.modalities ?? {};
  const outboundPorts: Record<string, number> =
    mode === 'netns' ? Object.fromEntries(Object.keys(modalities).map((name, i) => [name, 4300 + i])) : {};
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
      ...Object.fromEntries(Object.entries(modalities).map(([name, m]) => [name, [m.aet, '127.0.0.1', outboundPorts[name] ?? m.port]])),
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

  let child: ChildProcess;
  const servers: net.Server[] = [];
  let dicomPort = innerDicom;
  let httpPort = innerHttp;
  if (mode === 'netns') {
    for (const [name, m] of Object.entries(modalities)) servers.push(await bridgeFromUnix(path.join(dir, `${name}.sock`), m.port));
    const bridge = path.join(__dirname, 'netns-bridge.js');
    child = spawn('unshare', ['--net', '--pid', '--fork', '--kill-child', '--', process.execPath, bridge, dir, configPath,
      `dicom:${innerDicom}`, `http:${innerHttp}`, ...Object.entries(outboundPorts).map(([name, port]) => `out:${name}:${port}`)], { stdio: ['pipe', 'ignore', 'pipe'] });
    const deadline = Date.now() + 10_000;
    while (!existsSync(path.join(dir, 'dicom.sock')) || !existsSync(path.join(dir, 'http.sock'))) {
      if (child.exitCode !== null) throw new Error(`Orthanc bridge exited with ${child.exitCode}`);
      if (Date.now() > deadline) throw new Error('Orthanc bridge did not start within 10 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    const d = await bridgeToUnix(path.join(dir, 'dicom.sock'));
    const h = await bridgeToUnix(path.join(dir, 'http.sock'));
    servers.push(d, h);
    dicomPort = (d.address() as net.AddressInfo).port;
    httpPort = (h.address() as net.AddressInfo).port;
  } else {
    child = spawn('/usr/sbin/Orthanc', [configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  }
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
  });

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
    for (const s of servers) s.close();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      // The netns bridge stops Orthanc when its stdin closes (unshare itself ignores SIGTERM); SIGKILL if it hangs.
      if (child.stdin) child.stdin.end();
      else child.kill('SIGTERM');
      const force = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(force);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await rest('/system', 2000);
      break;
    } catch {
      if (child.exitCode !== null || Date.now() > deadline) {
        await stop();
        throw new Error(`Orthanc did not start (${mode}): ${stderr.slice(-1500)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { aet, dicomPort, httpPort, mode, rest, post, stop };
}
