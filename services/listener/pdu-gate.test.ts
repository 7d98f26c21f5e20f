// PduGate on hand-made byte streams: PDUs come out whole however the stream is split, a PDU inside one chunk is a
// view of it, each header is judged before its body is kept, and P-DATA-TF PDVs are read without copies.
import { associateRequestPdu, pDataPdus } from '../../tools/fuzz/dul-client';
import { MAX_ASSOCIATE_RQ_LENGTH, PduGate, parsePDataTf, parsePDataTfPieces } from './pdu-gate';

const request = associateRequestPdu('PACS', 'NEUROTRIAGE', [{ id: 1, abstractSyntaxUID: '1.2.840.10008.1.1', transferSyntaxUIDs: ['1.2.840.10008.1.2'] }]);
const data = pDataPdus(3, Buffer.alloc(10_000, 7), false, 4096);
const release = Buffer.from([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0]);

function frame(gate: PduGate, stream: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < stream.length; o += size) {
    const { pdus, violation } = gate.push(stream.subarray(o, o + size));
    expect(violation).toBeUndefined();
    out.push(...pdus.map((pieces) => Buffer.concat(pieces)));
  }
  return out;
}

test.each([1, 5, 6, 7, 100, 4102, 1 << 20])('PDUs come out whole with the stream cut every %i bytes', (size) => {
  const gate = new PduGate(16384);
  // The peer sends nothing after its A-ASSOCIATE-RQ until our A-ASSOCIATE-AC.
  expect(frame(gate, request, size).map((p) => p.toString('hex'))).toEqual([request.toString('hex')]);
  gate.accepted();
  const pdus = frame(gate, Buffer.concat([...data, release]), size);
  expect(pdus.map((p) => p.toString('hex'))).toEqual([...data, release].map((p) => p.toString('hex')));
});

test('a PDU inside one chunk is a view of it; its PDVs are views too', () => {
  const gate = new PduGate(16384);
  gate.push(request);
  gate.accepted();
  const chunk = Buffer.concat(data);
  const { pdus } = gate.push(chunk);
  expect(pdus[0]).toHaveLength(1);
  expect(pdus[0][0].buffer).toBe(chunk.buffer);
  const pdvs = parsePDataTf(pdus[0][0]);
  expect(pdvs?.map((p) => [p.getPresentationContextId(), p.isCommand(), p.isLastFragment()])).toEqual([[3, false, false]]);
  expect(pdvs?.[0].getValue().buffer).toBe(chunk.buffer);
  expect(parsePDataTf(Buffer.from([0x04, 0, 0, 0, 0, 6, 0, 0, 0, 9, 1, 2]))).toBeUndefined();
});

test('violations are reported at the header, before any body is kept', () => {
  const huge = new PduGate(16384).push(Buffer.from([0x01, 0, 0xff, 0xff, 0xff, 0xff, 0, 1]));
  expect(huge).toEqual({ pdus: [], violation: expect.objectContaining({ label: 'pdu-too-long', reason: 6 }) });
  // A plausible A-ASSOCIATE-RQ length passes; one beyond MAX_ASSOCIATE_RQ_LENGTH does not.
  expect(new PduGate(16384).push(Buffer.from([0x01, 0, 0, 0, 0x04, 0])).violation).toBeUndefined();
  const over = Buffer.from([0x01, 0, 0, 0, 0, 0]);
  over.writeUInt32BE(MAX_ASSOCIATE_RQ_LENGTH + 1, 2);
  expect(new PduGate(16384).push(over).violation).toMatchObject({ label: 'pdu-too-long' });

  const second = new PduGate(16384);
  expect(second.push(request).violation).toBeUndefined();
  second.accepted();
  expect(second.push(request).violation).toMatchObject({ label: 'unexpected-pdu', reason: 2 });

  const data0 = new PduGate(16384);
  expect(data0.push(data[0]).violation).toMatchObject({ label: 'unexpected-pdu' });

  const big = new PduGate(4096);
  big.push(request);
  big.accepted();
  expect(big.push(pDataPdus(1, Buffer.alloc(8000), false, 8000)[0]).violation).toMatchObject({ label: 'pdu-too-long' });
  expect(new PduGate(4096).push(Buffer.from([0x47, 0x45, 0x54, 0x20, 0x2f, 0x20])).violation).toMatchObject({ label: 'unknown-pdu', reason: 1 });
});

test.each([1, 5, 7, 100, 4000])('a P-DATA-TF that spans chunks comes out as pieces, its PDVs views of them (cut every %i bytes)', (size) => {
  const gate = new PduGate(16384);
  gate.push(request);
  gate.accepted();
  // Two PDVs in one PDU: a command, then a data set fragment.
  const command = Buffer.alloc(40, 1);
  const value = Buffer.alloc(3000, 9);
  const items = [[1, 0x03, command], [1, 0x00, value]] as const;
  const body = Buffer.concat(items.map(([id, control, v]) => {
    const head = Buffer.alloc(6);
    head.writeUInt32BE(v.length + 2, 0);
    head[4] = id;
    head[5] = control;
    return Buffer.concat([head, v]);
  }));
  const pdu = Buffer.concat([Buffer.from([0x04, 0, 0, 0, 0, 0]), body]);
  pdu.writeUInt32BE(body.length, 2);
  const chunks: Buffer[] = [];
  for (let o = 0; o < pdu.length; o += size) chunks.push(Buffer.from(pdu.subarray(o, o + size)));
  const pieces = chunks.flatMap((c) => gate.push(c).pdus);
  expect(pieces).toHaveLength(1);
  const pdvs = parsePDataTfPieces(pieces[0]);
  expect(pdvs?.map((p) => [p.getPresentationContextId(), p.isCommand(), p.isLastFragment()])).toEqual([[1, true, true], [1, false, false]]);
  expect(pdvs?.[0].getValue()).toEqual(command);
  expect(Buffer.concat(pdvs?.[1].getValues() ?? [])).toEqual(value);
  // Views, not copies: every piece of the data value lies in one of the chunks.
  for (const v of pdvs?.[1].getValues() ?? []) expect(chunks.some((c) => c.buffer === v.buffer)).toBe(true);
  // A PDV length that overruns the PDU is refused as parsePDataTf refuses it.
  const bad = Buffer.from(pdu);
  bad.writeUInt32BE(body.length, 6);
  expect(parsePDataTfPieces([bad.subarray(0, 20), bad.subarray(20)])).toBeUndefined();
});
