// What npm start prints as the DICOM address, and where it polls each service, from the settings it is given.
import { loadConfig } from '../shared/config';
import { readinessTargets } from './start-targets';

const base = { REDIS_URL: 'redis://127.0.0.1:1/0', METRICS_PORT: '19464', WORKER_METRICS_PORT: '19465', API_PORT: '18080' };

test('the plain DICOM port by default; a port of 0 becomes the free port npm start gives the listener', async () => {
  const env: NodeJS.ProcessEnv = { ...base, DICOM_PORT: '0' };
  const { dicom } = await readinessTargets(loadConfig(env), env);
  expect(Number(env.DICOM_PORT)).toBeGreaterThan(0);
  expect(dicom).toBe(`NEUROTRIAGE@127.0.0.1:${env.DICOM_PORT}`);
});

test('with DICOM_TLS_ONLY the TLS port alone, never the plain one the listener does not open', async () => {
  const env: NodeJS.ProcessEnv = { ...base, DICOM_PORT: '0', DICOM_TLS_PORT: '0', DICOM_TLS_ONLY: 'true' };
  const { dicom } = await readinessTargets(loadConfig(env), env);
  expect(env.DICOM_PORT).toBe('0');
  expect(Number(env.DICOM_TLS_PORT)).toBeGreaterThan(0);
  expect(dicom).toBe(`NEUROTRIAGE@127.0.0.1:${env.DICOM_TLS_PORT} (TLS)`);
});

test('with a TLS port beside the plain one, both', async () => {
  const env: NodeJS.ProcessEnv = { ...base, DICOM_PORT: '11112', DICOM_TLS_PORT: '2762' };
  const { dicom, targets } = await readinessTargets(loadConfig(env), env);
  expect(dicom).toBe('NEUROTRIAGE@127.0.0.1:11112, NEUROTRIAGE@127.0.0.1:2762 (TLS)');
  expect(targets.map((t) => t.url)).toEqual(['http://127.0.0.1:19464/readyz', 'http://127.0.0.1:19465/readyz', 'http://127.0.0.1:18080/readyz']);
});
