// Port numbers for servers a test starts by number (Orthanc, Prometheus, storescp, the services' start scripts).
// A port found free by listening on 0 comes from the kernel's ephemeral range, which every other socket on the
// machine draws from too (another test's listen(0), each outgoing connection's local port), so it could be taken
// before the server bound it; CI saw Orthanc exit with "port already in use" that way. These ports come from below
// the ephemeral range, from a block of their own for each Jest worker, and are checked free before they are given.
import net from 'node:net';
import { readFileSync } from 'node:fs';

const BLOCK = 400;
const FIRST = 20_000;

/** The lowest ephemeral port (Linux: net.ipv4.ip_local_port_range); 32768 when it cannot be read. */
function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32_768;
  } catch {
    return 32_768;
  }
}

const blocks = Math.max(1, Math.floor((ephemeralLow() - FIRST) / BLOCK));
const worker = Number(process.env.JEST_WORKER_ID ?? '1');
const base = FIRST + ((worker - 1) % blocks) * BLOCK;
let next = 0;

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    // All interfaces: Orthanc and storescp bind there, and a listener on 127.0.0.1 alone would also refuse it.
    s.listen({ port, host: '0.0.0.0', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** A port free now, outside the ephemeral range, not given out before by this worker (until its block wraps). */
export async function freePort(): Promise<number> {
  for (let tried = 0; tried < BLOCK; tried++) {
    const port = base + (next++ % BLOCK);
    if (await isFree(port)) return port;
  }
  throw new Error(`no free port in ${base}-${base + BLOCK - 1}`);
}
