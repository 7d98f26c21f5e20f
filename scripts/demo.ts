// `npm run demo`: the newcomer's path in one command. Starts the whole system (npm start) with the report feed's
// MLLP listener on, generates a few synthetic studies, pushes them into the listener by C-STORE and each study's
// report into the report feed as HL7 ORU^R01 (the RIS's part), then says where to look. Ctrl-C stops it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { loadConfig, dataDir } from '../shared/config';

function answers(host: string, port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = net.connect({ host, port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await answers(host, port)) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** What this demo started: stopped when it fails, so no system is left running behind an error. */
let running: ChildProcess | undefined;
let synth: ChildProcess | undefined;
let failed = false;

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
  // The waits below take any program answering on a port for the system started here: with another npm start
  // running, the studies went to that one while this one's services failed on the taken ports.
  const ports: [string, string, number][] = [
    ['DICOM_PORT', config.DICOM_HOST, config.DICOM_PORT], ['API_PORT', config.API_HOST, config.API_PORT], ['REPORTS_MLLP_PORT', reportsHost, reportsPort],
  ];
  for (const [setting, host, port] of ports) {
    if (await answers(host, port)) {
      throw new Error(`${host}:${port} (${setting}) is already taken, by another npm start or npm run demo or another program: stop it first, or set ${setting}`);
    }
  }
  const system = spawn(process.execPath, [path.join(dist, 'scripts', 'start.js')], { stdio: 'inherit', env });
  running = system;
  const stop = () => system.kill('SIGTERM');
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  system.once('exit', (code) => {
    synth?.kill('SIGTERM');
    process.exit(failed ? 1 : (code ?? 0));
  });

  await waitForPort(config.DICOM_HOST, config.DICOM_PORT, 60_000);
  await waitForPort(config.API_HOST, config.API_PORT, 60_000);
  await waitForPort(reportsHost, reportsPort, 60_000);
  const out = path.join(dataDir(config), 'demo-cohort');
  const target = `${config.DICOM_AE_TITLE}@${config.DICOM_HOST}:${config.DICOM_PORT}`;
  const reportsTo = `${reportsHost}:${reportsPort}`;
  console.log(`demo: generating ${studies} synthetic studies, sending them to ${target} and their reports to ${reportsTo} (HL7 MLLP)`);
  const sender = spawn(
    process.execPath,
    [
      path.join(dist, 'tools', 'synth', 'cli.js'), '--n', studies, '--seed', '2026', '--normal-fraction', '0.4', '--out', out,
      '--send', target, '--reports-to', reportsTo,
    ],
    { stdio: 'inherit' },
  );
  synth = sender;
  const code: number = await new Promise((resolve) => sender.once('exit', (c) => resolve(c ?? 1)));
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

main().catch((err: Error) => {
  console.error(`demo: ${err.message}`);
  failed = true;
  // The system's exit ends this process (status 1); the demo used to exit here and leave it running.
  if (running && running.exitCode === null && running.signalCode === null) running.kill('SIGTERM');
  else process.exit(1);
});
