// Unit tests of the ORU^R01 reader, the ACKs, MLLP framing and HL7 text escaping (pure code: no sockets, no Redis).
import { Hl7Message } from '@medplum/core';
import { decodeLatin1, decodeSingleByte, Hl7CharsetSwitch, hl7Escape, hl7Segment, Hl7UndefinedByte, hl7Unescape, latin1Byte, singleByteOf } from '../../../shared/hl7-text';
import { reportSentences } from '../../../shared/language/sentences';
import { buildOru } from '../../../tools/synth/send-reports';
import { ackFor, ackForUnparsed, controlIdOf } from './ack';
import { batchAck, BatchProblem, countDisagrees, countMessages, isBatch, splitBatch } from './batch';
import { loadReportsConfig } from './config';
import { CR, FS, MllpDecoder, VT, mllpFrame } from '../../../shared/mllp-framing';
import { decodeMessage, joinSegments, OruProblem, parseHl7Time, parseOru, type OruRules } from './oru';

// Report times without an offset are read in UTC here, whatever the zone of the machine running the tests.
const RULES: OruRules = { accessionFields: ['OBR-3', 'OBR-18', 'ORC-3'], allowedFacilities: new Set(['NT_SYNTH']), timeZone: 'UTC' };
/** MSH's time, 20260101: that whole day. */
const MSH_DAY = { from: Date.UTC(2026, 0, 1), to: Date.UTC(2026, 0, 2), field: 'MSH-7' };
/** OBR with the given fields (OBR-1 = 1 unless given). */
const obr = (fields: Record<number, string>): string => hl7Segment('OBR', { 1: '1', ...fields });
const MSH = 'MSH|^~\\&|RIS|NT_SYNTH|NT||20260101||ORU^R01|X|P|2.5.1';
const ACK_OPTS = { now: Date.UTC(2026, 0, 1), ackControlId: 'NTACK0' };
const TEXT = 'FINDINGS:\nRestricted diffusion in the left MCA territory.\n\nIMPRESSION:\nAcute left MCA infarct.';

function problemOf(fn: () => unknown): OruProblem {
  try {
    fn();
  } catch (err) {
    if (err instanceof OruProblem) return err;
    throw err;
  }
  throw new Error('expected an OruProblem');
}

describe('HL7 text escaping', () => {
  test('unescape inverts escape, line breaks included', () => {
    const text = 'a|b^c&d~e\\f\nsecond line\r\nthird';
    expect(hl7Unescape(hl7Escape(text))).toBe('a|b^c&d~e\\f\nsecond line\nthird');
  });
  test('decodes hex data and formatting, keeps what it does not know', () => {
    expect(hl7Unescape('caf\\XE9\\ \\H\\bold\\N\\ \\.sp\\x \\Z99\\')).toBe('café bold \nx \\Z99\\');
    // A line break sent as hex is a line break like \.br\, not a raw CR kept in the stored text.
    expect(hl7Unescape('one\\X0D\\two\\X0D0A\\three\\X0A\\four')).toBe('one\ntwo\nthree\nfour');
  });
  test('hex data is read in the message\'s character set: UTF-8 bytes in a UTF-8 message, split across escapes too', () => {
    // Mirth and Rhapsody write bytes above 0x7F as \Xhh\ when told to keep the wire ASCII: in a UTF-8 message those
    // are UTF-8 bytes ("café ±1" was stored as "cafÃ© Â±1").
    expect(hl7Unescape('caf\\XC3A9\\ \\XC2B1\\1', { encoding: 'utf8' })).toBe('café ±1');
    expect(hl7Unescape('caf\\XC3\\\\XA9\\', { encoding: 'utf8' })).toBe('café');
    // Bytes that are no UTF-8 (a lone ISO 8859-1 byte) still read as ISO 8859-1 rather than U+FFFD.
    expect(hl7Unescape('caf\\XE9\\', { encoding: 'utf8' })).toBe('café');
    expect(hl7Unescape('5 \\XA4\\', { encoding: 'latin9' })).toBe('5 €');
    expect(hl7Unescape('caf\\XE9\\', { encoding: 'latin1' })).toBe('café');
  });
  test('8859/1 is read as windows-1252 and every byte goes back as itself (the ACK mirrors header fields byte for byte)', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const text = decodeLatin1(all);
    expect(text.slice(0x93, 0x97)).toBe('\u201C\u201D\u2022\u2013');
    expect(text.charCodeAt(0x81)).toBe(0x81);
    expect([...text].map(latin1Byte)).toEqual([...all]);
  });
  test('8859/2 to 8859/9 and 8859/15: every byte the part defines is read as one character and goes back as itself', () => {
    for (const encoding of ['latin2', 'latin3', 'latin4', 'cyrillic', 'arabic', 'greek', 'hebrew', 'latin5', 'latin9'] as const) {
      const wrong: string[] = [];
      for (let byte = 0; byte < 256; byte += 1) {
        let ch: string;
        try {
          ch = decodeSingleByte(Uint8Array.of(byte), encoding);
        } catch (err) {
          // Undefined bytes are in the upper half only, and refused as such.
          if (!(err instanceof Hl7UndefinedByte) || byte < 0xa0) wrong.push(`${byte} throws`);
          continue;
        }
        if (ch.length !== 1 || singleByteOf(ch, encoding) !== byte) wrong.push(`${byte} -> ${ch}`);
      }
      expect([encoding, wrong]).toEqual([encoding, []]);
    }
  });
  test('formatting that separates words keeps them apart: \\.sk\\ is spaces, \\.ce\\ ends the line', () => {
    expect(hl7Unescape('left\\.sk\\frontal \\.sk3\\lobe')).toBe('left frontal    lobe');
    expect(hl7Unescape('No haemorrhage.\\.ce\\IMPRESSION')).toBe('No haemorrhage.\nIMPRESSION');
  });
  test('a character set switch to the set the message is read in is dropped; any other is refused, never kept as text', () => {
    expect(hl7Unescape('A\\C2842\\B\\C2D41\\C', { encoding: 'utf8' })).toBe('ABC');
    expect(hl7Unescape('A\\C2842\\B\\C2D41\\C', { encoding: 'latin1' })).toBe('ABC');
    expect(() => hl7Unescape('A\\M2442\\B', { encoding: 'utf8' })).toThrow(Hl7CharsetSwitch);
    expect(() => hl7Unescape('A\\C2D42\\B', { encoding: 'latin1' })).toThrow(Hl7CharsetSwitch);
  });
});

describe('parseOru', () => {
  test('reads accession number, status and the report text line by line, headings kept', () => {
    const parsed = parseOru(buildOru({ AccessionNumber: 'ACC42', text: TEXT }, { now: 0, controlId: 'MSG1' }), RULES);
    expect(parsed.controlId).toBe('MSG1');
    expect(parsed.sendingFacility).toBe('NT_SYNTH');
    // buildOru writes its time in OBR-22 (and MSH-7): OBR-22 is the report's time, to the second.
    expect(parsed.reports).toEqual([{ AccessionNumber: 'ACC42', status: 'F', text: TEXT, reportTime: { from: 0, to: 1000, field: 'OBR-22' } }]);
  });

  test('FT with escapes, several OBX joined in order, sections named by LOINC get their heading', () => {
    const msg = [
      'MSH|^~\\&|RIS|HOSP|NT||20260101120000||ORU^R01|X1|P|2.3.1',
      'PID|1||CANARY-ID||CANARY^NAME',
      obr({ 3: 'ACC-7', 4: 'MR^MR brain', 25: 'C' }),
      'OBX|1|FT|18782-3^Findings^LN||Lateral ventricles \\T\\ third ventricle dilated.\\.br\\No blood.',
      'OBX|2|NM|12345^Size^LN||14|mm',
      'OBX|3|TX|19005-8^Impression^LN||Obstructive hydrocephalus.~Suggest follow-up.',
      'OBX|4|TX|19005-8^Impression^LN||wrongly sent line||||||W',
    ].join('\r');
    const parsed = parseOru(msg, { ...RULES, allowedFacilities: null });
    expect(parsed.reports).toEqual([{
      AccessionNumber: 'ACC-7', status: 'C',
      text: 'FINDINGS:\nLateral ventricles & third ventricle dilated.\nNo blood.\n\nIMPRESSION:\nObstructive hydrocephalus.\nSuggest follow-up.',
      reportTime: { from: Date.UTC(2026, 0, 1, 12), to: Date.UTC(2026, 0, 1, 12, 0, 1), field: 'MSH-7' },
    }]);
    expect(JSON.stringify(parsed.reports)).not.toMatch(/CANARY/);
  });

  test('an OBX of another observation starts a new block: a COMPARISON section does not swallow the next OBX', () => {
    const msg = [
      MSH, obr({ 3: 'ACC-9', 25: 'F' }),
      'OBX|1|TX|18834-2^Comparison^LN||CT head 2 days ago.',
      'OBX|2|TX|REP^Report text^L||Marked dilatation of the lateral and third ventricles, acute hydrocephalus.',
      'OBX|3|TX|REP^Report text^L||No haemorrhage.',
      'OBX|4|TX|19005-8^Impression^LN||Acute hydrocephalus.',
    ].join('\r');
    const [report] = parseOru(msg, RULES).reports;
    expect(report.text).toBe(
      'COMPARISON:\nCT head 2 days ago.\n\nMarked dilatation of the lateral and third ventricles, acute hydrocephalus.\nNo haemorrhage.\n\nIMPRESSION:\nAcute hydrocephalus.',
    );
    // The reader drops the comparison and keeps the findings that followed it.
    const read = reportSentences(report.text).map((x) => x.text);
    expect(read.some((t) => /CT head/.test(t))).toBe(false);
    expect(read).toEqual(expect.arrayContaining(['Marked dilatation of the lateral and third ventricles, acute hydrocephalus', 'No haemorrhage', 'Acute hydrocephalus']));
  });

  test('a section whose text begins with its name as a word, not a heading, still gets the heading', () => {
    const msg = [MSH, obr({ 3: 'A', 25: 'F' }),
      'OBX|1|TX|18834-2^Comparison^LN||Comparison is made with the MRI of 2024, which showed a subdural haematoma.',
      'OBX|2|TX|19005-8^Impression^LN||Impression: no acute abnormality.',
      'OBX|3|TX|18782-3^Findings^LN||FINDINGS',
      'OBX|4|TX|18782-3^Findings^LN||Resolved collection.'].join('\r');
    const { text } = parseOru(msg, RULES).reports[0];
    expect(text).toBe('COMPARISON:\nComparison is made with the MRI of 2024, which showed a subdural haematoma.\n\nImpression: no acute abnormality.\n\nFINDINGS\nResolved collection.');
    // The reader drops the comparison: the old study's haematoma is not read as this study's finding.
    expect(reportSentences(text).some((x) => /haematoma/.test(x.text))).toBe(false);
  });

  test('accession number from the configured fields in order, OBR-18 when OBR-3 is empty', () => {
    const msg = [MSH, obr({ 18: 'ACC-18', 25: 'P' }), 'OBX|1|TX|x||text'].join('\r');
    expect(parseOru(msg, RULES).reports[0]).toMatchObject({ AccessionNumber: 'ACC-18', status: 'P' });
    expect(problemOf(() => parseOru(msg, { ...RULES, accessionFields: ['ORC-3'] }))).toMatchObject({ ack: 'AE', reason: 'no-accession' });
    const cfg = loadReportsConfig({ REPORTS_ACCESSION_FIELDS: 'obr-18, orc-3' });
    expect(cfg.accessionFields).toEqual(['OBR-18', 'ORC-3']);
  });

  test('linked exams: two OBRs share the report written under the first', () => {
    const msg = [MSH, obr({ 3: 'A1', 25: 'F' }), 'OBX|1|TX|x||one report', obr({ 1: '2', 3: 'A2', 25: 'F' })].join('\r');
    expect(parseOru(msg, RULES).reports).toEqual([
      { AccessionNumber: 'A1', status: 'F', text: 'one report', reportTime: MSH_DAY },
      { AccessionNumber: 'A2', status: 'F', text: 'one report', reportTime: MSH_DAY },
    ]);
  });

  test('report text only in NTE: the NTEs of each order in order; not those of a wrong OBX or of the orderer; linked exams share it', () => {
    const msg = [
      MSH, obr({ 3: 'A1', 25: 'F' }), 'NTE|1|L|Line one.', 'OBX|1|NM|x||5', 'NTE|1|L|Line two.',
      'OBX|2|TX|x||||||||W', 'NTE|1|L|comment on a wrong row', 'NTE|2|P|orderer comment', obr({ 1: '2', 3: 'A2', 25: 'F' }),
    ].join('\r');
    expect(parseOru(msg, RULES).reports).toEqual([
      { AccessionNumber: 'A1', status: 'F', text: 'Line one.\nLine two.', reportTime: MSH_DAY },
      { AccessionNumber: 'A2', status: 'F', text: 'Line one.\nLine two.', reportTime: MSH_DAY },
    ]);
    // The same checks as OBX text, located at NTE-3.
    const bad = problemOf(() => parseOru([MSH, obr({ 3: 'A', 25: 'F' }), 'NTE|1|L|No bleed.\\X1B\\[31m'].join('\r'), RULES));
    expect(bad).toMatchObject({ ack: 'AE', reason: 'bad-text', location: 'NTE^1^3' });
  });

  test.each([
    ['PID|1', 'AR', 'bad-msh'],
    ['MSH|^~\\&|RIS|NT_SYNTH|NT||20260101||ADT^A01|X|P|2.5.1\rPID|1', 'AR', 'unsupported-message'],
    ['MSH|^~\\&|RIS|NT_SYNTH|NT||20260101||ORU^R30|X|P|2.5.1', 'AR', 'unsupported-message'],
    ['MSH|^~\\&|RIS|NT_SYNTH|NT||20260101||ORU^R01|X|P|3.0', 'AR', 'unsupported-version'],
    ['MSH|^~\\&|RIS|NT_SYNTH|NT||20260101||ORU^R01||P|2.5.1', 'AR', 'no-control-id'],
    [`${MSH.replace('NT_SYNTH', 'OTHER')}\r${obr({ 3: 'A', 25: 'F' })}\rOBX|1|TX|x||t`, 'AR', 'facility-not-allowed'],
    [`${MSH}\rOBX|1|TX|x||t`, 'AE', 'no-obr'],
    [`${MSH}\r${obr({ 25: 'F' })}\rOBX|1|TX|x||t`, 'AE', 'no-accession'],
    [`${MSH}\r${obr({ 3: 'A', 25: 'F' })}\rOBX|1|NM|x||5`, 'AE', 'no-text'],
    // No letter or digit (punctuation, zero-width spaces): no report, as POST /api/v1/reports says.
    [`${MSH}\r${obr({ 3: 'A', 25: 'F' })}\rOBX|1|TX|x||...\rOBX|2|TX|x||!!!`, 'AE', 'no-text'],
    [`${MSH}\r${obr({ 3: 'A', 25: 'F' })}\rOBX|1|TX|x||\u200b\u200b`, 'AE', 'no-text'],
    // A control character, raw or as an HL7 hex escape.
    [`${MSH}\r${obr({ 3: 'A', 25: 'F' })}\rOBX|1|TX|x||No bleed.\u0000 Normal.`, 'AE', 'bad-text'],
    [`${MSH}\r${obr({ 3: 'A', 25: 'F' })}\rOBX|1|TX|x||No bleed.\\X1B\\[31m`, 'AE', 'bad-text'],
    [`${MSH}\r${obr({ 3: 'A', 25: 'I' })}\rOBX|1|TX|x||t`, 'AE', 'bad-status'],
    [`${MSH}\r${obr({ 3: 'A' })}\rOBX|1|TX|x||t`, 'AE', 'bad-status'],
  ])('refuses %j with %s %s', (text, ack, reason) => {
    const problem = problemOf(() => parseOru(decodeMessage(Buffer.from(text)), RULES));
    expect(problem).toMatchObject({ ack, reason });
    expect(problem.detail.length).toBeGreaterThan(10);
  });

  test('a raw line break inside OBX-5 is a line of the text, not a segment: nothing after it is lost', () => {
    const obx2 = 'OBX|2|TX|19005-8^Impression^LN||IMPRESSION: Acute haemorrhage.||||||F';
    for (const eol of ['\r', '\r\n', '\n']) {
      for (const inner of ['\n', '\r\n']) {
        const text = [MSH, obr({ 3: 'A', 25: 'F' }), `OBX|1|TX|18782-3^Findings^LN||Line one.${inner}Line two: bleed.${inner}${inner}New paragraph.||||||F`, obx2, 'ZDS|1|x', ''].join(eol);
        const report = parseOru(text, RULES).reports[0];
        expect(report.text).toBe('FINDINGS:\nLine one.\nLine two: bleed.\n\nNew paragraph.\n\nIMPRESSION: Acute haemorrhage.');
      }
    }
    // The OBX keeps its later fields: a deleted row (OBX-11 D) after a raw line break is still skipped.
    const deleted = [MSH, obr({ 3: 'A', 25: 'F' }), 'OBX|1|TX|x||Kept.', 'OBX|2|TX|x||Wrong\nline.||||||D'].join('\r');
    expect(parseOru(deleted, RULES).reports[0].text).toBe('Kept.');
    expect(joinSegments('MSH|^~\\&|A\r\rPID|1\r')).toBe('MSH|^~\\&|A\rPID|1');
  });

  test('a batch (FHS/BHS) in one frame splits into its messages, each the sender\'s bytes, read as a message of its own', () => {
    const one = `${MSH.replace('|X|', '|B1|')}\r${obr({ 3: 'A1', 25: 'F' })}\rOBX|1|TX|x||first\nline two`;
    const two = `${MSH.replace('|X|', '|B2|')}\r\n${obr({ 3: 'A2', 25: 'F' })}\r\nOBX|1|TX|x||second`;
    const batch = `FHS|^~\\&|RIS|NT_SYNTH|NT||20260101||||F-7\rBHS|^~\\&|RIS|NT_SYNTH|NT||20260101||||B-7\r${one}\r${two}\r\nBTS|2\rFTS|1\r`;
    expect(isBatch(Buffer.from(batch))).toBe(true);
    expect(isBatch(Buffer.from(MSH))).toBe(false);
    const frame = splitBatch(Buffer.from(batch));
    expect(frame).toMatchObject({ declaredBatches: '1', messageCount: 2 });
    expect(frame.file?.[11]).toBe('F-7');
    expect(frame.batches).toHaveLength(1);
    expect(frame.batches[0].header?.[11]).toBe('B-7');
    expect(frame.batches[0].declaredCount).toBe('2');
    expect(frame.batches[0].messages.map((m) => m.toString())).toEqual([one, two]);
    // Each message decodes and reads exactly as it would alone: the raw line break stays in its text.
    const reports = frame.batches[0].messages.map((m) => parseOru(decodeMessage(m), RULES).reports[0]);
    expect(reports.map((r) => [r.AccessionNumber, r.text])).toEqual([['A1', 'first\nline two'], ['A2', 'second']]);
    // Without FHS; BHS alone, empty; several batches in a file; a file whose messages have no BHS.
    expect(splitBatch(Buffer.from(`BHS|^~\\&\r${one}\rBTS|1`))).toMatchObject({ file: null, messageCount: 1 });
    expect(splitBatch(Buffer.from('BHS|^~\\&|RIS\rBTS|0'))).toMatchObject({ messageCount: 0, batches: [{ messages: [], declaredCount: '0' }] });
    expect(splitBatch(Buffer.from(`FHS|^~\\&\rBHS|^~\\&\r${one}\rBTS|1\rBHS|^~\\&\r${two}\rBTS|1\rFTS|2`)).batches.map((b) => b.messages.length)).toEqual([1, 1]);
    expect(splitBatch(Buffer.from(`FHS|^~\\&\r${one}\r${two}\rFTS|1`)).batches).toMatchObject([{ header: null }]);
    // Counts: none declared never disagrees; a wrong or non-numeric one does.
    expect([countDisagrees(null, 3), countDisagrees('3', 3), countDisagrees('2', 3), countDisagrees('three', 3)]).toEqual([false, false, true, true]);
    // A batch is never one message: a replay of one kept before batches were taken says so.
    expect(problemOf(() => decodeMessage(Buffer.from(batch)))).toMatchObject({ ack: 'AR', reason: 'bad-msh', location: 'FHS' });
  });

  test('a frame with two messages (a second MSH, standard or its own delimiters) is refused AR; a report line beginning "MSH" is text', () => {
    const first = `${MSH.replace('|X|', '|F1|')}\r${obr({ 3: 'A1', 25: 'F' })}\rOBX|1|TX|x||first`;
    const second = `${MSH.replace('|X|', '|F2|')}\r${obr({ 3: 'A2', 25: 'F' })}\rOBX|1|TX|x||second`;
    for (const frame of [`${first}\r${second}`, `${first}\n${second.replace(/\|/g, '#')}`]) {
      expect(problemOf(() => parseOru(frame, RULES))).toMatchObject({ ack: 'AR', reason: 'bad-msh', message: expect.stringContaining('more than one message') });
    }
    expect(parseOru(`${first}\nMSH: no change since the last study`, RULES).reports[0].text).toContain('MSH: no change since the last study');
  });

  test('a message in a batch with delimiters of its own begins a message; a text line beginning "MSH" does not', () => {
    const one = `${MSH.replace('|X|', '|B1|')}\r${obr({ 3: 'A1', 25: 'F' })}\rOBX|1|TX|x||first\nMSH: no change since last study`;
    const own = `${MSH.replace('|X|', '|B2|').replace(/\|/g, '#')}\rOBR#1##A2\rOBX#1#TX#x##second`;
    const v27 = `${MSH.replace('|X|', '|B3|').replace('|^~\\&|', '|^~\\&#|')}\r${obr({ 3: 'A3', 25: 'F' })}`;
    const batch = Buffer.from(`BHS|^~\\&\r${one}\r${own}\r${v27}\rBTS|3`);
    expect(splitBatch(batch).batches[0].messages.map((m) => m.toString())).toEqual([one, own, v27]);
    expect(countMessages(batch)).toBe(3);
    expect(problemOf(() => parseOru(decodeMessage(Buffer.from(own)), RULES))).toMatchObject({ ack: 'AR', reason: 'bad-msh' });
  });

  test('an envelope that cannot be read is a BatchProblem naming the segment', () => {
    const msg = `${MSH}\r${obr({ 3: 'A', 25: 'F' })}`;
    const problem = (text: string): BatchProblem => {
      try {
        splitBatch(Buffer.from(text));
      } catch (err) {
        if (err instanceof BatchProblem) return err;
        throw err;
      }
      throw new Error('expected a BatchProblem');
    };
    expect(problem(`BHS|^~\\#&\r${msg}\rBTS|1`)).toMatchObject({ location: 'BHS' });
    expect(problem(`BHS|^~\\&\rPID|1\r${msg}\rBTS|1`)).toMatchObject({ location: 'PID' });
    expect(problem(`BHS|^~\\&\r${msg}\rBTS|1\rBTS|0`)).toMatchObject({ location: 'BTS' });
    expect(problem(`BHS|^~\\&\r${msg}\rBTS|1\rFTS|1`)).toMatchObject({ location: 'FTS' });
    expect(problem(`FHS|^~\\&\r${msg}\rFTS|1\r${msg}`)).toMatchObject({ location: 'FTS' });
    expect(problem(`BHS|^~\\&\rFHS|^~\\&\r${msg}`)).toMatchObject({ location: 'FHS' });
  });

  test('the batch of ACKs: headers swapped, control ids echoed, one ACK per message in order, BTS-1 the count', () => {
    const batch = 'FHS|^~\\&|RIS|NT_SYNTH|NT|HOSP|20260101||||F-7\rBHS|^~\\&|RIS|NT_SYNTH|NT|HOSP|20260101||||B-7\rMSH|x\rBTS|9\rFTS|1';
    const frame = splitBatch(Buffer.from(batch));
    const acks = [[Buffer.from('MSH|^~\\&|A\rMSA|AA|1'), Buffer.from('MSH|^~\\&|A\rMSA|AE|2\rERR||OBR^1^3')]];
    expect(batchAck(frame, acks, 'T').toString().split('\r')).toEqual([
      'FHS|^~\\&|NT|HOSP|RIS|NT_SYNTH|T||||F-7|F-7',
      'BHS|^~\\&|NT|HOSP|RIS|NT_SYNTH|T||||B-7|B-7',
      'MSH|^~\\&|A', 'MSA|AA|1',
      'MSH|^~\\&|A', 'MSA|AE|2', 'ERR||OBR^1^3',
      'BTS|2',
      'FTS|1',
    ]);
    // No FHS received: none sent; an empty batch: an empty answer; no BHS-11: none echoed.
    expect(batchAck(splitBatch(Buffer.from('BHS|^~\\&|RIS|NT_SYNTH\rBTS|0')), [[]], 'T').toString()).toBe('BHS|^~\\&|||RIS|NT_SYNTH|T\rBTS|0');
    // Header fields go back byte for byte, whatever their character set.
    const latin = Buffer.concat([Buffer.from('BHS|^~\\&|R'), Buffer.from([0xc9]), Buffer.from('S|F\rBTS|0')]);
    const mirrored = Buffer.concat([Buffer.from('BHS|^~\\&|||R'), Buffer.from([0xc9]), Buffer.from('S|F|T')]);
    expect(batchAck(splitBatch(latin), [[]], 'T').subarray(0, mirrored.length).toString('hex')).toBe(mirrored.toString('hex'));
  });

  test('decodes 8859/1 when MSH-18 says so, refuses a character set it cannot read', () => {
    const head = 'MSH|^~\\&|RIS|NT_SYNTH|NT||20260101||ORU^R01|X|P|2.5.1||||||';
    const latin = Buffer.concat([Buffer.from(`${head}8859/1\r${obr({ 3: 'A', 25: 'F' })}\rOBX|1|TX|x||oed`, 'latin1'), Buffer.from([0xe8]), Buffer.from('me')]);
    expect(parseOru(decodeMessage(latin), RULES).reports[0].text).toBe('oedème');
    expect(problemOf(() => decodeMessage(Buffer.from(`${head}ISO IR87`)))).toMatchObject({ ack: 'AE', reason: 'unsupported-charset' });
    // MSH-18 repeats: the first repetition is the message's character set.
    const repeated = Buffer.concat([Buffer.from(`${head}8859/1~ISO IR87\r${obr({ 3: 'A', 25: 'F' })}\rOBX|1|TX|x||oed`, 'latin1'), Buffer.from([0xe8]), Buffer.from('me')]);
    expect(parseOru(decodeMessage(repeated), RULES).reports[0].text).toBe('oedème');
    expect(problemOf(() => decodeMessage(Buffer.from(`${head}ISO IR87~8859/1`)))).toMatchObject({ ack: 'AE', reason: 'unsupported-charset' });
  });

  test('hex escapes in OBX-5 are read in MSH-18\'s character set; a switch to another set is AE unsupported-charset', () => {
    const head = 'MSH|^~\\&|RIS|NT_SYNTH|NT||20260101||ORU^R01|X|P|2.5.1||||||';
    const message = (charset: string, text: string) => `${head}${charset}\r${obr({ 3: 'A', 25: 'F' })}\rOBX|1|TX|x||${text}`;
    expect(parseOru(message('UNICODE UTF-8', 'oed\\XC3A8\\me'), RULES).reports[0].text).toBe('oedème');
    expect(parseOru(message('', 'oed\\XC3A8\\me'), RULES).reports[0].text).toBe('oedème');
    expect(parseOru(message('8859/1', 'oed\\XE8\\me'), RULES).reports[0].text).toBe('oedème');
    expect(parseOru(message('8859/15', '5 \\XA4\\'), RULES).reports[0].text).toBe('5 €');
    expect(problemOf(() => parseOru(message('UNICODE UTF-8', 'x \\M2442\\y'), RULES))).toMatchObject({ ack: 'AE', reason: 'unsupported-charset', location: 'OBX^1^5' });
  });

  test('decodes 8859/15 as 8859/15, ASCII like the empty default, and refuses bytes that are not the UTF-8 it reads', () => {
    const head = 'MSH|^~\\&|RIS|NT_SYNTH|NT||20260101||ORU^R01|X|P|2.5.1||||||';
    const message = (charset: string, text: Buffer) => Buffer.concat([Buffer.from(`${head}${charset}\r${obr({ 3: 'A', 25: 'F' })}\rOBX|1|TX|x||`, 'latin1'), text]);
    // "Œdème 5 €" in ISO 8859-15: 0xBC is Œ and 0xA4 the euro sign there (¼ and ¤ in 8859-1).
    const latin9 = message('8859/15', Buffer.from([0xbc, 0x64, 0xe8, 0x6d, 0x65, 0x20, 0x35, 0x20, 0xa4]));
    expect(parseOru(decodeMessage(latin9), RULES).reports[0].text).toBe('Œdème 5 €');
    // The same UTF-8 bytes read the same with MSH-18 ASCII or empty.
    const utf8 = Buffer.from('oedème', 'utf8');
    expect(parseOru(decodeMessage(message('ASCII', utf8)), RULES).reports[0].text).toBe('oedème');
    expect(parseOru(decodeMessage(message('', utf8)), RULES).reports[0].text).toBe('oedème');
    // ISO 8859-1 bytes under an empty MSH-18 (UTF-8): refused with the reason, never stored as U+FFFD.
    for (const charset of ['', 'UNICODE UTF-8', 'ASCII']) {
      const problem = problemOf(() => decodeMessage(message(charset, Buffer.from('oedème', 'latin1'))));
      expect(problem).toMatchObject({ ack: 'AE', reason: 'unsupported-charset', detail: expect.stringContaining('not valid UTF-8') });
    }
  });

  test('MSH-18 aliases of the sets we read (UTF-8, ISO_IR 192, ISO-8859-1, ISO_IR 100, any case, spaces around) and 8859/2 to 8859/9 are read, each in its own set', () => {
    const head = 'MSH|^~\\&|RIS|NT_SYNTH|NT||20260101||ORU^R01|X|P|2.5.1||||||';
    const message = (charset: string, text: Buffer) => Buffer.concat([Buffer.from(`${head}${charset}\r${obr({ 3: 'A', 25: 'F' })}\rOBX|1|TX|x||`, 'latin1'), text]);
    const read = (charset: string, bytes: number[]) => parseOru(decodeMessage(message(charset, Buffer.from(bytes))), RULES).reports[0].text;
    const utf8 = [...Buffer.from('oedème', 'utf8')];
    for (const charset of ['UTF-8', ' utf-8 ', 'ISO_IR 192', 'iso_ir 192']) expect(read(charset, utf8)).toBe('oedème');
    // ISO 8859-1 bytes, 0x96 the windows-1252 dash (as 8859/1 is read).
    for (const charset of ['ISO-8859-1', 'iso-8859-1', 'ISO_IR 100', ' ISO_IR 100']) expect(read(charset, [0x6f, 0x65, 0x64, 0xe8, 0x6d, 0x65, 0x20, 0x32, 0x96, 0x33])).toBe('oedème 2–3');
    // Words as their RIS write them, the bytes from each part's table (0xEA is ê in 8859-1, ę in 8859-2).
    const words: Array<[string[], number[], string]> = [
      [['8859/2', 'ISO-8859-2', 'ISO_IR 101'], [0x6f, 0x62, 0x72, 0x7a, 0xea, 0x6b], 'obrzęk'],
      [['8859/3', 'ISO-8859-3', 'ISO_IR 109'], [0x6d, 0x6f, 0xb1, 0xb1], 'moħħ'],
      [['8859/4', 'ISO-8859-4', 'ISO_IR 110'], [0x73, 0x6d, 0x61, 0x64, 0x7a, 0x65, 0xf1, 0x75], 'smadzeņu'],
      [['8859/5', 'ISO-8859-5', 'ISO_IR 144'], [0xb8, 0xdd, 0xe1, 0xe3, 0xdb, 0xec, 0xe2], 'Инсульт'],
      [['8859/6', 'ISO-8859-6', 'ISO_IR 127'], [0xcf, 0xe5, 0xc7, 0xda], 'دماغ'],
      [['8859/7', 'iso-8859-7', ' ISO_IR 126 '], [0xc5, 0xe3, 0xea, 0xdd, 0xf6, 0xe1, 0xeb, 0xef, 0xf2], 'Εγκέφαλος'],
      [['8859/8', 'ISO-8859-8', 'ISO_IR 138'], [0xee, 0xe5, 0xe7], 'מוח'],
      // 8859/9 as windows-1254, its superset (as 8859/1 is windows-1252): 0x93 and 0x94 are its quotes.
      [['8859/9', 'ISO-8859-9', 'ISO_IR 148'], [0x6b, 0x61, 0x6e, 0x61, 0x6d, 0x61, 0x73, 0xfd, 0x20, 0x93, 0xde, 0x69, 0xfe, 0x94], 'kanaması “Şiş”'],
    ];
    for (const [charsets, bytes, text] of words) {
      for (const charset of charsets) expect(read(charset, bytes)).toBe(text);
    }
    // A windows-1252 dash (0x96, a C1 code in these parts) is the dash in them too, as in 8859/1 and 8859/15.
    expect(read('8859/5', [0xb8, 0xdd, 0xe1, 0xe3, 0xdb, 0xec, 0xe2, 0x20, 0x32, 0x96, 0x33])).toBe('Инсульт 2–3');
    // A byte the named part leaves undefined (0xFF in 8859/7, 0xA5 in 8859/3): refused with the reason, never U+FFFD.
    for (const [charset, byte] of [['8859/7', 0xff], ['ISO_IR 109', 0xa5]] as const) {
      const problem = problemOf(() => decodeMessage(message(charset, Buffer.from([0x61, byte]))));
      expect(problem).toMatchObject({ ack: 'AE', reason: 'unsupported-charset', location: 'MSH^1^18', detail: expect.stringContaining('does not define') });
    }
    // Sets we do not read: still AE, with the reason.
    for (const charset of ['ISO IR87', '8859/10', 'ISO 2022 IR 100', 'UNICODE UTF-16', 'windows-1251']) {
      const problem = problemOf(() => decodeMessage(message(charset, Buffer.from('a'))));
      expect(problem).toMatchObject({ ack: 'AE', reason: 'unsupported-charset', location: 'MSH^1^18', detail: expect.stringContaining('does not read') });
    }
  });

  test('hex escapes and \\C switches in 8859/2 to 8859/9 are read in that part', () => {
    const head = 'MSH|^~\\&|RIS|NT_SYNTH|NT||20260101||ORU^R01|X|P|2.5.1||||||';
    const message = (charset: string, text: string) => `${head}${charset}\r${obr({ 3: 'A', 25: 'F' })}\rOBX|1|TX|x||${text}`;
    const text = (charset: string, value: string) => parseOru(message(charset, value), RULES).reports[0].text;
    expect(text('8859/5', '\\XB8DDE1E3DBECE2\\')).toBe('Инсульт');
    expect(text('ISO_IR 126', '\\XC5\\\\XE3EADDF6E1EBEFF2\\')).toBe('Εγκέφαλος');
    expect(text('8859/2', 'obrz\\XEA\\k')).toBe('obrzęk');
    expect(text('8859/9', 'kanamas\\XFD\\ \\X93\\x\\X94\\')).toBe('kanaması “x”');
    // A hex byte the part does not define is kept as written, not read as U+FFFD.
    expect(text('8859/7', 'x \\XFF\\')).toBe('x \\XFF\\');
    // A switch to the part's own upper half (ESC - F for Greek, ESC - L for Cyrillic) or to ASCII is dropped; to another set, AE.
    expect(text('8859/7', '\\C2D46\\\\XC5\\\\C2842\\x')).toBe('Εx');
    expect(text('8859/5', '\\C2D4C\\\\XB8\\')).toBe('И');
    expect(problemOf(() => parseOru(message('8859/7', 'x \\C2D41\\y'), RULES))).toMatchObject({ ack: 'AE', reason: 'unsupported-charset', location: 'OBX^1^5' });
    expect(problemOf(() => parseOru(message('8859/15', 'x \\C2D46\\y'), RULES))).toMatchObject({ ack: 'AE', reason: 'unsupported-charset', location: 'OBX^1^5' });
  });
});

describe('report time (OBR-22, else MSH-7)', () => {
  const span = (v: string, timeZone = 'Europe/London') => {
    const t = parseHl7Time(v, timeZone);
    return t && [new Date(t.from).toISOString(), new Date(t.to).toISOString()];
  };

  test('an HL7 DTM is the span its precision names; with an offset as written, without one in the site\'s zone', () => {
    expect(span('20260105120000+0100')).toEqual(['2026-01-05T11:00:00.000Z', '2026-01-05T11:00:01.000Z']);
    expect(span('20260105120000-0000')).toEqual(['2026-01-05T12:00:00.000Z', '2026-01-05T12:00:01.000Z']);
    expect(span(' 202601051200 ')).toEqual(['2026-01-05T12:00:00.000Z', '2026-01-05T12:01:00.000Z']);
    expect(span('2026070512')).toEqual(['2026-07-05T11:00:00.000Z', '2026-07-05T12:00:00.000Z']);
    expect(span('20260705')).toEqual(['2026-07-04T23:00:00.000Z', '2026-07-05T23:00:00.000Z']);
    expect(span('202602')).toEqual(['2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z']);
    expect(span('2026')).toEqual(['2026-01-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z']);
    expect(span('20260705120000.5')).toEqual(['2026-07-05T11:00:00.500Z', '2026-07-05T11:00:00.600Z']);
    expect(span('20260705120000.1234')).toEqual(['2026-07-05T11:00:00.123Z', '2026-07-05T11:00:00.124Z']);
    expect(span('20260705120000', 'America/New_York')).toEqual(['2026-07-05T16:00:00.000Z', '2026-07-05T16:00:01.000Z']);
    expect(span('20280229')).toEqual(['2028-02-29T00:00:00.000Z', '2028-03-01T00:00:00.000Z']);
    for (const bad of ['', '2026010', '20260229', '20261301', '20260431', '202601052400', '20260105126000', '20260105120060', '20260105120000.', '20260105120000.12345', '20260105+1500', '20260105+0160', '1899', '2026-01-05', '20260105T1200', '20260105120000Z']) {
      expect([bad, parseHl7Time(bad, 'UTC')]).toEqual([bad, undefined]);
    }
  });

  test('around the clock changes (Europe/London): each side read with its own offset, the repeated hour as both readings', () => {
    // 25 October 2026, 02:00 BST becomes 01:00 GMT: 00:50 is still summer time, 02:30 winter time.
    expect(span('20261025005000')).toEqual(['2026-10-24T23:50:00.000Z', '2026-10-24T23:50:01.000Z']);
    expect(span('20261025023000')).toEqual(['2026-10-25T02:30:00.000Z', '2026-10-25T02:30:01.000Z']);
    // 01:30 happens twice (00:30 and 01:30 UTC): the span covers both, so it orders nothing within that hour.
    expect(span('20261025013000')).toEqual(['2026-10-25T00:30:00.000Z', '2026-10-25T01:30:01.000Z']);
    expect(span('20261025')).toEqual(['2026-10-24T23:00:00.000Z', '2026-10-26T00:00:00.000Z']);
    // 29 March 2026, 01:00 GMT becomes 02:00 BST: 00:30 is winter time, 02:30 summer time, the skipped 01:30 as GMT.
    expect(span('20260329003000')).toEqual(['2026-03-29T00:30:00.000Z', '2026-03-29T00:30:01.000Z']);
    expect(span('20260329023000')).toEqual(['2026-03-29T01:30:00.000Z', '2026-03-29T01:30:01.000Z']);
    expect(span('20260329013000')).toEqual(['2026-03-29T01:30:00.000Z', '2026-03-29T01:30:01.000Z']);
    // A span ends with its own last moment, not the repeated or skipped time after it: the last second and minute
    // before the October change are one second and one minute, the skipped hour an hour as if the clock had not changed.
    expect(span('20261025005959')).toEqual(['2026-10-24T23:59:59.000Z', '2026-10-25T00:00:00.000Z']);
    expect(span('202610250059')).toEqual(['2026-10-24T23:59:00.000Z', '2026-10-25T00:00:00.000Z']);
    expect(span('2026102500')).toEqual(['2026-10-24T23:00:00.000Z', '2026-10-25T00:00:00.000Z']);
    expect(span('2026102501')).toEqual(['2026-10-25T00:00:00.000Z', '2026-10-25T02:00:00.000Z']);
    expect(span('2026032901')).toEqual(['2026-03-29T01:00:00.000Z', '2026-03-29T02:00:00.000Z']);
  });

  test('west of UTC (America/New_York) too: the skipped hour as if the clock had not changed, spans ending with their own last moment', () => {
    const ny = (v: string) => span(v, 'America/New_York');
    // 8 March 2026, 02:00 EST becomes 03:00 EDT: 02:30 is read as EST (07:30Z), not as 01:30 EST (06:30Z).
    expect(ny('20260308013000')).toEqual(['2026-03-08T06:30:00.000Z', '2026-03-08T06:30:01.000Z']);
    expect(ny('20260308023000')).toEqual(['2026-03-08T07:30:00.000Z', '2026-03-08T07:30:01.000Z']);
    // The last minute before the change is a minute (its end, 02:00, is skipped), not unreadable.
    expect(ny('202603080159')).toEqual(['2026-03-08T06:59:00.000Z', '2026-03-08T07:00:00.000Z']);
    expect(ny('2026030801')).toEqual(['2026-03-08T06:00:00.000Z', '2026-03-08T07:00:00.000Z']);
    // 1 November 2026, 02:00 EDT becomes 01:00 EST: 00:59:59 EDT is one second; 01:30 both readings.
    expect(ny('20261101005959')).toEqual(['2026-11-01T04:59:59.000Z', '2026-11-01T05:00:00.000Z']);
    expect(ny('20261101013000')).toEqual(['2026-11-01T05:30:00.000Z', '2026-11-01T06:30:01.000Z']);
  });

  test('OBR-22 of each order, else MSH-7 (its first component, as v2.3\'s TS); one that does not read is passed over, never refused', () => {
    const msh = (time: string) => `MSH|^~\\&|RIS|NT_SYNTH|NT||${time}||ORU^R01|X|P|2.5.1`;
    const msg = [msh('20260105120000+0000'),
      obr({ 3: 'A1', 22: '20260105113000+0000^S', 25: 'C' }), 'OBX|1|TX|x||one',
      obr({ 1: '2', 3: 'A2', 22: 'yesterday', 25: 'C' }), 'OBX|1|TX|x||two',
      obr({ 1: '3', 3: 'A3', 25: 'C' }), 'OBX|1|TX|x||three'].join('\r');
    const fromMsh = { from: Date.UTC(2026, 0, 5, 12), to: Date.UTC(2026, 0, 5, 12, 0, 1), field: 'MSH-7' };
    expect(parseOru(msg, RULES).reports.map((r) => [r.AccessionNumber, r.reportTime])).toEqual([
      ['A1', { from: Date.UTC(2026, 0, 5, 11, 30), to: Date.UTC(2026, 0, 5, 11, 30, 1), field: 'OBR-22' }],
      ['A2', fromMsh],
      ['A3', fromMsh],
    ]);
    const none = parseOru([msh('20260105 12:00'), obr({ 3: 'A1', 25: 'F' }), 'OBX|1|TX|x||one'].join('\r'), RULES).reports[0];
    expect(none).toEqual({ AccessionNumber: 'A1', status: 'F', text: 'one' });
    // An offset-less time is the zone's the rules name.
    const london = parseOru([msh('20260705120000'), obr({ 3: 'A1', 25: 'F' }), 'OBX|1|TX|x||one'].join('\r'), { ...RULES, timeZone: 'Europe/London' });
    expect(london.reports[0].reportTime).toEqual({ from: Date.UTC(2026, 6, 5, 11), to: Date.UTC(2026, 6, 5, 11, 0, 1), field: 'MSH-7' });
  });
});

describe('ACKs', () => {
  test('AA mirrors the header; AE carries the reason in MSA-3 and ERR', () => {
    const message = Hl7Message.parse(buildOru({ AccessionNumber: 'A', text: 't' }, { now: 0, controlId: 'C1' }));
    const aa = Hl7Message.parse(ackFor(message, 'AA', { text: 'stored' }, ACK_OPTS).toString());
    expect(aa.getSegment('MSH')?.getField(9)?.toString()).toBe('ACK^R01^ACK');
    expect(aa.getSegment('MSH')?.getField(5)?.toString()).toBe('NT_SYNTH_RIS');
    expect(aa.getSegment('MSA')?.getField(1)?.toString()).toBe('AA');
    expect(aa.getSegment('MSA')?.getField(2)?.toString()).toBe('C1');
    expect(aa.getSegment('ERR')).toBeUndefined();
    const ae = Hl7Message.parse(ackFor(message, 'AE', { text: 'no accession | here', errorCode: '101', location: 'OBR^1^3' }, ACK_OPTS).toString());
    expect(ae.getSegment('MSA')?.getField(3)?.toString()).toBe('no accession \\F\\ here');
    expect(ae.getSegment('ERR')?.getField(2)?.toString()).toBe('OBR^1^3');
    expect(ae.getSegment('ERR')?.getComponent(3, 1)).toBe('101');
    expect(ae.getSegment('ERR')?.getField(4)?.toString()).toBe('E');
  });

  test('the ACK header: MSH-7 in UTC with its offset and 3-digit milliseconds, our own MSH-10, the message\'s MSH-11', () => {
    const now = Date.UTC(2026, 0, 5, 9, 8, 7, 5);
    const test = Hl7Message.parse(`${MSH.replace('|P|2.5.1', '|T|2.5.1')}\r${obr({ 3: 'A', 25: 'F' })}\rOBX|1|TX|x||t`);
    const header = (m: Hl7Message, id: string) => Hl7Message.parse(ackFor(m, 'AA', { text: 'stored' }, { now, ackControlId: id }).toString()).getSegment('MSH')!;
    const ack = header(test, 'NTACK1');
    expect(ack.getField(7).toString()).toBe('20260105090807.005+0000');
    expect(ack.getField(10).toString()).toBe('NTACK1');
    expect(ack.getField(11).toString()).toBe('T');
    expect(header(Hl7Message.parse(`${MSH.replace('|P|2.5.1', '|D|2.5.1')}`), 'NTACK2').getField(11).toString()).toBe('D');
    expect(header(Hl7Message.parse(`${MSH.replace('|P|2.5.1', '|P^T|2.5.1')}`), 'NTACK3').getField(11).toString()).toBe('P^T');
    // Empty or not a processing id: P.
    expect(header(Hl7Message.parse(`${MSH.replace('|P|2.5.1', '||2.5.1')}`), 'NTACK4').getField(11).toString()).toBe('P');
    expect(header(Hl7Message.parse(`${MSH.replace('|P|2.5.1', '|X\\F\\|2.5.1')}`), 'NTACK5').getField(11).toString()).toBe('P');
  });

  test('the ACK names the message\'s MSH-18 (first repetition, normalised) and is written in it', () => {
    const withCharset = (charset: string, app: string) => Hl7Message.parse(`${MSH.replace('|RIS|', `|${app}|`)}||||||${charset}`);
    // 8859/15: the euro sign is 0xA4 (the runtime's table), a character it lacks is '?'.
    const latin9 = ackFor(withCharset(' 8859/15 ~ISO IR87', 'RIS €'), 'AA', { text: 'stored' }, ACK_OPTS);
    const msh = latin9.subarray(0, latin9.indexOf(0x0d));
    expect(msh.toString('latin1').split('|')[17]).toBe('8859/15');
    expect(msh.includes(Buffer.from([0x52, 0x49, 0x53, 0x20, 0xa4]))).toBe(true);
    expect(ackFor(withCharset('8859/15', 'RIS \u4e2d'), 'AA', { text: 'stored' }, ACK_OPTS).toString('latin1')).toContain('|RIS ?|');
    // 8859/7 named as DICOM does: the ACK names it as the message did and writes Ω as 0xD9; 8859/9's ş is 0xFE, its quote 0x93.
    const greek = ackFor(withCharset(' iso_ir 126 ', 'RIS Ω'), 'AA', { text: 'stored' }, ACK_OPTS);
    expect(greek.subarray(0, greek.indexOf(0x0d)).toString('latin1').split('|')[17]).toBe('ISO_IR 126');
    expect(greek.includes(Buffer.from([0x52, 0x49, 0x53, 0x20, 0xd9, 0x7c]))).toBe(true);
    expect(ackFor(withCharset('8859/9', 'RIS ş“'), 'AA', { text: 'stored' }, ACK_OPTS).includes(Buffer.from([0x53, 0x20, 0xfe, 0x93, 0x7c]))).toBe(true);
    const utf8 = ackFor(withCharset('unicode utf-8', 'RIS é'), 'AA', { text: 'stored' }, ACK_OPTS);
    expect(Hl7Message.parse(utf8.toString('utf8')).getSegment('MSH')?.getField(18)?.toString()).toBe('UNICODE UTF-8');
    expect(utf8.toString('utf8')).toContain('|RIS é|');
    // None named: none in the ACK.
    expect(Hl7Message.parse(ackFor(Hl7Message.parse(MSH), 'AA', { text: 'stored' }, ACK_OPTS).toString()).getSegment('MSH')?.getField(18)?.toString() ?? '').toBe('');
  });

  test('an unparsed message still gets an ACK naming its control id when the header shows one', () => {
    const bytes = Buffer.from('MSH|^~\\&|RIS|H|NT||2026||ORU^R01|CTRL9|P|2.5.1\rOBR|1');
    expect(controlIdOf(bytes)).toEqual(Buffer.from('CTRL9'));
    expect(controlIdOf(Buffer.from('hello'))).toBeUndefined();
    // As the sender wrote it: escape sequences kept, not escaped again; blanks around it trimmed, not 0xA0.
    expect(controlIdOf(Buffer.from('MSH|^~\\&|RIS|H|NT||2026||ORU^R01| C\\F\\9\xa0 |P|2.5.1', 'latin1'))).toEqual(Buffer.from('C\\F\\9\xa0', 'latin1'));
    // Other delimiters: ours are escaped in it.
    expect(controlIdOf(Buffer.from('MSH#$%\\&#RIS#H#NT##2026##ORU$R01#C|9#P#2.5.1'))).toEqual(Buffer.from('C\\F\\9'));
    const ar = Hl7Message.parse(ackForUnparsed('AR', { text: 'too large', errorCode: '207' }, { controlId: Buffer.from('CTRL9'), now: 0, ackControlId: 'A1' }).toString());
    expect(ar.getSegment('MSA')?.getField(1)?.toString()).toBe('AR');
    expect(ar.getSegment('MSA')?.getField(2)?.toString()).toBe('CTRL9');
  });
});

describe('MllpDecoder', () => {
  const frame = (s: string) => mllpFrame(Buffer.from(s));

  test('frames split anywhere and several frames in one chunk', () => {
    const d = new MllpDecoder({ maxMessageBytes: 1000 });
    const bytes = Buffer.concat([frame('MSH|one'), Buffer.from('\r\n'), frame('MSH|two'), frame('MSH|three')]);
    const out: string[] = [];
    for (let i = 0; i < bytes.length; i += 3) {
      for (const f of d.push(bytes.subarray(i, i + 3))) if (f.kind === 'message') out.push(f.bytes.toString());
    }
    expect(out).toEqual(['MSH|one', 'MSH|two', 'MSH|three']);
    expect(d.partial).toBe(false);
  });

  test('a <VT> inside a frame starts a new one: the cut-off bytes are counted outside a frame, whatever the chunks', () => {
    const bytes = Buffer.concat([Buffer.from([VT]), Buffer.from('MSH|cut'), frame('MSH|next')]);
    for (const step of [bytes.length, 1, 4]) {
      const d = new MllpDecoder({ maxMessageBytes: 1000 });
      const out: Array<string | number> = [];
      for (let i = 0; i < bytes.length; i += step) {
        for (const f of d.push(bytes.subarray(i, i + step))) out.push(f.kind === 'message' ? f.bytes.toString() : f.kind === 'garbage' ? f.bytes : f.kind);
      }
      expect([out.filter((x) => typeof x === 'string'), out.filter((x) => typeof x === 'number').reduce((a, b) => Number(a) + Number(b), 0)]).toEqual([['MSH|next'], 7]);
    }
  });

  test('an oversize frame keeps only its head; bytes outside frames are counted', () => {
    const d = new MllpDecoder({ maxMessageBytes: 10, headBytes: 4 });
    const frames = d.push(Buffer.concat([Buffer.from('junk'), Buffer.from([VT]), Buffer.from('MSH|0123456789'), Buffer.from([FS, CR])]));
    expect(frames).toEqual([{ kind: 'oversize', head: Buffer.from('MSH|'), totalBytes: 14 }, { kind: 'garbage', bytes: 4 }]);
    expect(d.push(Buffer.from([VT, 0x41])).length).toBe(0);
    expect(d.partial).toBe(true);
  });
});

describe('loadReportsConfig', () => {
  test('off without a port; an empty allow-list lets nobody in; names every problem', () => {
    expect(loadReportsConfig({}).mllp).toBeUndefined();
    expect(loadReportsConfig({ REPORTS_MLLP_PORT: '2575', REPORTS_MLLP_ALLOWED_FACILITIES: '*' })).toMatchObject({
      mllp: { host: '127.0.0.1', port: 2575, maxBatchMessages: 500 }, allowedFacilities: null,
    });
    expect(loadReportsConfig({ REPORTS_MLLP_PORT: '2575', REPORTS_MLLP_MAX_BATCH_MESSAGES: '50' }).mllp?.maxBatchMessages).toBe(50);
    expect(() => loadReportsConfig({ REPORTS_MLLP_PORT: '2575', REPORTS_MLLP_MAX_BATCH_MESSAGES: '0' })).toThrow(/REPORTS_MLLP_MAX_BATCH_MESSAGES/);
    expect(loadReportsConfig({ REPORTS_MLLP_PORT: '2575' }).allowedFacilities).toEqual(new Set());
    expect(problemOf(() => parseOru(buildOru({ AccessionNumber: 'A', text: 't' }, { now: 0 }), { ...RULES, allowedFacilities: new Set() })).reason).toBe('facility-not-allowed');
    expect(() => loadReportsConfig({ REPORTS_MLLP_PORT: '2575', REPORTS_ACCESSION_FIELDS: 'PID-3', REPORTS_DEDUPE_DAYS: '1' }))
      .toThrow(/REPORTS_ACCESSION_FIELDS="PID-3"[\s\S]*REPORTS_DEDUPE_DAYS=1/);
  });
});
