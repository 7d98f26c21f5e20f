// Set-up for the report feed's integration tests: a private Redis, a temp DATA_DIR, the report feed of the API
// process (journal, intake, rejected store, MLLP listener on 127.0.0.1:0) with its log lines captured, the API app
// on top, and a raw MLLP client (node:net, <VT>...<FS><CR> framing written here, not by the code under test).
// Studies are "received" by writing the study hash exactly as the listener's RECORD_ARRIVAL does, and "scored" by
// setting the status and publishing on the scored channel as the worker does.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Hl7Message } from '@medplum/core';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { hl7Unescape } from '../../shared/hl7-text';
import { createLogger } from '../../shared/logger';
import { connectRedis } from '../../shared/redis';
import { resultKeys } from '../../shared/results';
import { keys, studyStorageKey } from '../../shared/studies';
import { createReportInbound, loadReportsConfig, type ReportInbound } from '../../services/api/inbound';
import { buildTestApp, TOKENS } from '../api/helpers';
import { startRedis, type TestRedis } from '../helpers/redis';
import { waitFor as wait } from '../helpers/wait';

/** A RIS account: may post reports, reads no study. */
export const REPORTER_TOKEN = { token: 'reporter-token-0123456789', role: 'reporter' as const, name: 'ris-feed' };
export const REPORTER = { authorization: `Bearer ${REPORTER_TOKEN.token}` };

export interface Feed {
  redis: TestRedis;
  client: Redis;
  dataDir: string;
  inbound: ReportInbound;
  registry: Registry;
  port: number;
  /** Every log line the feed and the app wrote (trace level), raw JSON. */
  logs: string[];
  app: FastifyInstance;
  /** Stops the feed and app (not Redis): for a restart on the same Redis and DATA_DIR. */
  stopFeed(): Promise<void>;
  stop(): Promise<void>;
}

/** `timeZone`: the site's, for report times without an offset (the process's TZ cannot be set from inside jest). */
export async function startFeed(env: Record<string, string> = {}, existing?: { redis: TestRedis; dataDir: string }, opts: { timeZone?: string } = {}): Promise<Feed> {
  const redis = existing?.redis ?? (await startRedis());
  const dataDir = existing?.dataDir ?? mkdtempSync(path.join(tmpdir(), 'nt-reports-'));
  const client = connectRedis(redis.url, 'producer');
  const logs: string[] = [];
  const logger = createLogger('api', 'trace', { write: (line: string) => logs.push(line) });
  const registry = new Registry();
  const config = loadReportsConfig({ REPORTS_MLLP_PORT: '0', REPORTS_MLLP_ALLOWED_FACILITIES: 'NT_SYNTH', ...env });
  const inbound = createReportInbound(config, { redis: client, registry, logger, dataDir, instance: 'test', timeZone: opts.timeZone });
  try {
    await inbound.start();
  } catch (err) {
    await inbound.close().catch(() => undefined);
    client.disconnect();
    if (!existing) await redis.stop();
    throw err;
  }
  const app = await buildTestApp(client, { reports: inbound, logger, registry, tokens: [...TOKENS, REPORTER_TOKEN], config: { DATA_DIR: dataDir, DISK_MIN_FREE_MB: 1 } });
  let stopped = false;
  const stopFeed = async () => {
    if (stopped) return;
    stopped = true;
    await inbound.close();
    await app.close();
    client.disconnect();
  };
  return {
    redis, client, dataDir, inbound, registry, logs, app, port: inbound.mllpAddress()!.port, stopFeed,
    async stop() {
      await stopFeed();
      if (!existing) {
        await redis.stop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}

const VT = 0x0b;
const FS = 0x1c;
const CR = 0x0d;

/** Opens a connection, writes the bytes (framed unless raw), and resolves with `replies` framed replies. */
export function mllpExchange(port: number, payload: Buffer | string | Array<Buffer | string>, opts: { raw?: boolean; replies?: number; timeoutMs?: number } = {}): Promise<Buffer[]> {
  const parts = (Array.isArray(payload) ? payload : [payload]).map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p));
  const wire = opts.raw ? Buffer.concat(parts) : Buffer.concat(parts.flatMap((p) => [Buffer.from([VT]), p, Buffer.from([FS, CR])]));
  const want = opts.replies ?? parts.length;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    let buffered = Buffer.alloc(0);
    const replies: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`got ${replies.length} of ${want} MLLP replies`));
    }, opts.timeoutMs ?? 30_000);
    socket.on('connect', () => socket.write(wire));
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const start = buffered.indexOf(VT);
        const end = buffered.indexOf(FS, start);
        if (start === -1 || end === -1 || buffered[end + 1] !== CR) break;
        replies.push(buffered.subarray(start + 1, end));
        buffered = buffered.subarray(end + 2);
      }
      if (replies.length >= want) {
        clearTimeout(timer);
        socket.end();
        resolve(replies);
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** One message, one ACK, parsed. */
export async function send(port: number, message: string | Buffer): Promise<Hl7Message> {
  const [reply] = await mllpExchange(port, message);
  return Hl7Message.parse(reply.toString('utf8'));
}

/** MSA-n of an ACK, HL7 escapes decoded. */
export const msa = (ack: Hl7Message, n: number): string => hl7Unescape(ack.getSegment('MSA')?.getField(n)?.toString() ?? '');

/** What the listener writes when the first instance of a study arrives (services/listener/study-assembler.ts). */
export async function receiveStudy(client: Redis, uid: string, accession: string, now = Date.now()): Promise<void> {
  await client
    .multi()
    .hsetnx(keys.study(uid), 'firstReceivedAt', now)
    .hset(keys.study(uid), { StudyInstanceUID: uid, storageKey: studyStorageKey(uid), lastReceivedAt: now, status: 'received', AccessionNumber: accession })
    .hincrby(keys.study(uid), 'instances', 1)
    .exec();
}

/** What the worker does once the study's result is written: status scored, then the scored event. */
export async function scoreStudy(client: Redis, uid: string): Promise<void> {
  await client.hset(keys.study(uid), { status: 'scored', statusAt: Date.now() });
  await client.publish(resultKeys.scoredChannel(), uid);
}

/** test/helpers/wait.ts's waitFor with the probe first, as the report tests call it. */
export function waitFor<T>(probe: () => Promise<T | null | undefined | false>, what: string, timeoutMs = 30_000): Promise<T> {
  return wait(what, probe, timeoutMs, 50);
}

/** A metric sample's value from the registry's text, e.g. sample(text, 'neurotriage_api_reports_stored_total{source="hl7"}'). */
export function sample(metricsText: string, series: string): number {
  const line = metricsText.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : NaN;
}
