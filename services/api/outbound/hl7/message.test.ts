import { Hl7Message } from '@medplum/core';
import { hl7Unescape } from '../../../../shared/hl7-text';
import type { StudyResult } from '../../../../shared/results';
import { loadOutboundConfig } from '../config';
import { PermanentDeliveryError } from '../errors';
import { ackOutcome, buildPriorityMessage, hl7CweText, hl7Escape, hl7DateTime, hl7QueryIdentifier, readAck, resultStatus } from './message';

const target = (messageType = 'OMI^O23') =>
  loadOutboundConfig({ HL7_MLLP_TARGET: 'ris:2575', HL7_MESSAGE_TYPE: messageType, HL7_RECEIVING_FACILITY: 'HOSP' }).hl7!;

function result(priority: StudyResult['priority'], extra: Partial<StudyResult> = {}): StudyResult {
  return {
    StudyInstanceUID: '1.2.3.4', AccessionNumber: 'A12345', priority,
    findings: [
      { queryId: 'bleed', text: 'Intracranial haemorrhage', priority: 'STAT', similarity: 0.412345, probability: 0.97, threshold: 0.4, flagged: true, triggered: true, calibration: 'calibrated', bySequence: {} },
      { queryId: 'mass', text: 'Mass & oedema ~ shift', priority: 'URGENT', similarity: 0.1, probability: null, threshold: null, flagged: false, triggered: false, calibration: 'uncalibrated', bySequence: {} },
    ],
    abnormalProbability: null, sequencesUsed: ['T2'], sequencesMissing: [], series: [], confidence: 1,
    model: { bundleId: 'b', version: '1' }, provider: 'cpu', priorityProbability: 0.97, judgedWith: { querySetVersion: 'test', classThresholds: {} },
    timingsMs: { decode: 0, preprocess: 0, inference: 0, scoring: 0, total: 0 }, receivedAt: 0, scoredAt: Date.UTC(2026, 0, 2, 3, 4, 5, 6),
    ...extra,
  };
}

const build = (r: StudyResult, t = target()) => Hl7Message.parse(buildPriorityMessage(r, t, { controlId: 'CTRL1', now: Date.UTC(2026, 0, 2) }).toString());

describe('buildPriorityMessage', () => {
  it.each([['STAT', 'S'], ['URGENT', 'A'], ['ROUTINE', 'R']] as const)('%s is %s in TQ1-9, ORC-7.6 and OBR-27.6', (priority, code) => {
    const m = build(result(priority));
    expect(m.getSegment('TQ1')!.getComponent(9, 1)).toBe(code);
    expect(m.getSegment('TQ1')!.getComponent(9, 3)).toBe('HL70485');
    expect(m.getSegment('ORC')!.getComponent(7, 6)).toBe(code);
    expect(m.getSegment('OBR')!.getComponent(27, 6)).toBe(code);
  });

  it('fills MSH from the settings, with the control id and v2.5.1', () => {
    const msh = build(result('STAT')).getSegment('MSH')!;
    expect(msh.getField(3).toString()).toBe('NEUROTRIAGE');
    expect(msh.getField(5).toString()).toBe('RIS');
    expect(msh.getField(6).toString()).toBe('HOSP');
    expect(msh.getField(7).toString()).toBe('20260102000000.000+0000');
    expect(msh.getField(9).toString()).toBe('OMI^O23^OMI_O23');
    expect(msh.getField(10).toString()).toBe('CTRL1');
    expect(msh.getField(12).toString()).toBe('2.5.1');
  });

  it('carries no patient identity and keys the order on the accession number', () => {
    const m = build(result('STAT'));
    expect(m.getSegment('PID')).toBeUndefined();
    expect(m.getSegment('ORC')!.getField(3).toString()).toBe('A12345');
    expect(m.getSegment('OBR')!.getField(18).toString()).toBe('A12345');
    expect(m.getSegment('IPC')!.getField(1).toString()).toBe('A12345');
    expect(m.getSegment('IPC')!.getField(3).toString()).toBe('1.2.3.4');
  });

  it('writes one OBX group per finding, escapes delimiters and omits a missing probability', () => {
    const obx = build(result('STAT')).getAllSegments('OBX');
    const group1 = obx.filter((s) => s.getField(4).toString() === '1');
    const group2 = obx.filter((s) => s.getField(4).toString() === '2');
    expect(group1.map((s) => s.getComponent(3, 1))).toEqual(['QUERY', 'SIMILARITY', 'PROBABILITY', 'THRESHOLD', 'FLAGGED', 'TRIGGERED', 'QUERY_PRIORITY']);
    expect(group2.map((s) => s.getComponent(3, 1))).toEqual(['QUERY', 'SIMILARITY', 'FLAGGED', 'TRIGGERED', 'QUERY_PRIORITY']);
    expect(group1[1].getField(5).toString()).toBe('0.4123');
    expect(group1.every((s) => s.getField(8).toString() === 'A')).toBe(true);
    expect(group2.every((s) => s.getField(8).toString() === 'N')).toBe(true);
    expect(group2[0].toString()).toContain('Mass \\T\\ oedema \\R\\ shift');
    expect(obx.every((s) => s.getField(11).toString() === 'P')).toBe(true);
  });

  it('keeps a site query id longer than CWE.1 allows within 20 characters, stable and unique; the NTE names it whole', () => {
    const r = result('STAT');
    const id = 'intracranial_haemorrhage_with_mass_effect_site';
    const other = 'intracranial_haemorrhage_without_mass_effect';
    const m = build({ ...r, findings: [{ ...r.findings[0], queryId: id }, { ...r.findings[1], queryId: other }] });
    const codes = m.getAllSegments('OBX').filter((s) => s.getComponent(3, 1) === 'QUERY').map((s) => s.getComponent(5, 1));
    expect(codes[0]).toBe('intracranial.c2d9fb7'); // as docs/hl7-interface.md shows it
    expect(codes.map((c) => c.length)).toEqual([20, 20]);
    expect(codes[1]).not.toBe(codes[0]);
    expect(codes[0]).toBe(hl7QueryIdentifier(id)); // the same in every message
    expect(m.getAllSegments('NTE').map((n) => n.getField(3).toString())).toContain(`${id}: flagged: P 0.970 >= threshold 0.400; sets the STAT priority`);
    // An id that fits is sent as it is.
    expect(hl7QueryIdentifier('subdural_haematoma_a')).toBe('subdural_haematoma_a');
  });

  it('writes an HD setting with its universal id as components of MSH-4 and MSH-6', () => {
    const target = loadOutboundConfig({ HL7_MLLP_TARGET: 'ris:2575', HL7_SENDING_FACILITY: 'NT_HOSP^1.2.840.114350.1.13^ISO', HL7_RECEIVING_FACILITY: 'RAD^2.16.840.1.1^ISO' }).hl7!;
    const msh = buildPriorityMessage(result('STAT'), target, { controlId: 'C1', now: 0 }).getSegment('MSH')!;
    expect([msh.getComponent(4, 1), msh.getComponent(4, 2), msh.getComponent(4, 3)]).toEqual(['NT_HOSP', '1.2.840.114350.1.13', 'ISO']);
    expect(msh.getField(6).toString()).toBe('RAD^2.16.840.1.1^ISO');
  });

  it('keeps a query sentence within the 199 characters v2.5.1 gives CWE.2, on one line', () => {
    const r = result('STAT');
    const long = `${'Acute ischaemic infarct with restricted diffusion & '.repeat(9)}😀 end`; // 472 characters
    const m = build({ ...r, findings: [{ ...r.findings[0], text: long }, { ...r.findings[1], text: 'Mass effect\nwith\tmidline shift' }] });
    const texts = m.getAllSegments('OBX').filter((s) => s.getComponent(3, 1) === 'QUERY').map((s) => hl7Unescape(s.getComponent(5, 2)));
    expect(Array.from(texts[0]).length).toBeLessThanOrEqual(199);
    expect(Array.from(texts[0]).length).toBeGreaterThan(190);
    expect(texts[0].endsWith('...')).toBe(true);
    expect(long.startsWith(texts[0].slice(0, -3))).toBe(true);
    expect(texts[1]).toBe('Mass effect with midline shift');
    expect(hl7CweText(`${'x'.repeat(195)}😀😀😀😀😀`)).toBe(`${'x'.repeat(195)}😀...`);
    expect(hl7CweText('Short sentence.')).toBe('Short sentence.');
  });

  it('adds the key image of a located flag to its OBX group: series, SOP instance, frame and region', () => {
    const location = {
      method: 'occlusion' as const, sequence: 'DWI' as const, SeriesInstanceUID: '1.2.3.4.5', SOPInstanceUID: '1.2.3.4.5.6', frame: 3,
      ImageOrientationPatient: [1, 0, 0, 0, 1, 0] as [number, number, number, number, number, number], point: [60.5, 70.25] as [number, number],
      radiusPx: 12, radiusMm: 10.5, patientMm: [10, -20, 30] as [number, number, number], sliceIndex: 4, sliceCount: 20, scoreDrop: 0.1,
    };
    const r = result('STAT');
    r.findings[0] = { ...r.findings[0], location };
    r.findings[1] = { ...r.findings[1], location }; // not flagged: no key image rows
    const message = build(r);
    const obx = message.getAllSegments('OBX');
    const group1 = obx.filter((s) => s.getField(4).toString() === '1');
    // The finding's NTE closes its group: it follows the key-image rows, as in docs/hl7-interface.md.
    const order = message.segments.map((s) => (s.name === 'OBX' ? `OBX ${s.getField(4).toString()} ${s.getComponent(3, 1)}` : s.name));
    expect(order.indexOf('NTE', order.indexOf('OBX 1 KEY_REGION'))).toBe(order.indexOf('OBX 1 KEY_REGION') + 1);
    expect(group1.map((s) => s.getComponent(3, 1))).toEqual(['QUERY', 'SIMILARITY', 'PROBABILITY', 'THRESHOLD', 'FLAGGED', 'TRIGGERED', 'QUERY_PRIORITY', '112002', 'KEY_IMAGE', 'KEY_IMAGE_FRAME', 'KEY_REGION']);
    const row = (code: string) => group1.find((s) => s.getComponent(3, 1) === code)!;
    expect(row('112002').getComponent(3, 3)).toBe('DCM');
    expect(row('112002').getField(5).toString()).toBe('1.2.3.4.5');
    expect(row('KEY_IMAGE').getField(2).toString()).toBe('ST');
    expect(row('KEY_IMAGE').getField(5).toString()).toBe('1.2.3.4.5.6');
    expect(row('KEY_IMAGE_FRAME').getField(5).toString()).toBe('3');
    expect(row('KEY_REGION').getField(5).toString()).toBe('circle at column 60.5, row 70.25, radius 12 px (10.5 mm); patient LPS 10 -20 30 mm');
    // Rows spaced wider than columns: the region is an ellipse in pixels.
    const wide = result('STAT');
    wide.findings[0] = { ...wide.findings[0], location: { ...location, radiusRowsPx: 8 } };
    const region = build(wide).getAllSegments('OBX').find((s) => s.getComponent(3, 1) === 'KEY_REGION')!;
    expect(region.getField(5).toString()).toBe('ellipse at column 60.5, row 70.25, radius 12 px across, 8 px down (10.5 mm); patient LPS 10 -20 30 mm');
    // Set IDs stay consecutive across the added rows.
    expect(obx.map((s) => Number(s.getField(1).toString()))).toEqual(obx.map((_, i) => i + 1));
    expect(obx.filter((s) => s.getField(4).toString() === '2').map((s) => s.getComponent(3, 1))).not.toContain('KEY_IMAGE');
  });

  it('ORM^O01 keeps priority in ORC-7 and OBR-27 and drops the v2.5-only TQ1 and IPC', () => {
    const m = build(result('URGENT'), target('ORM^O01'));
    expect(m.getSegment('MSH')!.getField(9).toString()).toBe('ORM^O01^ORM_O01');
    expect(m.getSegment('TQ1')).toBeUndefined();
    expect(m.getSegment('IPC')).toBeUndefined();
    expect(m.getSegment('ORC')!.getComponent(7, 6)).toBe('A');
  });

  it('refuses a study without an accession number as a permanent failure', () => {
    expect(() => build(result('STAT', { AccessionNumber: '  ' }))).toThrow(PermanentDeliveryError);
  });
});

describe('the decision and corrections', () => {
  it('states the rule with each finding\'s numbers in NTE segments, and what set the priority', () => {
    const m = build(result('STAT'));
    const notes = m.getAllSegments('NTE').map((n) => n.getField(3).toString());
    expect(notes[0]).toBe('Decision: a finding is flagged when its calibrated probability P >= its threshold; priority STAT set by bleed (flagged: P 0.970 >= threshold 0.400; sets the STAT priority).');
    expect(notes).toContain('bleed: flagged: P 0.970 >= threshold 0.400; sets the STAT priority');
    expect(notes).toContain('mass: not flagged: cannot be flagged (query uncalibrated)');
    const obx = m.getAllSegments('OBX');
    const row = (id: string, sub = '1') => obx.find((s) => s.getComponent(3, 1) === id && s.getField(4).toString() === sub);
    expect(row('THRESHOLD')!.getField(5).toString()).toBe('0.4');
    expect(row('TRIGGERED')!.getComponent(5, 1)).toBe('Y');
    expect(row('PRIORITY_PROBABILITY', '0')!.getField(5).toString()).toBe('0.97');
    expect(row('PRIORITY_PROBABILITY', '0')!.getComponent(3, 2)).toBe('Highest probability among the findings that set the priority');
    expect(row('QUERY_SET_VERSION', '0')!.getField(5).toString()).toBe('test');
    expect(row('RESULT_VERSION', '0')!.getField(5).toString()).toBe('1');
    expect(m.getSegment('OBR')!.getField(25).toString()).toBe('P');
  });

  it('never writes a probability as 0 or 1 that is neither; a ROUTINE study names what its priority probability is', () => {
    const r = result('ROUTINE');
    const m = build({ ...r, priorityProbability: 0.99996, findings: r.findings.map((f) => (f.probability === null ? f : { ...f, probability: 0.99996 })) });
    const obx = m.getAllSegments('OBX');
    const prio = obx.find((s) => s.getComponent(3, 1) === 'PRIORITY_PROBABILITY')!;
    expect(prio.getField(5).toString()).toBe('0.99996');
    expect(prio.getComponent(3, 2)).toBe('Highest probability among all findings (none set the priority)');
    expect(obx.filter((s) => s.getComponent(3, 1) === 'PROBABILITY').map((s) => s.getField(5).toString())).toContain('0.99996');
  });

  it('writes P and its threshold with the places that keep their order, so they never read equal against the flag', () => {
    const r = result('ROUTINE');
    const close = { ...r.findings[0], priority: 'URGENT' as const, probability: 0.0405512, threshold: 0.0405537, flagged: false, triggered: false };
    const obx = build({ ...r, findings: [close] }).getAllSegments('OBX');
    const value = (id: string) => obx.find((s) => s.getComponent(3, 1) === id && s.getField(4).toString() === '1')!.getField(5).toString();
    expect([value('PROBABILITY'), value('THRESHOLD'), value('FLAGGED')]).toEqual(['0.040551', '0.040554', 'N^No^HL70136']);
    expect(Number(value('PROBABILITY'))).toBeLessThan(Number(value('THRESHOLD')));
  });

  it('a provisional first result is partial (OBR-25 A) and says what it waits for', () => {
    const m = build(result('URGENT', { provisional: { waitingFor: ['DWI'], until: Date.UTC(2026, 0, 2, 3, 9, 5) } }));
    expect(m.getSegment('OBR')!.getField(25).toString()).toBe('A');
    expect(m.getAllSegments('OBX').every((s) => s.getField(11).toString() === 'P')).toBe(true);
    expect(m.getAllSegments('NTE').map((n) => n.getField(3).toString())).toContain(
      'Provisional: the study lacks DWI, which findings read on; findings scored without them do not raise the priority. A corrected result follows when they arrive or at 2026-01-02T03:09:05.000Z.',
    );
  });

  it('a later result version is a correction of the same order: XO, same identifiers, OBR-25 and OBX-11 C', () => {
    const first = build(result('URGENT', { resultVersion: 1, provisional: { waitingFor: ['DWI'], until: 0 } }));
    const second = Hl7Message.parse(
      buildPriorityMessage(result('STAT', { resultVersion: 2, incomplete: { missing: ['DWI'], waitedUntil: 0 } }), target(), { controlId: 'CTRL2', now: Date.UTC(2026, 0, 2), corrects: 1 }).toString(),
    );
    for (const m of [first, second]) {
      expect(m.getSegment('ORC')!.getField(1).toString()).toBe('XO');
      expect(m.getSegment('ORC')!.getField(3).toString()).toBe('A12345');
      expect(m.getSegment('IPC')!.getField(3).toString()).toBe('1.2.3.4');
    }
    expect(second.getSegment('OBR')!.getField(25).toString()).toBe('C');
    expect(second.getAllSegments('OBX').every((s) => s.getField(11).toString() === 'C')).toBe(true);
    const notes = second.getAllSegments('NTE').map((n) => n.getField(3).toString());
    expect(notes[0]).toBe('Correction: result version 2 replaces version 1 for this order.');
    expect(notes).toContain('Final without DWI: the wait for them expired; judged on the sequences the study has.');
    expect(resultStatus({})).toEqual({ obr25: 'P', obx11: 'P' });
  });

  it('a later version the RIS gets first (the earlier ones never reached it) is a first result, not a correction', () => {
    const m = build(result('STAT', { resultVersion: 3 }));
    expect(m.getSegment('OBR')!.getField(25).toString()).toBe('P');
    expect(m.getAllSegments('OBX').every((s) => s.getField(11).toString() === 'P')).toBe(true);
    expect(m.getAllSegments('NTE').map((n) => n.getField(3).toString()).join(' ')).not.toContain('Correction');
    // The version it replaces is the one the RIS holds, not the one before it.
    const later = Hl7Message.parse(buildPriorityMessage(result('ROUTINE', { resultVersion: 5 }), target(), { controlId: 'C5', now: 0, corrects: 3 }).toString());
    expect(later.getAllSegments('NTE')[0].getField(3).toString()).toBe('Correction: result version 5 replaces version 3 for this order.');
  });
});

describe('helpers', () => {
  it('escapes every delimiter, the escape character first', () => {
    expect(hl7Escape('a|b^c&d~e\\f\ng')).toBe('a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\.br\\g');
  });

  it('formats HL7 DTM in UTC', () => {
    expect(hl7DateTime(Date.UTC(2026, 10, 28, 15, 4, 5, 67))).toBe('20261128150405.067+0000');
  });

  it('reads MSA-1, MSA-2 and ERR-3 of an ACK', () => {
    const ack = Hl7Message.parse('MSH|^~\\&|RIS||NT||20260101||ACK^O23^ACK|9|P|2.5.1\rMSA|AR|CTRL1\rERR|||207^Application internal error^HL70357|E');
    expect(readAck(ack)).toEqual({ code: 'AR', controlId: 'CTRL1', errorCode: '207' });
    expect(() => readAck(Hl7Message.parse('MSH|^~\\&|RIS||NT||20260101||ACK|9|P|2.5.1'))).toThrow(/MSA-1/);
  });

  it('retries an AR whose ERR-3 says the RIS could not process it now (206, 207), not one that rejects the message', () => {
    const ack = (msa: string, err = '') => readAck(Hl7Message.parse(`MSH|^~\\&|RIS||NT||20260101||ACK^O23^ACK|9|P|2.5.1\rMSA|${msa}|CTRL1${err ? `\rERR|||${err}|E` : ''}`));
    expect(ackOutcome(ack('AA'))).toBe('accepted');
    expect(ackOutcome(ack('CA'))).toBe('accepted');
    expect(ackOutcome(ack('AE', '101^Required field missing^HL70357'))).toBe('retry');
    // "System down" in original mode: our own report feed answers exactly this when it cannot store a report yet.
    expect(ackOutcome(ack('AR', '207^Application internal error^HL70357'))).toBe('retry');
    expect(ackOutcome(ack('AR', '206^Application record locked^HL70357'))).toBe('retry');
    expect(ackOutcome(ack('CR', '207'))).toBe('retry');
    expect(ackOutcome(ack('AR', '200^Unsupported message type^HL70357'))).toBe('permanent');
    expect(ackOutcome(ack('AR', '204^Unknown key identifier^HL70357'))).toBe('permanent');
    expect(ackOutcome(ack('AR'))).toBe('permanent');
  });
});
