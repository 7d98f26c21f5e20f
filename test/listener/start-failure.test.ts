// A listener whose start fails part way gives back what it had opened: here the DICOM TLS side cannot start (its
// certificate file is missing) after the plain DICOM port is already listening.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRedis, type TestRedis } from '../helpers/redis';
import { createLogger } from '../../shared/logger';
import { startListener } from '../../services/listener/listener';
import { testListenerSettings } from './harness';

let redis: TestRedis;
let dataDir: string;

beforeAll(async () => {
  redis = await startRedis();
  dataDir = mkdtempSync(path.join(tmpdir(), 'nt-listener-'));
});

afterAll(async () => {
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const servers = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;

test('a start that fails after the plain DICOM port is listening closes that port again', async () => {
  const missing = path.join(dataDir, 'no-such-cert.pem');
  const settings = testListenerSettings(redis.url, dataDir, { DICOM_TLS_PORT: 0, DICOM_TLS_CERT_FILE: missing, DICOM_TLS_KEY_FILE: missing });
  const before = servers();
  await expect(startListener({ settings, log: createLogger('listener', 'silent') })).rejects.toThrow(/no-such-cert/);
  await new Promise((r) => setTimeout(r, 100));
  expect(servers()).toBe(before);
});
