// npm run bench:outbound: latency of the outbound leg alone, from enqueue() to the acknowledged delivery (HL7 ACK
// from an MLLP peer, webhook 2xx), through BullMQ on a private Redis, on loopback. Two phases: steady arrivals
// and a burst. Figures only; nothing is asserted. The peers answer at once, so this is neurotriage's own cost.
// Usage: node dist/bench/outbound.js [--n 20] [--interval-ms 100] [--burst 50]
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { Hl7Connection, type Hl7MessageEvent } from '@medplum/hl7';
import { Registry } from 'prom-client';
import { createLogger } from '../shared/logger';
import { startPrivateRedis } from '../shared/private-redis';
import { connectRedis } from '../shared/redis';
import { resultKeys, type StudyResult } from '../shared/results';
import { loadOutboundConfig } from '../services/api/outbound/config';
import type { Adapter } from '../services/api/outbound/errors';
import { resultKey } from '../services/api/outbound/idempotency';
import { createOutbound, type Outbound } from '../services/api/outbound/outbound';
import { failCli, parseOptions } from '../shared/cli-args';


async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

function result(i: number): StudyResult {
  const now = Date.now();
  return {
    StudyInstanceUID: `1.2.826.0.1.3680043.10.1234.99.${process.pid}.${now}.${i}`,
    AccessionNumber: `BENCH${i}`,
    priority: i % 3 === 0 ? 'STAT' : i % 3 === 1 ? 'URGENT' : 'ROUTINE',
    findings: Array.from({ length: 8 }, (_, k) => ({
      queryId: `q${k}`, text: `Synthetic finding number ${k}`, priority: 'URGENT' as const,
      similarity: 0.1 + k / 100, probability: k % 2 ? null : 0.5, threshold: k % 2 ? null : 0.4, flagged: k === 0, triggered: k === 0,
      calibration: k % 2 ? ('uncalibrated' as const) : ('calibrated' as const), bySequence: {},
    })),
    abnormalProbability: 0.5, sequencesUsed: ['T2', 'FLAIR', 'DWI'], sequencesMissing: [], series: [], confidence: 1,
    model: { bundleId: 'bench', version: '0' }, provider: 'cpu', priorityProbability: 0.5,
    judgedWith: { querySetVersion: 'bench', classThresholds: {} },
    timingsMs: { decode: 0, preprocess: 0, inference: 0, scoring: 0, total: 0 }, receivedAt: now, scoredAt: now,
  };
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

async function phase(outbound: Outbound, redis: ReturnType<typeof connectRedis>, name: string, count: number, intervalMs: number, offset: number): Promise<void> {
  const started = new Map<string, number>();
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const r = result(offset + i);
    await redis.set(resultKeys.result(r.StudyInstanceUID), JSON.stringify(r));
    started.set(resultKey(r).jobId, Date.now());
    sends.push(outbound.enqueue(r));
    if (intervalMs > 0) await new Promise((res) => setTimeout(res, intervalMs));
  }
  await Promise.all(sends);
  for (const adapter of outbound.adapters) {
    const queue = outbound.queue(adapter);
    const latencies: number[] = [];
    for (const [jobId, t0] of started) {
      for (;;) {
        const job = await queue.getJob(jobId);
        if (job?.finishedOn) {
          latencies.push(job.finishedOn - t0);
          break;
        }
        await new Promise((res) => setTimeout(res, 5));
      }
    }
    console.log(
      `${name.padEnd(28)} ${adapter.padEnd(8)} n=${String(latencies.length).padEnd(4)} ` +
      `p50=${pct(latencies, 50)} ms  p95=${pct(latencies, 95)} ms  max=${Math.max(...latencies)} ms`,
    );
  }
}

async function main(): Promise<void> {
  const values = parseOptions({ n: { type: 'string', default: '20' }, 'interval-ms': { type: 'string', default: '100' }, burst: { type: 'string', default: '50' } });
  const n = Number(values.n);
  const intervalMs = Number(values['interval-ms']);
  const burst = Number(values.burst);

  const redisServer = await startPrivateRedis({ stdio: 'ignore' });
  // Everything started here is stopped in finally, also when a phase fails.
  const cleanup: Array<() => Promise<unknown>> = [() => redisServer.stop()];
  try {
    const redis = connectRedis(redisServer.url, 'worker');
    cleanup.unshift(async () => redis.disconnect());
    let acked = 0;
    const mllp = net.createServer((socket) => {
      socket.setNoDelay(true);
      const connection = new Hl7Connection(socket, 'utf-8');
      connection.addEventListener('message', (event: Hl7MessageEvent) => {
        acked += 1;
        connection.send(event.message.buildAck({ ackCode: 'AA' }));
      });
    });
    const hook = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(204).end());
    });
    const mllpPort = await listen(mllp);
    const hookPort = await listen(hook);
    cleanup.unshift(() => new Promise((r) => mllp.close(r)), () => {
      hook.closeAllConnections();
      return new Promise((r) => hook.close(r));
    });
    const outbound = createOutbound(
      loadOutboundConfig({
        HL7_MLLP_TARGET: `127.0.0.1:${mllpPort}`,
        WEBHOOK_URL: `http://127.0.0.1:${hookPort}/hook`,
        WEBHOOK_SECRET: 'bench-secret-0123456789',
        OUTBOUND_CATCHUP_MINUTES: '0',
      }),
      { redisUrl: redisServer.url, registry: new Registry(), logger: createLogger('bench-outbound', 'silent'), dataDir: os.tmpdir(), subscribe: false },
    );
    cleanup.unshift(() => outbound.close());
    await outbound.start();
    console.log(`outbound bench: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}, Redis on a unix socket, peers on 127.0.0.1`);
    console.log('latency = enqueue() -> job finished (HL7: ACK received; webhook: 2xx received)');
    // Warm-up: first connection, Lua scripts loaded.
    await phase(outbound, redis, 'warm-up (discarded)', 3, 0, 1_000_000);
    await phase(outbound, redis, `steady: ${n} every ${intervalMs} ms`, n, intervalMs, 0);
    await phase(outbound, redis, `burst: ${burst} at once`, burst, 0, 10_000);
    const adapters: Adapter[] = outbound.adapters;
    console.log(`HL7 messages acknowledged by the peer: ${acked}; adapters: ${adapters.join(', ')}`);
  } finally {
    for (const step of cleanup) await step().catch(() => undefined);
  }
}

main().catch((err: unknown) => failCli(err, { stack: true }));
