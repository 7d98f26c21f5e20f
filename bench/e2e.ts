// `npm run bench:e2e`: end-to-end latency on this machine, from the C-STORE response of a study's LAST instance to
// the HL7 ACK for that study, with every part real and in this one process: a private redis-server (unix socket),
// the listener (services/listener), the worker (services/worker, ONNX Runtime on CPU, the trained bundle in
// onnx-models/), the outbound service (services/api/outbound, HL7 over MLLP only) and an MLLP peer that answers AA.
// Studies are made by tools/synth and sent in-process with dcmjs-dimse (TCP_NODELAY), one association per study,
// so the time of the last C-STORE response is known exactly; the peer records when it sends each ACK (same clock).
// Two phases after one warm-up study (not counted): (a) steady, one study every --interval-ms; (b) a burst, all
// --burst studies at once. Prints p50/p95 of each, the machine and the quiet period used.
// Options: --quiet S (STUDY_QUIET_SECONDS, default 5), --steady N (default 20), --interval-ms MS (default 2000),
// --burst N (default 20), --matrix M (T2/FLAIR acquisition matrix, default 128; --fast: 64x64, 12 slices),
// --seed S. The whole run is bounded (BENCH_E2E_TIMEOUT_S, default 180 s); everything started is stopped and the
// temp DATA_DIR removed at the end, also on failure.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import type { Hl7Message } from '@medplum/core';
import { Hl7Connection, type Hl7MessageEvent } from '@medplum/hl7';
import { log as dimseLog } from 'dcmjs-dimse';
import { Registry } from 'prom-client';
import { startPrivateRedis } from '../shared/private-redis';
import { createLogger } from '../shared/logger';
import { listenerSettings } from '../services/listener/config';
import { startListener, type RunningListener } from '../services/listener/listener';
import { scheduleSlackMs } from '../services/listener/study-assembler';
import { startWorker, type RunningWorker } from '../services/worker/main';
import { loadOutboundConfig } from '../services/api/outbound/config';
import { createOutbound, type Outbound } from '../services/api/outbound/outbound';
import { createStoreSender, type StoreSender } from '../tools/synth/send';
import { generateStudy } from '../tools/synth/study';
import type { DicomFile, GeneratedStudy } from '../tools/synth/types';
import { failCli, parseOptions } from '../shared/cli-args';

const CALLING_AE = 'BENCH_E2E';
const BUNDLE_DIR = path.resolve(__dirname, '..', '..', 'onnx-models');

interface Stoppable {
  name: string;
  stop(): Promise<unknown> | unknown;
}

// ---- MLLP peer: records when it acknowledges each study (IPC-3 carries the StudyInstanceUID) ----

interface AckPeer {
  port: number;
  ackAt: Map<string, number>;
  waiters: Set<() => void>;
  close(): Promise<void>;
}

async function startAckPeer(): Promise<AckPeer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const connection = new Hl7Connection(socket, 'utf-8');
    connection.addEventListener('message', (event: Hl7MessageEvent) => {
      const message: Hl7Message = event.message;
      const uid = message.getSegment('IPC')?.getField(3)?.toString() ?? '';
      connection.send(message.buildAck({ ackCode: 'AA' }));
      // First ACK only: a retried delivery must not move the figure.
      if (uid && !peer.ackAt.has(uid)) peer.ackAt.set(uid, Date.now());
      for (const w of [...peer.waiters]) w();
    });
  });
  const peer: AckPeer = {
    port: 0,
    ackAt: new Map(),
    waiters: new Set(),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  peer.port = (server.address() as net.AddressInfo).port;
  return peer;
}

function waitForAcks(peer: AckPeer, uids: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (uids.every((u) => peer.ackAt.has(u))) {
        peer.waiters.delete(check);
        clearTimeout(timer);
        resolve();
      }
    };
    const timer = setTimeout(() => {
      peer.waiters.delete(check);
      reject(new Error(`only ${uids.filter((u) => peer.ackAt.has(u)).length} of ${uids.length} HL7 ACKs within ${timeoutMs} ms`));
    }, timeoutMs);
    peer.waiters.add(check);
    check();
  });
}

// ---- sender: one association per study (tools/synth's sender); the figure starts at its last C-STORE response ----

/** Sends the study; resolves with Date.now() of its last C-STORE response (all must be Success). */
async function sendStudy(sender: StoreSender, files: DicomFile[]): Promise<number> {
  const r = await sender.sendStudy(files);
  if (r.failed > 0) throw new Error(`${r.failed} of ${r.instances} instances not stored`);
  return r.lastResponseAt;
}

// ---- figures ----

/** Nearest-rank percentile (no interpolation: every figure printed is one a study really had). */
function percentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

interface PhaseResult {
  name: string;
  latenciesMs: number[];
  sendSpanMs: number;
}

function summary(r: PhaseResult): string {
  const s = [...r.latenciesMs].sort((a, b) => a - b);
  const f = (ms: number): string => (ms / 1000).toFixed(2);
  return `${r.name.padEnd(7)} n=${s.length}  p50 ${f(percentile(s, 50))} s  p95 ${f(percentile(s, 95))} s  min ${f(s[0]!)} s  max ${f(s[s.length - 1]!)} s  (sending took ${f(r.sendSpanMs)} s)`;
}

async function main(): Promise<number> {
  const values = parseOptions({
    quiet: { type: 'string', default: '5' },
    steady: { type: 'string', default: '20' },
    'interval-ms': { type: 'string', default: '2000' },
    burst: { type: 'string', default: '20' },
    matrix: { type: 'string', default: '128' },
    fast: { type: 'boolean', default: false },
    seed: { type: 'string', default: 'bench-e2e' },
  });
  const quiet = Number(values.quiet);
  const steadyN = Number(values.steady);
  const intervalMs = Number(values['interval-ms']);
  const burstN = Number(values.burst);
  const matrix = Number(values.matrix);
  if (![quiet, steadyN, intervalMs, burstN, matrix].every((n) => Number.isFinite(n) && n >= 0)) throw new Error('numeric options must be numbers >= 0');
  const timeoutS = Number(process.env.BENCH_E2E_TIMEOUT_S ?? 180);

  if (!existsSync(path.join(BUNDLE_DIR, 'manifest.json'))) {
    throw new Error(`no trained model bundle: ${path.join(BUNDLE_DIR, 'manifest.json')} is absent. Run npm run models:train first.`);
  }
  const manifest = JSON.parse(readFileSync(path.join(BUNDLE_DIR, 'manifest.json'), 'utf8')) as { bundleId?: string; version?: string };

  const cpuList = cpus();
  console.log(`machine: ${cpuList.length} x ${cpuList[0]?.model ?? 'unknown CPU'}, node ${process.version}, ${process.platform} ${process.arch}`);
  console.log(`bundle: trained reference bundle ${BUNDLE_DIR} (${manifest.bundleId ?? '?'}@${manifest.version ?? '?'}), ONNX Runtime CPU`);
  const slackMs = scheduleSlackMs(quiet * 1000);
  console.log(`STUDY_QUIET_SECONDS=${quiet} (the listener adds ${slackMs} ms of scheduling slack: a study's job fires ${(quiet + slackMs / 1000).toFixed(2)} s after its last instance at most)`);
  console.log(`goal (steady): p95 <= quiet + 2 s = ${(quiet + 2).toFixed(2)} s`);

  const stops: Stoppable[] = [];
  const dataDir = mkdtempSync(path.join(tmpdir(), 'nt-bench-e2e-'));
  stops.push({ name: 'DATA_DIR', stop: () => rmSync(dataDir, { recursive: true, force: true }) });
  const loads: number[] = [];
  const sampler = setInterval(() => loads.push(loadavg()[0]!), 1000);
  stops.push({ name: 'load sampler', stop: () => clearInterval(sampler) });
  const watchdog = setTimeout(() => {
    console.error(`bench:e2e: over ${timeoutS} s (BENCH_E2E_TIMEOUT_S); stopping`);
    void cleanup(stops).finally(() => process.exit(2));
  }, timeoutS * 1000);
  watchdog.unref();

  try {
    const log = createLogger('bench-e2e', process.env.LOG_LEVEL ?? 'silent');
    const redis = await startPrivateRedis();
    stops.push({ name: 'redis-server', stop: () => redis.stop() });
    const peer = await startAckPeer();
    stops.push({ name: 'MLLP peer', stop: () => peer.close() });

    const varDir = path.join(dataDir, 'var');
    const settings = listenerSettings({
      REDIS_URL: redis.url, DATA_DIR: varDir, DICOM_PORT: 0, METRICS_PORT: 0, DICOM_ALLOWED_CALLING_AES: CALLING_AE,
      DISK_MIN_FREE_MB: 64, STUDY_QUIET_SECONDS: quiet, LOG_LEVEL: 'silent',
      // The default (16) would reject part of a 20-study burst; a PACS would retry those, which is a different figure.
      DICOM_MAX_ASSOCIATIONS: Math.max(16, burstN + 1),
    });
    console.log(`listener: DICOM_MAX_ASSOCIATIONS=${settings.DICOM_MAX_ASSOCIATIONS} (default 16); worker: production defaults, EXECUTION_PROVIDERS=cpu`);
    const listener: RunningListener = await startListener({ settings, log });
    stops.push({ name: 'listener', stop: () => listener.close() });
    // The worker's production defaults (concurrency, loader processes, batching) except the execution provider: this
    // machine has no GPU, and ports chosen by the OS.
    const worker: RunningWorker = await startWorker({
      env: {
        PATH: process.env.PATH ?? '', REDIS_URL: redis.url, DATA_DIR: varDir, MODELS_DIR: BUNDLE_DIR, EXECUTION_PROVIDERS: 'cpu',
        WORKER_METRICS_PORT: '0', LOG_LEVEL: 'silent', SHUTDOWN_TIMEOUT_SECONDS: '5',
      },
      log,
    });
    stops.push({ name: 'worker', stop: () => worker.close() });
    const outbound: Outbound = createOutbound(
      loadOutboundConfig({ HL7_MLLP_TARGET: `127.0.0.1:${peer.port}` }),
      { redisUrl: redis.url, registry: new Registry(), logger: log, dataDir: varDir },
    );
    await outbound.start();
    stops.push({ name: 'outbound', stop: () => outbound.close() });
    dimseLog.setLevel('error');

    // Studies made before any timing starts (the generator is CPU-heavy and would otherwise share the cores).
    const t0 = Date.now();
    const opts = values.fast ? { fast: true } : { matrix };
    const make = (i: number): GeneratedStudy => generateStudy(String(values.seed), i, { normalFraction: 0.5, ...opts });
    const warm = make(0);
    const steady = Array.from({ length: steadyN }, (_, i) => make(1 + i));
    const burst = Array.from({ length: burstN }, (_, i) => make(1 + steadyN + i));
    const perStudy = steady[0] ?? warm;
    console.log(`studies: ${values.fast ? 'fast (64x64, 12 slices)' : `matrix ${matrix}`}, ${perStudy.files.length} instances / ` +
      `${(perStudy.files.reduce((a, f) => a + f.data.byteLength, 0) / 1e6).toFixed(1)} MB each; ${1 + steadyN + burstN} made in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const sender = createStoreSender({ host: '127.0.0.1', port: listener.port, calledAe: settings.DICOM_AE_TITLE }, CALLING_AE);
    const send = (s: GeneratedStudy): Promise<number> => sendStudy(sender, s.files);
    const ackWaitMs = (quiet + 60) * 1000;
    const latencies = (studies: GeneratedStudy[], lastAt: number[]): number[] =>
      studies.map((s, i) => peer.ackAt.get(s.StudyInstanceUID)! - lastAt[i]!);

    // Warm-up (ONNX sessions, thread pool, HL7 connection): not counted.
    const warmAt = await send(warm);
    await waitForAcks(peer, [warm.StudyInstanceUID], ackWaitMs);
    console.log(`warm-up study: ${((peer.ackAt.get(warm.StudyInstanceUID)! - warmAt) / 1000).toFixed(2)} s (not counted)`);

    const loadsFrom = loads.length;
    // (a) steady: one study every intervalMs, each started on schedule whether or not the previous one is done.
    const steadyStart = Date.now();
    const steadyLast = await Promise.all(steady.map((s, i) =>
      new Promise<number>((resolve, reject) => setTimeout(() => send(s).then(resolve, (e: Error) => reject(new Error(`steady: ${e.message}`))), i * intervalMs))));
    const steadySpan = Date.now() - steadyStart;
    await waitForAcks(peer, steady.map((s) => s.StudyInstanceUID), ackWaitMs);
    const steadyResult: PhaseResult = { name: 'steady', latenciesMs: latencies(steady, steadyLast), sendSpanMs: steadySpan };

    // (b) burst: every association at once.
    const burstStart = Date.now();
    const burstLast = await Promise.all(burst.map((s) => send(s).catch((e: Error) => Promise.reject(new Error(`burst: ${e.message}`)))));
    const burstSpan = Date.now() - burstStart;
    await waitForAcks(peer, burst.map((s) => s.StudyInstanceUID), ackWaitMs + burstN * 10_000);
    const burstResult: PhaseResult = { name: 'burst', latenciesMs: latencies(burst, burstLast), sendSpanMs: burstSpan };
    const burstAcks = burst.map((s) => peer.ackAt.get(s.StudyInstanceUID)!);
    const burstSpread = `last C-STORE responses within ${((Math.max(...burstLast) - Math.min(...burstLast)) / 1000).toFixed(2)} s of each other, ` +
      `HL7 ACKs within ${((Math.max(...burstAcks) - Math.min(...burstAcks)) / 1000).toFixed(2)} s; last ACK ${((Math.max(...burstAcks) - burstStart) / 1000).toFixed(2)} s after the burst began`;

    const window = loads.slice(loadsFrom);
    console.log('');
    console.log('time from the last C-STORE response of a study to the HL7 ACK for it:');
    console.log(`  ${summary(steadyResult)}  [one study every ${intervalMs} ms]`);
    console.log(`  ${summary(burstResult)}  [${burstN} associations at once]`);
    console.log(`          ${burstSpread}`);
    const p95 = percentile([...steadyResult.latenciesMs].sort((a, b) => a - b), 95) / 1000;
    console.log(`goal (steady p95 <= ${(quiet + 2).toFixed(2)} s): ${p95 <= quiet + 2 ? 'MET' : 'NOT MET'} (${p95.toFixed(2)} s)`);
    if (window.length) {
      console.log(`load average (1 min) while measuring: mean ${(window.reduce((a, b) => a + b, 0) / window.length).toFixed(2)}, max ${Math.max(...window).toFixed(2)} (${window.length} samples)`);
    }
    return 0;
  } finally {
    clearTimeout(watchdog);
    await cleanup(stops);
  }
}

/** Stops everything started, newest first; one failing stop does not keep the others from running. */
async function cleanup(stops: Stoppable[]): Promise<void> {
  for (const s of stops.splice(0).reverse()) {
    try {
      await s.stop();
    } catch (err) {
      console.error(`bench:e2e: stopping ${s.name} failed: ${(err as Error).message}`);
    }
  }
}

main().then((code) => process.exit(code), (err: unknown) => failCli(err));
