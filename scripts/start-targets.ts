// Where `npm start` polls each service it runs for readiness (scripts/readiness.ts waits on them), from the
// services' own settings, and npm start's own setting, START_READY_TIMEOUT_SECONDS.
import { Type } from '@sinclair/typebox';
import { loadSection, settingsSource, type Config } from '../shared/config';
import { ApiSettingsSchema } from '../services/api/settings';
import { LISTENER_DEFAULTS, ListenerSectionSchema } from '../services/listener/config';
import { WORKER_DEFAULTS, WorkerConfigSchema } from '../services/worker/config';
import { freePortOn, readyzUrl, type ReadyTarget } from './readiness';

/** The settings npm start reads to find each service's /readyz (each service validates its own again). */
export const StartSchema = Type.Object({
  METRICS_HOST: ListenerSectionSchema.properties.METRICS_HOST,
  WORKER_METRICS_PORT: WorkerConfigSchema.properties.WORKER_METRICS_PORT,
  WORKER_METRICS_HOST: WorkerConfigSchema.properties.WORKER_METRICS_HOST,
  API_TLS_CERT_FILE: ApiSettingsSchema.properties.API_TLS_CERT_FILE,
  DICOM_TLS_PORT: ListenerSectionSchema.properties.DICOM_TLS_PORT,
  DICOM_TLS_ONLY: ListenerSectionSchema.properties.DICOM_TLS_ONLY,
  /** How long npm start waits for every service to be ready before it names those still starting. */
  START_READY_TIMEOUT_SECONDS: Type.Number({ exclusiveMinimum: 0, maximum: 3600 }),
});

/**
 * Where each service answers /readyz, and the DICOM addresses to print (the plain port unless DICOM_TLS_ONLY, the TLS
 * port when set). A port setting of 0 (any free port) is made a
 * free port now and put in `env`, so it can be polled and printed (and a restarted service comes back on the same
 * one).
 */
export async function readinessTargets(config: Config, env: NodeJS.ProcessEnv): Promise<{ targets: ReadyTarget[]; slowAfterSeconds: number; dicom: string }> {
  const own = loadSection(StartSchema, {
    METRICS_HOST: LISTENER_DEFAULTS.METRICS_HOST,
    WORKER_METRICS_PORT: WORKER_DEFAULTS.WORKER_METRICS_PORT,
    WORKER_METRICS_HOST: WORKER_DEFAULTS.WORKER_METRICS_HOST,
    DICOM_TLS_ONLY: LISTENER_DEFAULTS.DICOM_TLS_ONLY,
    START_READY_TIMEOUT_SECONDS: 60,
  }, settingsSource(env));
  const port = async (key: string, host: string, value: number) => {
    if (value !== 0) return value;
    const free = await freePortOn(host);
    env[key] = String(free);
    return free;
  };
  const targets = [
    { name: 'listener', url: readyzUrl(own.METRICS_HOST, await port('METRICS_PORT', own.METRICS_HOST, config.METRICS_PORT)) },
    { name: 'worker', url: readyzUrl(own.WORKER_METRICS_HOST, await port('WORKER_METRICS_PORT', own.WORKER_METRICS_HOST, own.WORKER_METRICS_PORT)) },
    { name: 'api', url: readyzUrl(config.API_HOST, await port('API_PORT', config.API_HOST, config.API_PORT), own.API_TLS_CERT_FILE !== undefined) },
  ];
  // The ports the listener serves DICOM on: the plain one unless DICOM_TLS_ONLY, the TLS one when set.
  const at = (p: number) => `${config.DICOM_AE_TITLE}@${config.DICOM_HOST}:${p}`;
  const dicom = [
    ...(own.DICOM_TLS_ONLY ? [] : [at(await port('DICOM_PORT', config.DICOM_HOST, config.DICOM_PORT))]),
    ...(own.DICOM_TLS_PORT === undefined ? [] : [`${at(await port('DICOM_TLS_PORT', config.DICOM_HOST, own.DICOM_TLS_PORT))} (TLS)`]),
  ].join(', ');
  return { targets, slowAfterSeconds: own.START_READY_TIMEOUT_SECONDS, dicom };
}
