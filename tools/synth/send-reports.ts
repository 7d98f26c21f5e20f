// The PACS simulator's RIS side: sends each generated study's report as an HL7 v2.5.1 ORU^R01 over MLLP, the way
// a RIS feeds finished reports, and waits for the ACK (@medplum/hl7's Hl7Client: framing, connect timeout, ACK
// matched on MSH-10). The message carries what the RIS would key on (accession number in OBR-3 and OBR-18, result
// status F) and the report one OBX TX row per line; no PID (the simulator has no patient to name).
import { createHash } from 'node:crypto';
import { Hl7Message } from '@medplum/core';
import { Hl7Client } from '@medplum/hl7';
import { hl7Escape, hl7Segment as seg } from '../../shared/hl7-text';
import type { StudyReport } from './types';

export interface ReportTarget {
  host: string;
  port: number;
}

/** Parses "host:port" (the CLI's --reports-to value). */
export function parseReportTarget(spec: string): ReportTarget {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:@\s]+)):(\d{1,5})$/.exec(spec.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw new Error(`--reports-to expects host:port, got "${spec}"`);
  return { host: m[1] ?? m[2]!, port };
}

export interface OruOptions {
  /** MSH-10; default derived from the accession number and text (a resend of the same report has the same id). */
  controlId?: string;
  now: number;
  sendingApplication?: string;
  sendingFacility?: string;
  status?: 'F' | 'C' | 'P';
}

/** HL7 DTM, UTC, to the second. */
function dtm(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14) + '+0000';
}

/** The ORU^R01 text of one report (segments separated by \r). */
export function buildOru(report: Pick<StudyReport, 'AccessionNumber' | 'text'>, opts: OruOptions): string {
  const acc = hl7Escape(report.AccessionNumber);
  const controlId = opts.controlId ?? createHash('sha256').update(`${report.AccessionNumber}\0${report.text}`).digest('hex').slice(0, 20).toUpperCase();
  const when = dtm(opts.now);
  const status = opts.status ?? 'F';
  const segments = [
    seg('MSH', {
      3: hl7Escape(opts.sendingApplication ?? 'NT_SYNTH_RIS'), 4: hl7Escape(opts.sendingFacility ?? 'NT_SYNTH'), 5: 'NEUROTRIAGE',
      7: when, 9: 'ORU^R01^ORU_R01', 10: hl7Escape(controlId), 11: 'P', 12: '2.5.1', 18: 'UNICODE UTF-8',
    }),
    seg('ORC', { 1: 'RE', 3: acc, 5: 'CM' }),
    seg('OBR', { 1: '1', 3: acc, 4: 'MRBRAIN^MRI brain^99SYNTH', 7: when, 18: acc, 22: when, 25: status }),
    ...report.text.split(/\r\n|\r|\n/).map((line, i) =>
      seg('OBX', { 1: String(i + 1), 2: 'TX', 3: '18748-4^Diagnostic imaging study^LN', 5: hl7Escape(line), 11: status })),
  ];
  return segments.join('\r');
}

export interface ReportSender {
  /** Sends one report and resolves with the ACK code (AA, AE, AR); rejects when no ACK came. */
  send(report: Pick<StudyReport, 'AccessionNumber' | 'text'>): Promise<string>;
  close(): Promise<void>;
}

export function createReportSender(target: ReportTarget, timeoutMs = 30_000): ReportSender {
  const client = new Hl7Client({ host: target.host, port: target.port, connectTimeout: timeoutMs, keepAlive: true });
  // One message in flight: MLLP is request/reply, and the ACK is matched on MSH-10.
  let tail: Promise<unknown> = Promise.resolve();
  return {
    send(report) {
      const run = tail.then(async () => {
        const ack = await client.sendAndWait(Hl7Message.parse(buildOru(report, { now: Date.now() })), { timeoutMs });
        return ack.getSegment('MSA')?.getField(1)?.toString() ?? '';
      });
      tail = run.catch(() => undefined);
      return run;
    },
    close: () => client.close(),
  };
}
