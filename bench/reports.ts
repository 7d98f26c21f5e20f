// `npm run bench:reports`: the RIS report feed's ACK latency and throughput. One MLLP connection (the PACS
// simulator's sender, @medplum/hl7's Hl7Client, one message in flight as RIS feeds run) sends synthetic-length
// ORU^R01 reports to the feed of the API process (journal append + fdatasync, then one Redis transaction, then
// the ACK) on a private Redis (AOF everysec, as deployed) and a temp DATA_DIR: half for studies already received
// (filed), half for studies not yet received (held). Then the same through POST /api/v1/reports. Then HL7 batches
// (BHS ... BTS in one MLLP frame, answered by one batch of ACKs) of each size in BENCH_BATCH_SIZES, the same mix.
// Environment: BENCH_REPORTS (default 400), BENCH_BATCH_SIZES (default 100,500; empty: no batches).
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { createLogger } from '../shared/logger';
import { startPrivateRedis } from '../shared/private-redis';
import { connectRedis } from '../shared/redis';
import { keys, studyStorageKey } from '../shared/studies';
import { createReportInbound, loadReportsConfig } from '../services/api/inbound';
import { mllpFrame, MllpDecoder } from '../shared/mllp-framing';
import { buildOru, createReportSender } from '../tools/synth/send-reports';

const N = Number(process.env.BENCH_REPORTS ?? 400);
const BATCH_SIZES = (process.env.BENCH_BATCH_SIZES ?? '100,500').split(',').map((v) => Number(v.trim())).filter((v) => v > 0);
const TEXT = [
  'INDICATION: Sudden onset right-sided weakness.', 'TECHNIQUE: MRI brain: T2, FLAIR, DWI, ADC.', '',
  'FINDINGS:', 'There is restricted diffusion in the left MCA territory with corresponding FLAIR signal change.',
  'No haemorrhage. Ventricles normal in size. No mass lesion.', '', 'IMPRESSION:', '1. Acute left MCA territory infarct.',
].join('\n');

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
const fmt = (ms: number[]): string => {
  const s = [...ms].sort((a, b) => a - b);
  return `p50 ${pct(s, 50).toFixed(2)} ms, p95 ${pct(s, 95).toFixed(2)} ms, max ${s[s.length - 1].toFixed(2)} ms`;
};

/** One MLLP connection that sends a frame and resolves with the reply frame (one in flight). */
function mllpConnection(port: number): Promise<{ exchange(payload: Buffer): Promise<Buffer>; close(): void }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    const decoder = new MllpDecoder({ maxMessageBytes: 64 * 1024 * 1024 });
    let waiting: ((reply: Buffer) => void) | undefined;
    socket.on('data', (chunk) => {
      for (const frame of decoder.push(chunk)) if (frame.kind === 'message') waiting?.(frame.bytes);
    });
    socket.once('error', reject);
    socket.once('connect', () => resolve({
      exchange: (payload) => new Promise<Buffer>((done) => {
        waiting = done;
        socket.write(mllpFrame(payload));
      }),
      close: () => socket.end(),
    }));
  });
}

async function main(): Promise<void> {
  const redis = await startPrivateRedis({ stdio: 'ignore' });
  const dataDir = mkdtempSync(path.join(tmpdir(), 'nt-bench-reports-'));
  const client = connectRedis(redis.url, 'producer');
  const inbound = createReportInbound(loadReportsConfig({ REPORTS_MLLP_PORT: '0', REPORTS_MLLP_ALLOWED_FACILITIES: 'NT_SYNTH' }), {
    redis: client, registry: new Registry(), logger: createLogger('bench', 'silent'), dataDir,
  });
  await inbound.start();
  // The producer connection fails fast rather than queue: wait until it is up before the first write.
  if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve));
  try {
    for (let i = 0; i < N; i += 2) {
      const uid = `1.2.826.0.1.3680043.10.999.${i}`;
      await client.hset(keys.study(uid), { StudyInstanceUID: uid, storageKey: studyStorageKey(uid), status: 'scored', AccessionNumber: `BENCH${i}` });
    }
    await inbound.intake.sweep({ full: true });
    const sender = createReportSender({ host: '127.0.0.1', port: inbound.mllpAddress()!.port });
    const filed: number[] = [];
    const held: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      const t = performance.now();
      const code = await sender.send({ AccessionNumber: `BENCH${i}`, text: `${TEXT}\n(${i})` });
      if (code !== 'AA') throw new Error(`report ${i} answered ${code}`);
      (i % 2 === 0 ? filed : held).push(performance.now() - t);
    }
    const seconds = (performance.now() - t0) / 1000;
    await sender.close();
    const api: number[] = [];
    for (let i = 0; i < Math.min(N, 200); i++) {
      const t = performance.now();
      await inbound.intake.ingest(
        { AccessionNumber: `BENCH${i}`, text: `${TEXT}\n(api ${i})`, status: 'C', receivedAt: Date.now(), source: 'api' },
        `bench-api-${i}`,
      );
      api.push(performance.now() - t);
    }
    console.log(`report feed, ${N} ORU^R01 over one MLLP connection (${TEXT.length + 6} characters each):`);
    console.log(`  ${(N / seconds).toFixed(0)} reports/s; send to ACK: filed ${fmt(filed)}; held ${fmt(held)}`);
    console.log(`  intake alone (journal fdatasync + Redis transaction, the API route's cost without HTTP): ${fmt(api)}`);
    const port = inbound.mllpAddress()!.port;
    for (const size of BATCH_SIZES) {
      const connection = await mllpConnection(port);
      const batches = Math.max(2, Math.round(N / size));
      const perBatch: number[] = [];
      let bytes = 0;
      const tb = performance.now();
      for (let b = 0; b < batches; b++) {
        const messages = Array.from({ length: size }, (_, j) => {
          const i = (b * size + j) % N;
          return buildOru({ AccessionNumber: `BENCH${i}`, text: `${TEXT}\n(batch ${size} ${b} ${j})` }, { now: Date.now(), controlId: `B${size}-${b}-${j}` });
        });
        const payload = Buffer.from(['BHS|^~\\&|NT_SYNTH_RIS|NT_SYNTH|NEUROTRIAGE||||||' + `BENCH-${size}-${b}`, ...messages, `BTS|${size}`].join('\r'), 'utf8');
        bytes = payload.length;
        const t = performance.now();
        const reply = (await connection.exchange(payload)).toString('utf8');
        perBatch.push(performance.now() - t);
        const aa = reply.match(/\rMSA\|AA\|/g)?.length ?? 0;
        if (aa !== size || !reply.endsWith(`BTS|${size}`)) throw new Error(`batch ${b} of ${size}: ${aa} AA`);
      }
      const seconds = (performance.now() - tb) / 1000;
      connection.close();
      console.log(
        `  batches of ${size} (${(bytes / 1024).toFixed(0)} KiB a frame), ${batches} batches: frame to batch ACK ${fmt(perBatch)}; ` +
          `${((seconds * 1000) / (batches * size)).toFixed(2)} ms a message, ${((batches * size) / seconds).toFixed(0)} reports/s`,
      );
    }
    console.log(`machine: ${cpus().length} x ${cpus()[0]?.model}, Node ${process.version}; DATA_DIR on ${tmpdir()}`);
    console.log(`command: npm run bench:reports (BENCH_REPORTS=${N}, BENCH_BATCH_SIZES=${BATCH_SIZES.join(',')})`);
  } finally {
    await inbound.close();
    client.disconnect();
    await redis.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
