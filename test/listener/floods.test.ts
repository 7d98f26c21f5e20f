// Connection floods and protocol violations against a real listener, with raw DICOM Upper Layer bytes
// (tools/fuzz/dul-client.ts) and DCMTK as the legitimate peer. Loopback holds a whole /8, so the flood comes from
// 127.0.0.2 and the PACS from 127.0.0.1, like two hosts.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { DulClient, associateRequestPdu, commandSet, pDataPdus, type ProposedContext } from '../../tools/fuzz/dul-client';
import { splitPart10 } from '../../tools/fuzz/corpus';
import { dcmjs } from '../../shared/imaging/dcmjs';
import { keys } from '../../shared/studies';
import { echoscu, MR_IMAGE_STORAGE, EXPLICIT_VR_LE, newUid, storescu, writeMrInstance } from '../helpers/dcmtk';
import { CALLED_AE, CALLING_AE, listFiles, metricsText, startHarness, tempDir, waitFor, type Harness } from './harness';

const VERIFICATION: ProposedContext = { id: 1, abstractSyntaxUID: '1.2.840.10008.1.1', transferSyntaxUIDs: [EXPLICIT_VR_LE] };
const MR: ProposedContext = { id: 3, abstractSyntaxUID: MR_IMAGE_STORAGE, transferSyntaxUIDs: [EXPLICIT_VR_LE] };
/** Study Root C-FIND: never accepted, whatever DICOM_OTHER_STORAGE says. */
const FIND: ProposedContext = { id: 5, abstractSyntaxUID: '1.2.840.10008.5.1.4.1.2.2.1', transferSyntaxUIDs: [EXPLICIT_VR_LE] };

let files: string;
beforeAll(() => {
  files = tempDir('nt-flood-');
});
afterAll(() => rmSync(files, { recursive: true, force: true }));

function refusedCount(text: string, reason: string): number {
  const m = new RegExp(`neurotriage_listener_refused_connections_total\\{reason="${reason}"\\} (\\d+)`).exec(text);
  return m ? Number(m[1]) : NaN;
}

async function associated(h: Harness, contexts: ProposedContext[] = [VERIFICATION, MR], localAddress?: string): Promise<DulClient> {
  const client = new DulClient('127.0.0.1', h.ae.port, localAddress);
  const outcome = await client.associate(CALLING_AE, CALLED_AE, contexts);
  expect(outcome.kind).toBe('accepted');
  return client;
}

/** The A-ABORT a violation gets, and that the socket closes right after it (well within a second). */
async function expectAbortAndClose(client: DulClient, reason: number): Promise<void> {
  const started = Date.now();
  const reply = await client.nextPdu(5000);
  expect(reply?.type).toBe(0x07);
  expect([reply?.body[2], reply?.body[3]]).toEqual([2, reason]);
  expect(await client.waitClosed(5000)).toBe(true);
  expect(Date.now() - started).toBeLessThan(3000);
}

describe('protocol violations: A-ABORT and the socket closed at once', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ DICOM_ARTIM_TIMEOUT_SECONDS: 30 });
  });
  afterAll(() => h.stop());

  test('an A-ASSOCIATE-RQ claiming 0xFFFFFFFF bytes', async () => {
    const client = new DulClient('127.0.0.1', h.ae.port);
    await client.connected;
    client.write(Buffer.from([0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x01]));
    await expectAbortAndClose(client, 6);
  });

  test('a second A-ASSOCIATE-RQ inside an open association', async () => {
    const client = await associated(h);
    client.write(associateRequestPdu(CALLING_AE, CALLED_AE, [VERIFICATION]));
    await expectAbortAndClose(client, 2);
  });

  test('a P-DATA-TF claiming 0xFFFFFFFF bytes', async () => {
    const client = await associated(h);
    client.write(Buffer.from([0x04, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x10, 0x00]));
    await expectAbortAndClose(client, 6);
  });

  test('a C-STORE on a presentation context that was rejected gets no Success: A-ABORT, nothing stored', async () => {
    const client = new DulClient('127.0.0.1', h.ae.port);
    const outcome = await client.associate(CALLING_AE, CALLED_AE, [VERIFICATION, MR, FIND]);
    expect(outcome.kind === 'accepted' && outcome.contexts.get(FIND.id)?.result).toBe(3);
    const file = path.join(files, 'on-rejected.dcm');
    writeMrInstance(file, { StudyInstanceUID: newUid(), SeriesInstanceUID: newUid() });
    const { dataset } = splitPart10(readFileSync(file));
    await expect(client.store(FIND.id, MR_IMAGE_STORAGE, newUid(), dataset)).rejects.toThrow(/aborted \(source 2, reason 5\)/);
    expect(await client.waitClosed(5000)).toBe(true);
    expect(listFiles(path.join(h.dataDir, 'store'))).toEqual([]);
  });

  test('more than 128 presentation contexts (a duplicate ID the library renumbered past 255): A-ABORT, the process lives', async () => {
    const contexts = Array.from({ length: 128 }, (_, i) => ({ ...MR, id: 2 * i + 1 }));
    const outcome = await new DulClient('127.0.0.1', h.ae.port).associate(CALLING_AE, CALLED_AE, [...contexts, { ...MR, id: 3 }]);
    expect(outcome).toEqual({ kind: 'aborted', source: 2, reason: 6 });
    expect((await echoscu(h.ae)).code).toBe(0);
  });

  test('an A-ASSOCIATE-RQ shorter than its fixed fields, or whose items overrun it: A-ABORT (reason 6)', async () => {
    const short = new DulClient('127.0.0.1', h.ae.port);
    await short.connected;
    short.write(Buffer.concat([Buffer.from([0x01, 0x00, 0x00, 0x00, 0x00, 0x09]), Buffer.alloc(9)]));
    await expectAbortAndClose(short, 6);
    const rq = associateRequestPdu(CALLING_AE, CALLED_AE, [VERIFICATION]);
    const abstract = rq.indexOf(Buffer.from([0x30, 0x00]), 74);
    rq.writeUInt16BE(0x7fff, abstract + 2);
    const overrun = new DulClient('127.0.0.1', h.ae.port);
    await overrun.connected;
    overrun.write(rq);
    await expectAbortAndClose(overrun, 6);
  });

  const mrCommand = (hasDataSet: boolean) => commandSet({ CommandField: 0x0001, MessageID: 1, AffectedSOPClassUID: MR_IMAGE_STORAGE, AffectedSOPInstanceUID: newUid(), hasDataSet });

  test('DIMSE out of order: a data set with no command, a command before the last one\'s data set, an unreadable command, a C-STORE on the Verification context', async () => {
    const file = path.join(files, 'dimse-order.dcm');
    writeMrInstance(file, { StudyInstanceUID: newUid(), SeriesInstanceUID: newUid() });
    const { dataset } = splitPart10(readFileSync(file));
    const cases: [string, Buffer[], number][] = [
      ['data set first', pDataPdus(MR.id, dataset.subarray(0, 800), false, 65536), 5],
      ['two commands', [...pDataPdus(MR.id, mrCommand(true), true, 65536), ...pDataPdus(MR.id, mrCommand(true), true, 65536)], 5],
      ['unreadable command', pDataPdus(MR.id, Buffer.alloc(40, 0xff), true, 65536), 6],
      ['C-STORE on Verification', pDataPdus(VERIFICATION.id, mrCommand(true), true, 65536), 5],
    ];
    for (const [, pdus, reason] of cases) {
      const client = await associated(h);
      for (const p of pdus) client.write(p);
      await expectAbortAndClose(client, reason);
    }
    expect(listFiles(path.join(h.dataDir, 'store'))).toEqual([]);
    // No data set value reaches the log (the synthetic patient's name is in the bytes sent first), and dcmjs, which
    // printed such values on console, is silent in the listener.
    expect(h.logLines.join('\n')).not.toContain('SYNTHETIC');
    expect(dcmjs.log.getLevel()).toBe(5);
  });

  test('fragments that switch presentation context mid-message: A-ABORT (reason 5), never a Success, nothing stored', async () => {
    // Two contexts for the same class, both accepted: the switch alone is the violation (PS3.8 9.3.5).
    const MR_AGAIN: ProposedContext = { ...MR, id: 7 };
    const file = path.join(files, 'switched.dcm');
    const study = newUid();
    const sop = writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: newUid() });
    const { dataset } = splitPart10(readFileSync(file));
    const command = commandSet({ CommandField: 0x0001, MessageID: 1, AffectedSOPClassUID: MR_IMAGE_STORAGE, AffectedSOPInstanceUID: sop, hasDataSet: true });
    const head = pDataPdus(MR.id, dataset.subarray(0, 1000), false, 65536)[0];
    head[11] = 0x00; // not the last fragment
    const tail = pDataPdus(MR_AGAIN.id, dataset.subarray(1000), false, 65536);
    // In separate P-DATA-TFs, and both fragments in one.
    const oneTf = Buffer.concat([head, tail[0].subarray(6)]);
    oneTf.writeUInt32BE(oneTf.length - 6, 2);
    for (const pdus of [[head, ...tail], [oneTf]]) {
      // From an address of its own, so its log line is not summed with the violations above (one line per 10 s).
      const client = await associated(h, [VERIFICATION, MR, MR_AGAIN], '127.0.0.4');
      for (const p of pDataPdus(MR.id, command, true, 65536)) client.write(p);
      for (const p of pdus) client.write(p);
      await expectAbortAndClose(client, 5);
    }
    // A command whose fragments switch context.
    const commandHead = pDataPdus(MR.id, command.subarray(0, 20), true, 65536)[0];
    commandHead[11] = 0x01;
    const client = await associated(h, [VERIFICATION, MR, MR_AGAIN], '127.0.0.4');
    client.write(commandHead);
    for (const p of pDataPdus(MR_AGAIN.id, command.subarray(20), true, 65536)) client.write(p);
    await expectAbortAndClose(client, 5);
    expect(listFiles(path.join(h.dataDir, 'store'))).toEqual([]);
    expect(await h.client.exists(keys.study(study))).toBe(0);
    expect(h.logLines.filter((l) => l.includes('data set fragment on presentation context 7 inside a message on context 3'))).not.toHaveLength(0);
  });

  test('a command and the start of its data set in one P-DATA-TF (as dcm4che packs them) is stored: Success', async () => {
    const file = path.join(files, 'packed.dcm');
    const sop = writeMrInstance(file, { StudyInstanceUID: newUid(), SeriesInstanceUID: newUid() });
    const { dataset } = splitPart10(readFileSync(file));
    const pdv = (value: Buffer, command: boolean, last: boolean) => {
      const head = Buffer.alloc(6);
      head.writeUInt32BE(value.length + 2, 0);
      head[4] = MR.id;
      head[5] = (command ? 1 : 0) | (last ? 2 : 0);
      return Buffer.concat([head, value]);
    };
    const pdu = (...pdvs: Buffer[]) => {
      const body = Buffer.concat(pdvs);
      const head = Buffer.from([0x04, 0, 0, 0, 0, 0]);
      head.writeUInt32BE(body.length, 2);
      return Buffer.concat([head, body]);
    };
    const client = await associated(h);
    const command = commandSet({ CommandField: 0x0001, MessageID: 7, AffectedSOPClassUID: MR_IMAGE_STORAGE, AffectedSOPInstanceUID: sop, hasDataSet: true });
    client.write(pdu(pdv(command, true, true), pdv(dataset.subarray(0, 1000), false, false)));
    client.write(pdu(pdv(dataset.subarray(1000), false, true)));
    const reply = await client.nextPdu(10_000);
    expect(reply?.type).toBe(0x04);
    // The response's Status (0000,0900) in its one command PDV: 0000.
    const value = reply!.body.subarray(6);
    const at = value.indexOf(Buffer.from([0x00, 0x00, 0x00, 0x09, 0x02, 0x00, 0x00, 0x00]));
    expect(at).toBeGreaterThanOrEqual(0);
    expect(value.readUInt16LE(at + 8)).toBe(0);
    expect(await client.release()).toBe(true);
  });

  test('a peer announcing a small maximum PDU length gets each response split into PDUs that fit it', async () => {
    const client = new DulClient('127.0.0.1', h.ae.port);
    expect((await client.associate(CALLING_AE, CALLED_AE, [VERIFICATION, MR], 64)).kind).toBe('accepted');
    expect((await client.echo(VERIFICATION.id)).status).toBe(0);
    expect(client.responsePdus).toBeGreaterThan(1);
    // A refused instance: the response carries an Error Comment too, so more fragments.
    const refused = await client.store(MR.id, MR_IMAGE_STORAGE, newUid(), Buffer.from('not a data set at all'));
    expect(refused.status).toBeGreaterThanOrEqual(0xa700);
    expect(refused.errorComment).toBeTruthy();
    expect(client.responsePdus).toBeGreaterThan(2);
    expect(await client.release()).toBe(true);
  });

  test('each is counted by reason, and the listener carries on', async () => {
    const text = await metricsText(h.listener.metricsPort);
    expect(refusedCount(text, 'pdu-too-long')).toBe(2);
    expect(refusedCount(text, 'unexpected-pdu')).toBe(1);
    expect(refusedCount(text, 'unaccepted-context')).toBe(1);
    expect(refusedCount(text, 'invalid-pdu')).toBe(3);
    expect(refusedCount(text, 'dimse-violation')).toBe(7);
    expect(refusedCount(text, 'artim-timeout')).toBe(0);
    expect((await echoscu(h.ae)).code).toBe(0);
  });
});

test('an idle association is closed after DICOM_IDLE_TIMEOUT_SECONDS, not counted as a protocol violation', async () => {
  const h = await startHarness({ DICOM_IDLE_TIMEOUT_SECONDS: 1 });
  try {
    const client = await associated(h);
    expect(await client.waitClosed(10_000)).toBe(true);
    const text = await metricsText(h.listener.metricsPort);
    expect(refusedCount(text, 'invalid-pdu')).toBe(0);
    expect((await echoscu(h.ae)).code).toBe(0);
  } finally {
    await h.stop();
  }
});

/** Writes the A-ASSOCIATE-RQ, then `count` copies of the block as fast as TCP takes them, never reading a response. */
const UNREAD_REQUESTS = `
const fs = require('node:fs');
const net = require('node:net');
const [port, associate, block, count] = process.argv.slice(1);
const bytes = fs.readFileSync(block);
const socket = net.connect({ host: '127.0.0.1', port: Number(port) });
let sent = 0;
const write = () => {
  while (sent < Number(count)) {
    sent += 1;
    if (!socket.write(bytes)) return void socket.once('drain', write);
  }
  console.log('sent all');
};
socket.once('data', (chunk) => {
  socket.pause();
  console.log(chunk[0] === 0x02 ? 'accepted' : 'not accepted');
  write();
});
socket.on('connect', () => socket.write(fs.readFileSync(associate)));
socket.on('error', () => undefined);
socket.on('close', () => console.log('closed'));
`;

test('a peer sending C-ECHO-RQs without reading the responses is read no further: memory stays flat, the idle timeout closes it, others are served', async () => {
  const h = await startHarness({ DICOM_IDLE_TIMEOUT_SECONDS: 2 });
  const echo = pDataPdus(VERIFICATION.id, commandSet({ CommandField: 0x0030, MessageID: 1, AffectedSOPClassUID: VERIFICATION.abstractSyntaxUID, hasDataSet: false }), true, 65536)[0];
  const associate = path.join(files, 'unread-associate.bin');
  const block = path.join(files, 'unread-echoes.bin');
  writeFileSync(associate, associateRequestPdu(CALLING_AE, CALLED_AE, [VERIFICATION]));
  writeFileSync(block, Buffer.concat(Array.from({ length: 1000 }, () => echo)));
  // 3,000,000 requests (240 MB): each was answered into a write buffer the peer never drained, without bound.
  const peer = spawn(process.execPath, ['-e', UNREAD_REQUESTS, String(h.ae.port), associate, block, '3000'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  peer.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  try {
    await waitFor(() => out.includes('accepted'), 10_000, 'the association');
    const before = process.memoryUsage().rss;
    const started = Date.now();
    let peak = 0;
    while (!out.includes('closed') && Date.now() - started < 20_000) {
      peak = Math.max(peak, process.memoryUsage().rss - before);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(out.split('\n').filter(Boolean)).toEqual(['accepted', 'closed']);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(peak).toBeLessThan(64 * 1024 * 1024);
    expect((await echoscu(h.ae)).code).toBe(0);
  } finally {
    peer.kill();
    await h.stop();
  }
}, 60_000);

test('a connection that does not deliver its A-ASSOCIATE-RQ is closed after DICOM_ARTIM_TIMEOUT_SECONDS', async () => {
  const h = await startHarness({ DICOM_ARTIM_TIMEOUT_SECONDS: 1 });
  try {
    const client = new DulClient('127.0.0.1', h.ae.port);
    await client.connected;
    const started = Date.now();
    // Half an A-ASSOCIATE-RQ header, then nothing.
    client.write(Buffer.from([0x01, 0x00, 0x00]));
    expect(await client.waitClosed(10_000)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(refusedCount(await metricsText(h.listener.metricsPort), 'artim-timeout')).toBe(1);
  } finally {
    await h.stop();
  }
});

test('beyond DICOM_MAX_ASSOCIATIONS every peer gets A-ASSOCIATE-RJ (transient), none is dropped silently', async () => {
  const h = await startHarness({ DICOM_MAX_ASSOCIATIONS: 1 });
  try {
    const holder = await associated(h);
    // Twelve peers at once, more than the old TCP-level cap of DICOM_MAX_ASSOCIATIONS + 8.
    const outcomes = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const client = new DulClient('127.0.0.1', h.ae.port, `127.0.0.${i + 2}`);
        const outcome = await client.associate(CALLING_AE, CALLED_AE, [VERIFICATION]);
        client.destroy();
        return outcome;
      }),
    );
    for (const o of outcomes) expect(o).toEqual({ kind: 'rejected', result: 2, source: 3, reason: 2 });
    expect(await holder.release()).toBe(true);
    const text = await metricsText(h.listener.metricsPort);
    expect(text).toMatch(/neurotriage_listener_associations_total\{result="rejected",reason="local-limit-exceeded"\} 12/);
  } finally {
    await h.stop();
  }
});

/** A connection that sends one byte of an A-ASSOCIATE-RQ a second, and reconnects when the listener closes it. */
function slowConnection(port: number, localAddress: string, stop: { stopped: boolean }): Promise<number> {
  return new Promise((resolve) => {
    let opened = 0;
    const open = () => {
      if (stop.stopped) return resolve(opened);
      opened += 1;
      const socket = net.connect({ host: '127.0.0.1', port, localAddress });
      const request = associateRequestPdu('FLOOD', CALLED_AE, [VERIFICATION]);
      let sent = 0;
      const timer = setInterval(() => {
        if (!socket.destroyed && sent < request.length) socket.write(request.subarray(sent, (sent += 1)));
      }, 1000);
      socket.on('error', () => undefined);
      socket.on('data', () => undefined);
      socket.on('close', () => {
        clearInterval(timer);
        setTimeout(open, 500);
      });
      const stopper = setInterval(() => {
        if (!stop.stopped) return;
        clearInterval(stopper);
        socket.destroy();
      }, 100);
    };
    open();
  });
}

test('during 100 slow connections from one address, another peer\'s C-ECHO and C-STORE all succeed', async () => {
  const h = await startHarness({ DICOM_ARTIM_TIMEOUT_SECONDS: 2, DICOM_MAX_CONNECTIONS_PER_PEER: 8 });
  const stop = { stopped: false };
  const flood = Array.from({ length: 100 }, () => slowConnection(h.ae.port, '127.0.0.2', stop));
  try {
    // Let the flood fill its share first.
    await waitFor(async () => (refusedCount(await metricsText(h.listener.metricsPort), 'peer-connection-limit') >= 50 ? true : undefined), 30_000, 'the flood');
    const study = newUid();
    const results: Array<{ echo: number | null; store: number[] }> = [];
    const deadline = Date.now() + 12_000;
    for (let i = 0; i < 8 || Date.now() < deadline; i++) {
      const file = path.join(files, `legit-${i}.dcm`);
      writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: `${study}.1`, InstanceNumber: i + 1 });
      const echo = await echoscu(h.ae);
      const stored = await storescu(h.ae, [file]);
      results.push({ echo: echo.code, store: stored.statuses });
      if (i >= 40) break;
    }
    expect(results.every((r) => r.echo === 0)).toBe(true);
    expect(results.every((r) => r.store.length === 1 && r.store[0] === 0)).toBe(true);
    const text = await metricsText(h.listener.metricsPort);
    // The flood was held to its share and its slow requests timed out; none of it became an association.
    expect(refusedCount(text, 'peer-connection-limit')).toBeGreaterThan(50);
    expect(refusedCount(text, 'artim-timeout')).toBeGreaterThan(0);
    expect(text).toMatch(/neurotriage_listener_associations_total\{result="rejected",reason="local-limit-exceeded"\} 0/);
  } finally {
    stop.stopped = true;
    await Promise.all(flood);
    await h.stop();
  }
}, 120_000);
