// The built API process started while Redis is not there yet (a Redis outage during a deploy): it stays up,
// /livez 200 and /readyz 503 naming Redis; once Redis comes, it is ready, its report feed listens and live updates
// reach an open page.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startPrivateRedis, type PrivateRedis } from '../../shared/private-redis';
import { connectRedis } from '../../shared/redis';
import { resultKeys } from '../../shared/results';
import { freePort } from '../helpers/ports';
import { waitFor } from '../worker/helpers';

const ROOT = path.resolve(__dirname, '..', '..');
type Ready = { checks: { redis: { ok: boolean } } };
const TOKEN = 'start-without-redis-reader-token-0123456789';


describe('API process started before Redis', () => {
  let dir: string;
  let redis: PrivateRedis | undefined;
  let api: ChildProcess | undefined;

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'nt-api-nr-'));
  });
  afterAll(async () => {
    if (api && api.exitCode === null) api.kill('SIGKILL');
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stays up not ready, then is ready and streams live updates once Redis answers', async () => {
    const port = await freePort();
    const mllpPort = await freePort();
    const mllpOpen = () => new Promise<boolean>((resolve) => {
      const c = net.connect(mllpPort, '127.0.0.1', () => { c.destroy(); resolve(true); }).on('error', () => resolve(false));
    });
    const socket = path.join(dir, 'redis', 'redis.sock');
    api = spawn(process.execPath, [path.join(ROOT, 'dist', 'services', 'api', 'main.js')], {
      env: { PATH: process.env.PATH ?? '', REDIS_URL: `unix://${socket}`, API_HOST: '127.0.0.1', API_PORT: String(port), API_TOKENS: `${TOKEN}:reader:probe`, REPORTS_MLLP_HOST: '127.0.0.1', REPORTS_MLLP_PORT: String(mllpPort), REPORTS_MLLP_ALLOWED_FACILITIES: 'RIS', DATA_DIR: path.join(dir, 'data'), LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const get = (route: string, headers: Record<string, string> = {}) => fetch(`http://127.0.0.1:${port}${route}`, { headers, signal: AbortSignal.timeout(5000) });
    await waitFor('/livez', async () => (await get('/livez').catch(() => null))?.status === 200, 30_000, 100);
    const notReady = await get('/readyz');
    expect(notReady.status).toBe(503);
    expect(((await notReady.json()) as Ready).checks.redis.ok).toBe(false);
    await new Promise((r) => setTimeout(r, 1500));
    expect(api.exitCode).toBeNull();

    redis = await startPrivateRedis({ dir: path.join(dir, 'redis') });
    await waitFor('the report MLLP listener', mllpOpen, 30_000, 250);
    await waitFor('/readyz naming Redis ready', async () => ((await (await get('/readyz')).json()) as Ready).checks.redis.ok === true, 30_000, 200);

    const events = await get('/api/v1/events', { authorization: `Bearer ${TOKEN}` });
    expect(events.status).toBe(200);
    const reader = events.body!.getReader();
    const pub = connectRedis(redis.url, 'producer');
    try {
      await new Promise((r) => pub.once('ready', r));
      let text = '';
      const seen = waitFor('a scored event on the stream', async () => {
        await pub.publish(resultKeys.scoredChannel(), '1.2.3.4');
        return text.includes('event: scored');
      }, 20_000, 250);
      const read = (async () => {
        while (!text.includes('event: scored')) {
          const { value, done } = await reader.read();
          if (done) break;
          text += new TextDecoder().decode(value);
        }
      })();
      await seen;
      await reader.cancel();
      await read;
      expect(text).toContain('"StudyInstanceUID":"1.2.3.4"');
    } finally {
      pub.disconnect();
    }
  }, 90_000);
});
