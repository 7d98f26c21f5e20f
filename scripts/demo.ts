// `npm run demo`: the newcomer's path in one command. Starts the whole system (npm start) with the report feed's
// MLLP listener on, generates a few synthetic studies, pushes them into the listener by C-STORE and each study's
// report into the report feed as HL7 ORU^R01 (the RIS's part), then says where to look. Ctrl-C stops it.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { loadConfig, dataDir } from '../shared/config';

async function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function main(): Promise<void> {
  const config = loadConfig();
  const dist = path.resolve(__dirname, '..');
  const studies = process.env.DEMO_STUDIES ?? '8';
  // The API's report listener is off unless a port is set; the demo turns it on for the simulator's facility.
  const reportsHost = process.env.REPORTS_MLLP_HOST ?? '127.0.0.1';
  const reportsPort = Number(process.env.REPORTS_MLLP_PORT ?? 2575);
  const env = {
    ...process.env,
    REPORTS_MLLP_PORT: String(reportsPort),
    REPORTS_MLLP_ALLOWED_FACILITIES: process.env.REPORTS_MLLP_ALLOWED_FACILITIES ?? 'NT_SYNTH',
  };
  const system = spawn(process.execPath, [path.join(dist, 'scripts', 'start.js')], { stdio: 'inherit', env });
  const stop = () => system.kill('SIGTERM');
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  system.once('exit', (code) => process.exit(code ?? 0));

  await waitForPort(config.DICOM_HOST, config.DICOM_PORT, 60_000);
  await waitForPort(config.API_HOST, config.API_PORT, 60_000);
  await waitForPort(reportsHost, reportsPort, 60_000);
  const out = path.join(dataDir(config), 'demo-cohort');
  const target = `${config.DICOM_AE_TITLE}@${config.DICOM_HOST}:${config.DICOM_PORT}`;
  const reportsTo = `${reportsHost}:${reportsPort}`;
  console.log(`demo: generating ${studies} synthetic studies, sending them to ${target} and their reports to ${reportsTo} (HL7 MLLP)`);
  const synth = spawn(
    process.execPath,
    [
      path.join(dist, 'tools', 'synth', 'cli.js'), '--n', studies, '--seed', '2026', '--normal-fraction', '0.4', '--out', out,
      '--send', target, '--reports-to', reportsTo,
    ],
    { stdio: 'inherit' },
  );
  const code: number = await new Promise((resolve) => synth.once('exit', (c) => resolve(c ?? 1)));
  if (code !== 0) {
    console.error(`demo: the synthetic sender failed (exit ${code}); the system keeps running`);
    return;
  }
  const tokenFile = path.join(dataDir(config), 'api-admin-token');
  console.log(
    [
      '',
      `demo: open http://${config.API_HOST}:${config.API_PORT}/ (worklist; STAT studies rise to the top as they are scored)`,
      existsSync(tokenFile) ? `demo: sign in with the token in ${tokenFile}` : 'demo: sign in with one of your API_TOKENS',
      `demo: each study's report is at GET /api/v1/studies/<StudyInstanceUID>/report once the study is scored`,
      `demo: the API is described at http://${config.API_HOST}:${config.API_PORT}/docs; Ctrl-C stops everything`,
    ].join('\n'),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
