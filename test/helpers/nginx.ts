// A private nginx in front of a test server, as a hospital's reverse proxy or ingress-nginx would be: Debian's
// nginx with its defaults (proxy buffering on, HTTP/1.0 to the upstream, 60 s read timeout) unless a test sets
// directives of its own in the location. One process (master_process off: no workers switching user), listening
// on 127.0.0.1 only, its pid, logs and temp files in a temp dir removed on stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './ports';
import { waitFor } from './wait';

export const NGINX = '/usr/sbin/nginx';

export interface TestNginx {
  /** http://127.0.0.1:<port> */
  url: string;
  port: number;
  /** nginx's error log so far (upstream timeouts, refused connections). */
  errorLog(): string;
  stop(): Promise<void>;
}

/** nginx proxying every path to `upstream` (host:port); `directives` go into the location, after proxy_pass. */
export async function startNginx(upstream: string, directives: string[] = []): Promise<TestNginx> {
  if (!existsSync(NGINX)) throw new Error(`${NGINX} not found: install the nginx package (scripts/setup.sh does)`);
  const dir = mkdtempSync(path.join(tmpdir(), 'nt-nginx-'));
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(conf, [
    'daemon off;',
    'master_process off;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log info;`,
    'events { worker_connections 64; }',
    'http {',
    `  access_log ${dir}/access.log;`,
    `  client_body_temp_path ${dir}/body;`,
    `  proxy_temp_path ${dir}/proxy;`,
    `  fastcgi_temp_path ${dir}/fastcgi;`,
    `  uwsgi_temp_path ${dir}/uwsgi;`,
    `  scgi_temp_path ${dir}/scgi;`,
    '  server {',
    `    listen 127.0.0.1:${port};`,
    '    location / {',
    `      proxy_pass http://${upstream};`,
    ...directives.map((d) => `      ${d}`),
    '    }',
    '  }',
    '}',
    '',
  ].join('\n'));
  const child: ChildProcess = spawn(NGINX, ['-p', dir, '-c', conf, '-e', `${dir}/error.log`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // A test that times out may never reach stop(), and Jest's forced exit would leave nginx holding its port.
  const orphan = () => child.kill('SIGKILL');
  process.once('exit', orphan);
  const errorLog = () => (existsSync(`${dir}/error.log`) ? readFileSync(`${dir}/error.log`, 'utf8') : '');
  await waitFor('nginx to listen', () => {
    if (child.exitCode !== null) throw new Error(`nginx exited ${child.exitCode}: ${stderr}${errorLog()}`);
    return new Promise<boolean>((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
  }, 10_000, 50);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    errorLog,
    async stop() {
      process.off('exit', orphan);
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
