// A server that binds every interface (Orthanc, DCMTK's storescp: neither can be told to bind 127.0.0.1 alone) run
// for a test inside its own network namespace (unshare; needs root or user namespaces) with only loopback, reached
// through unix sockets bridged to OS-chosen 127.0.0.1 ports on our side (netns-bridge.js runs inside). Nothing
// outside this machine can reach it, and inside the namespace fixed ports cannot collide with anything.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface NetnsServer {
  child: ChildProcess;
  /** The 127.0.0.1 port on this side for each of `listen`'s names. */
  ports: Record<string, number>;
  /** The last 4,000 characters the server wrote to stderr. */
  stderr(): string;
  /** Stops the server (the namespace goes with it) and closes the bridges on this side. */
  stop(): Promise<void>;
}

export interface NetnsOptions {
  /** A directory of the test's own for the unix sockets (short: a socket path is at most 107 bytes). */
  socketDir: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Ports the server listens on inside the namespace, by name. */
  listen: Record<string, number>;
  /** Ports inside the namespace whose connections go to a 127.0.0.1 port on this side (a peer the server calls). */
  reach?: Record<string, { inner: number; outer: number }>;
}

/** Connections to a new 127.0.0.1 port here go to the unix socket `socketPath`. */
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

/** A unix socket here whose connections go to 127.0.0.1:`port`. */
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

export async function startInNetns(o: NetnsOptions): Promise<NetnsServer> {
  const reach = o.reach ?? {};
  const servers: net.Server[] = [];
  for (const [name, r] of Object.entries(reach)) servers.push(await bridgeFromUnix(path.join(o.socketDir, `${name}.sock`), r.outer));
  const child = spawn('unshare', ['--net', '--pid', '--fork', '--kill-child', '--', process.execPath, path.join(__dirname, 'netns-bridge.js'), o.socketDir,
    ...Object.entries(o.listen).map(([name, port]) => `${name}:${port}`),
    ...Object.entries(reach).map(([name, r]) => `out:${name}:${r.inner}`),
    '--', o.command, ...o.args], { env: o.env ?? process.env, stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
  });

  const stop = async (): Promise<void> => {
    for (const s of servers) s.close();
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    // The bridge stops the server when its stdin closes (unshare itself ignores SIGTERM); SIGKILL if it hangs.
    child.stdin!.end();
    const force = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(force);
  };

  const sockets = Object.keys(o.listen).map((name) => path.join(o.socketDir, `${name}.sock`));
  // Each socket appears once the server listens on its port (netns-bridge.js): Orthanc on a loaded machine takes a while.
  const deadline = Date.now() + 60_000;
  while (!sockets.every((s) => existsSync(s))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`${o.command} in a network namespace did not start (exit ${child.exitCode}; unshare needs root or user namespaces): ${stderr.slice(-1500)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const ports: Record<string, number> = {};
  for (const name of Object.keys(o.listen)) {
    const bridge = await bridgeToUnix(path.join(o.socketDir, `${name}.sock`));
    servers.push(bridge);
    ports[name] = (bridge.address() as net.AddressInfo).port;
  }
  return { child, ports, stderr: () => stderr, stop };
}
