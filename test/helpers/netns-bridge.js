// Runs inside a private network namespace (unshare --net --pid --fork): brings up loopback, starts one server there
// (Orthanc, storescp: servers that cannot bind 127.0.0.1 alone) and bridges each of its TCP ports to a unix socket
// in a shared directory, so the test (outside the namespace) can reach it while nothing outside this machine's
// filesystem can. As PID 1 of its PID namespace, this process takes the server down with it: the kernel kills
// every process of the namespace when PID 1 exits.
// A pair "out:<name>:<port>" bridges the other way: a TCP port inside the namespace whose connections go to the
// unix socket <socketDir>/<name>.sock, which the test serves (Orthanc sending to a modality outside).
// Usage: node netns-bridge.js <socketDir> [out:]<name>:<port> ... -- <command> <args...>
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const { readFileSync } = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const [socketDir, ...pairs] = argv.slice(0, dash);
const [command, ...args] = argv.slice(dash + 1);
execFileSync('ip', ['link', 'set', 'lo', 'up']);

const server = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
server.on('exit', (code) => process.exit(code === null ? 1 : code));

for (const pair of pairs.filter((p) => p.startsWith('out:'))) {
  const [, name, port] = pair.split(':');
  const bridge = net.createServer((tcp) => {
    tcp.setNoDelay(true);
    const unix = net.connect(path.join(socketDir, `${name}.sock`));
    tcp.pipe(unix).pipe(tcp);
    tcp.on('error', () => unix.destroy());
    unix.on('error', () => tcp.destroy());
  });
  bridge.listen(Number(port), '127.0.0.1');
}

/**
 * Whether something in this namespace listens on TCP `port`, from the kernel's socket table (no connection made: a
 * probe connection would be an association attempt to storescp). State 0A is LISTEN.
 */
function listening(port) {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 3 && cols[1].endsWith(hex) && cols[3] === '0A') return true;
    }
  }
  return false;
}

for (const pair of pairs.filter((p) => !p.startsWith('out:'))) {
  const [name, port] = pair.split(':');
  const bridge = net.createServer((unix) => {
    const tcp = net.connect({ host: '127.0.0.1', port: Number(port), noDelay: true });
    unix.pipe(tcp).pipe(unix);
    unix.on('error', () => tcp.destroy());
    tcp.on('error', () => unix.destroy());
  });
  // The socket appears (and the test starts using the server) only once the server listens: before, a connection
  // made while a loaded machine was still starting storescp was refused inside and read as a dropped association.
  const open = () => (listening(Number(port)) ? bridge.listen(path.join(socketDir, `${name}.sock`)) : setTimeout(open, 20));
  open();
}

const stop = () => {
  server.kill('SIGTERM');
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// unshare --fork ignores SIGTERM itself, so the test stops us by closing our stdin; this also fires if the test
// process dies without cleaning up.
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
