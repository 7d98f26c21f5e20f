// Runs inside a private network namespace (unshare --net --pid --fork): brings up loopback, starts Orthanc there
// and bridges each of its TCP ports to a unix socket in a shared directory, so the test (outside the namespace)
// can reach Orthanc while nothing outside this machine's filesystem can. As PID 1 of its PID namespace, this
// process takes Orthanc down with it: the kernel kills every process of the namespace when PID 1 exits.
// A pair "out:<name>:<port>" bridges the other way: a TCP port inside the namespace whose connections go to the
// unix socket <socketDir>/<name>.sock, which the test serves (Orthanc sending to a modality outside).
// Usage: node netns-bridge.js <socketDir> <orthancConfig> [out:]<name>:<port> ...
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');

const [socketDir, orthancConfig, ...pairs] = process.argv.slice(2);
execFileSync('ip', ['link', 'set', 'lo', 'up']);

const orthanc = spawn('/usr/sbin/Orthanc', [orthancConfig], { stdio: ['ignore', 'ignore', 'inherit'] });
orthanc.on('exit', (code) => process.exit(code === null ? 1 : code));

for (const pair of pairs.filter((p) => p.startsWith('out:'))) {
  const [, name, port] = pair.split(':');
  const server = net.createServer((tcp) => {
    tcp.setNoDelay(true);
    const unix = net.connect(path.join(socketDir, `${name}.sock`));
    tcp.pipe(unix).pipe(tcp);
    tcp.on('error', () => unix.destroy());
    unix.on('error', () => tcp.destroy());
  });
  server.listen(Number(port), '127.0.0.1');
}

for (const pair of pairs.filter((p) => !p.startsWith('out:'))) {
  const [name, port] = pair.split(':');
  const server = net.createServer((unix) => {
    const tcp = net.connect({ host: '127.0.0.1', port: Number(port), noDelay: true });
    unix.pipe(tcp).pipe(unix);
    unix.on('error', () => tcp.destroy());
    tcp.on('error', () => unix.destroy());
  });
  server.listen(path.join(socketDir, `${name}.sock`));
}

const stop = () => {
  orthanc.kill('SIGTERM');
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// unshare --fork ignores SIGTERM itself, so the test stops us by closing our stdin; this also fires if the test
// process dies without cleaning up.
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
