// The allow-list `npm start` gives the listener when the site has set none: the project's own senders, from this
// machine only, on a loopback-only listener, so the quick start works (README). "Set" means in the environment or
// in the JSON file named by NEUROTRIAGE_CONFIG_FILE: an allow-list from the file is the site's and is kept.
import { settingsSource } from '../shared/config';

/** Calling AE titles of `npm run synth -- --send` and of DCMTK's storescu, from this machine only. */
export const LOCAL_SENDERS = 'NT_SYNTH@127.0.0.1,STORESCU@127.0.0.1';

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/**
 * LOCAL_SENDERS when DICOM_ALLOWED_CALLING_AES is set neither in `env` nor in its NEUROTRIAGE_CONFIG_FILE and the
 * listener binds a loopback address; otherwise undefined (the listener reads the configured value, or its empty
 * default that rejects everyone).
 */
export function localAllowList(env: Record<string, string | undefined>, dicomHost: string): string | undefined {
  if (settingsSource(env).DICOM_ALLOWED_CALLING_AES !== undefined) return undefined;
  return isLoopback(dicomHost) ? LOCAL_SENDERS : undefined;
}
