// The TID 1500 SR, built for several kinds of result and checked with the real tools: dciodvfy must report 0 errors
// and dsrdump must read the whole tree without a content or relationship error. Structure is asserted on the
// dataset read back from the file, so what is checked is what the PACS would receive.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FindingLocation, FindingScore, StudyResult } from '../../../../shared/results';
import { checkSr, writePart10 } from '../../../../test/helpers/sr-check';
import { buildTriageSr, COMPREHENSIVE_3D_SR, type SrIdentity } from './build-sr';
import { readHeader, type NaturalDataset } from './dcmjs';
import type { SourceStudy } from './source-study';
import { readFileSync } from 'node:fs';

const location: FindingLocation = {
  method: 'occlusion', sequence: 'T2', SeriesInstanceUID: '1.2.3.4.5', SOPInstanceUID: '1.2.3.4.5.6', SOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
  FrameOfReferenceUID: '1.2.3.4.9', ImageOrientationPatient: [1, 0, 0, 0, 1, 0], point: [60.5, 70.25], radiusPx: 12, radiusMm: 12,
  patientMm: [10, -20, 30], sliceIndex: 10, sliceCount: 24, scoreDrop: 0.12,
};

function finding(over: Partial<FindingScore>): FindingScore {
  return {
    queryId: 'mass', text: 'Intra-axial mass lesion with vasogenic oedema.', priority: 'URGENT', similarity: 0.25, probability: 0.8, threshold: 0.5,
    flagged: true, triggered: true, calibration: 'calibrated', bySequence: { T2: 0.25 }, ...over,
  };
}

function result(over: Partial<StudyResult> = {}): StudyResult {
  return {
    StudyInstanceUID: '1.2.3.4', AccessionNumber: 'A1', priority: 'URGENT', resultVersion: 1,
    findings: [finding({ location }), finding({ queryId: 'haemorrhage', text: 'Haemorrhage', priority: 'STAT', similarity: 0.05, probability: 0.02, threshold: 0.1, flagged: false, triggered: false })],
    abnormalProbability: 0.7, sequencesUsed: ['T2', 'FLAIR'], sequencesMissing: [], series: [], confidence: 0.6,
    model: { bundleId: 'bundle', version: '2.0' }, provider: 'cpu', priorityProbability: 0.8, judgedWith: { querySetVersion: 'test', classThresholds: {} },
    timingsMs: { decode: 0, preprocess: 0, inference: 0, scoring: 0, total: 0 }, receivedAt: 0, scoredAt: Date.UTC(2026, 0, 2, 3, 4, 5),
    ...over,
  };
}

const source: SourceStudy = {
  attributes: { PatientName: [{ Alphabetic: 'Test^Person' }], PatientID: 'P1', StudyDate: '20260102', StudyTime: '101500', StudyID: '1', AccessionNumber: 'A1' },
  series: [{ SeriesInstanceUID: '1.2.3.4.5', instances: [{ SOPClassUID: '1.2.840.10008.5.1.4.1.1.4', SOPInstanceUID: '1.2.3.4.5.6' }] }],
};

const identity = (over: Partial<SrIdentity> = {}): SrIdentity => ({
  SeriesInstanceUID: '2.25.1', SOPInstanceUID: '2.25.2', SeriesNumber: 9901, InstanceNumber: 1, softwareVersion: 't', now: Date.UTC(2026, 0, 2), timeZone: 'Europe/London', ...over,
});

type Item = NaturalDataset & { ContentSequence?: Item[] };
const name = (i: Item): string => {
  const c = (i.ConceptNameCodeSequence as Item[] | undefined)?.[0];
  return String(c?.CodeValue ?? c?.LongCodeValue ?? '');
};
const child = (i: Item, code: string): Item => i.ContentSequence!.find((c) => name(c) === code)!;
const groups = (ds: Item): Item[] => child(ds, '126010').ContentSequence!;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'nt-sr-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes the SR, checks it with dciodvfy and dsrdump, and returns the dataset as read back from the file. */
async function built(r: StudyResult, id = identity(), src = source): Promise<Item> {
  const file = path.join(dir, `${id.SOPInstanceUID}.dcm`);
  writePart10(file, buildTriageSr(r, src, id));
  const check = await checkSr(file);
  expect(check.iod).toBe('Comprehensive3DSR');
  expect(check.errors).toEqual([]);
  expect(check.warnings).toEqual([]);
  expect(check.dumpProblems).toEqual([]);
  expect(check.dump).toMatch(/^Comprehensive 3D SR Document/m);
  expect(check.dump).toContain('# TID 1500 (DCMR');
  return readHeader(readFileSync(file)) as Item;
}

describe('buildTriageSr (TID 1500 Measurement Report)', () => {
  it('is a Comprehensive 3D SR in the source study, declaring TID 1500, with the evidence and no predecessor at version 1', async () => {
    const ds = await built(result());
    expect(ds.SOPClassUID).toBe(COMPREHENSIVE_3D_SR);
    expect(ds.Modality).toBe('SR');
    expect(ds.StudyInstanceUID).toBe('1.2.3.4');
    expect(ds.PatientID).toBe('P1');
    expect(ds.ContentDate).toBe('20260102');
    expect(ds.ContentTime).toBe('030405.000');
    expect(ds.CompletionFlag).toBe('COMPLETE');
    expect(ds.VerificationFlag).toBe('UNVERIFIED');
    expect(ds.InstanceNumber).toBe(1);
    expect(ds.PredecessorDocumentsSequence).toBeUndefined();
    expect(ds.SpecificCharacterSet).toBeUndefined(); // all ASCII: the default repertoire
    expect((ds.ContentTemplateSequence as Item[])[0]).toMatchObject({ MappingResource: 'DCMR', TemplateIdentifier: '1500' });
    expect(name(ds)).toBe('126000');
    const ev = (ds.CurrentRequestedProcedureEvidenceSequence as Item[])[0];
    expect(((ev.ReferencedSeriesSequence as Item[])[0].ReferencedSOPSequence as Item[])[0].ReferencedSOPInstanceUID).toBe('1.2.3.4.5.6');
    expect((ds.CodingSchemeIdentificationSequence as Item[])[0].CodingSchemeDesignator).toBe('99NTRIAGE');
  });

  it('gives each finding a measurement group with probability, threshold, flagged and whether it set the priority', async () => {
    const ds = await built(result());
    const [massRoi, mass3d, bleed, abnormal] = groups(ds);
    expect((massRoi.ContentTemplateSequence as Item[])[0].TemplateIdentifier).toBe('1410');
    expect(child(massRoi, '112039').TextValue).toBe('mass');
    expect(child(mass3d, '112040').UID).toBe(child(massRoi, '112040').UID); // one finding, tracked by one UID
    expect((child(massRoi, '121071').ConceptCodeSequence as Item[])[0]).toMatchObject({ CodeValue: '4147007', CodingSchemeDesignator: 'SCT' });
    const value = (g: Item, code: string) => Number(((child(g, code).MeasuredValueSequence as Item[])[0]).NumericValue);
    expect(value(massRoi, '122157')).toBeCloseTo(0.8, 4);
    expect(value(massRoi, 'PROBABILITY_THRESHOLD')).toBeCloseTo(0.5, 4);
    const answer = (g: Item, code: string) => ((child(g, code).ConceptCodeSequence as Item[])[0]).CodeMeaning;
    expect(answer(massRoi, 'FLAGGED')).toBe('Yes');
    expect(answer(massRoi, 'SETS_STUDY_PRIORITY')).toBe('Yes');
    // Over 16 characters: Long Code Value, never a too-long Code Value.
    const long = (child(massRoi, 'PROBABILITY_THRESHOLD').ConceptNameCodeSequence as Item[])[0];
    expect(long.CodeValue).toBeUndefined();
    expect(long.LongCodeValue).toBe('PROBABILITY_THRESHOLD');
    expect((bleed.ContentTemplateSequence as Item[])[0].TemplateIdentifier).toBe('1501');
    expect((child(bleed, '121071').ConceptCodeSequence as Item[])[0].CodeValue).toBe('1386000');
    expect(answer(bleed, 'FLAGGED')).toBe('No');
    expect(answer(bleed, 'SETS_STUDY_PRIORITY')).toBe('No');
    expect(value(abnormal, '122157')).toBeCloseTo(0.7, 4);
    const study = child(ds, 'C0034375');
    expect((child(study, 'TRIAGE_PRIORITY').ConceptCodeSequence as Item[])[0].CodeValue).toBe('URGENT');
  });

  it('writes a probability near 0 or 1 with the digits it needs, never as 0 or 1 (DS, 16 characters at most)', async () => {
    const ds = await built(result({ abnormalProbability: 0.0000004, findings: [finding({ probability: 0.99996 })] }), identity({ SOPInstanceUID: '2.25.8' }));
    const all = groups(ds);
    const [group, abnormal] = [all[0], all[all.length - 1]];
    const text = (g: Item) => String(((child(g, '122157').MeasuredValueSequence as Item[])[0]).NumericValue).trim();
    expect(text(group)).toBe('0.99996');
    // DS allows an exponent (dcmjs writes one for so small a value); what matters is that it is not 0.
    expect(Number(text(abnormal))).toBeCloseTo(0.0000004, 10);
    expect(text(abnormal).length).toBeLessThanOrEqual(16);
  });

  it('writes P and its threshold with the places that keep their order, so they never read equal against the flag', async () => {
    const close = finding({ probability: 0.0405512, threshold: 0.0405537, flagged: false, triggered: false });
    const ds = await built(result({ priority: 'ROUTINE', findings: [close] }), identity({ SOPInstanceUID: '2.25.9' }));
    const group = groups(ds)[0];
    const text = (code: string) => String(((child(group, code).MeasuredValueSequence as Item[])[0]).NumericValue).trim();
    expect([text('122157'), text('PROBABILITY_THRESHOLD')]).toEqual(['0.040551', '0.040554']);
    expect(((child(group, 'FLAGGED').ConceptCodeSequence as Item[])[0]).CodeMeaning).toBe('No');
  });

  it('a provisional result is PARTIAL, says what it waits for and why a flagged finding is held, with the query-set version', async () => {
    const until = Date.UTC(2026, 0, 2, 3, 9, 5);
    const held = finding({ queryId: 'haemorrhage', text: 'Haemorrhage', priority: 'STAT', probability: 0.15, threshold: 0.062, flagged: true, triggered: false, held: true, fallback: true, waitingFor: ['DWI', 'ADC'] });
    const ds = await built(
      result({ priority: 'ROUTINE', findings: [held], provisional: { waitingFor: ['DWI', 'ADC'], until } }),
      identity({ SOPInstanceUID: '2.25.12' }),
    );
    expect(ds.CompletionFlag).toBe('PARTIAL');
    const group = groups(ds)[0];
    expect(((child(group, 'FLAGGED').ConceptCodeSequence as Item[])[0]).CodeMeaning).toBe('Yes');
    expect(((child(group, 'SETS_STUDY_PRIORITY').ConceptCodeSequence as Item[])[0]).CodeMeaning).toBe('No');
    // The same words as the HL7 NTE of the finding.
    expect(child(group, 'DECISION').TextValue).toBe('flagged: P 0.150 >= threshold 0.062; held: scored without DWI, ADC, it sets no priority until the result is final');
    const study = child(ds, 'C0034375');
    expect(child(study, 'DECISION').TextValue).toBe('Decision: a finding is flagged when its calibrated probability P >= its threshold; priority ROUTINE (no finding of a higher class flagged).');
    expect(child(study, 'PROVISIONAL').TextValue).toBe(
      'Provisional: the study lacks DWI, ADC, which findings read on; findings scored without them do not raise the priority. A corrected result follows when they arrive or at 2026-01-02T03:09:05.000Z.',
    );
    expect(child(study, 'FINAL_WITHOUT')).toBeUndefined();
    expect(child(study, 'QUERY_SET_VERSION').TextValue).toBe('test');
  });

  it('a final result is COMPLETE; one whose wait expired says what it lacked', async () => {
    const ds = await built(result({ resultVersion: 2, incomplete: { missing: ['T2'], waitedUntil: 0 } }), identity({ SOPInstanceUID: '2.25.13', InstanceNumber: 2 }));
    expect(ds.CompletionFlag).toBe('COMPLETE');
    const study = child(ds, 'C0034375');
    expect(child(study, 'PROVISIONAL')).toBeUndefined();
    expect(child(study, 'FINAL_WITHOUT').TextValue).toBe('Final without T2: the wait for them expired; judged on the sequences the study has.');
    expect(child(study, 'DECISION').TextValue).toContain('priority URGENT set by mass (flagged: P 0.800 >= threshold 0.500; sets the URGENT priority).');
    expect(child(groups(ds)[0], 'DECISION').TextValue).toBe('flagged: P 0.800 >= threshold 0.500; sets the URGENT priority');
  });

  it('marks the key region as a SCOORD ellipse where the key slice\'s rows are spaced wider than its columns', async () => {
    const r = result();
    r.findings = r.findings.map((f) => (f.location ? { ...f, location: { ...f.location, radiusRowsPx: 8 } } : f));
    const region = child(groups(await built(r))[0], '111030');
    expect(region.GraphicType).toBe('ELLIPSE');
    // Major axis across (12 px either side), minor axis down (8 px), through the key point.
    expect((region.GraphicData as number[]).map((v) => Math.round(v * 100) / 100)).toEqual([48.5, 70.25, 72.5, 70.25, 60.5, 62.25, 60.5, 78.25]);
  });

  it('marks the key region as a SCOORD circle on the key image and as a SCOORD3D in the frame of reference', async () => {
    const ds = await built(result());
    const [massRoi, mass3d] = groups(ds);
    const region = child(massRoi, '111030');
    expect(region.ValueType).toBe('SCOORD');
    expect(region.GraphicType).toBe('CIRCLE');
    expect((region.GraphicData as number[]).map((v) => Math.round(v * 100) / 100)).toEqual([60.5, 70.25, 72.5, 70.25]);
    const image = region.ContentSequence![0];
    expect(image.RelationshipType).toBe('SELECTED FROM');
    expect((image.ReferencedSOPSequence as Item[])[0]).toMatchObject({ ReferencedSOPInstanceUID: '1.2.3.4.5.6', ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4' });
    const region3d = child(mass3d, '111030');
    expect(region3d.ValueType).toBe('SCOORD3D');
    expect(region3d.GraphicType).toBe('ELLIPSE');
    expect(region3d.ReferencedFrameOfReferenceUID).toBe('1.2.3.4.9');
    // Major axis along the slice's rows through the key point, 12 mm either side.
    expect((region3d.GraphicData as number[]).slice(0, 6).map(Math.round)).toEqual([-2, -20, 30, 22, -20, 30]);
  });

  it('a later version names the SR it supersedes and has a higher instance number', async () => {
    const ds = await built(result({ resultVersion: 3 }), identity({
      SOPInstanceUID: '2.25.3', InstanceNumber: 3, predecessor: { SeriesInstanceUID: '2.25.1', SOPInstanceUID: '2.25.2', SOPClassUID: COMPREHENSIVE_3D_SR },
    }));
    expect(ds.InstanceNumber).toBe(3);
    const pred = (ds.PredecessorDocumentsSequence as Item[])[0];
    expect(pred.StudyInstanceUID).toBe('1.2.3.4');
    const ref = ((pred.ReferencedSeriesSequence as Item[])[0].ReferencedSOPSequence as Item[])[0];
    expect(ref).toMatchObject({ ReferencedSOPInstanceUID: '2.25.2', ReferencedSOPClassUID: COMPREHENSIVE_3D_SR });
  });

  it('handles a site query with a long id, a multi-frame key image, no frame of reference, no abnormality score and a non-ASCII name', async () => {
    const multi: FindingLocation = { ...location, SOPClassUID: '1.2.840.10008.5.1.4.1.1.4.1', frame: 7, FrameOfReferenceUID: undefined };
    const ds = await built(
      result({
        findings: [finding({ queryId: 'subdural_haematoma_acute', text: 'Acute subdural haematoma.', priority: 'STAT', calibration: 'uncalibrated', probability: null, threshold: null, flagged: false, triggered: false }), finding({ location: multi })],
        abnormalProbability: null,
      }),
      identity({ SOPInstanceUID: '2.25.4' }),
      {
        attributes: { ...source.attributes, PatientName: [{ Alphabetic: 'Müller^Zoë' }] },
        series: [{ SeriesInstanceUID: '1.2.3.4.5', instances: [{ SOPClassUID: '1.2.840.10008.5.1.4.1.1.4.1', SOPInstanceUID: '1.2.3.4.5.6' }] }],
      },
    );
    expect(ds.SpecificCharacterSet).toBe('ISO_IR 192');
    expect((ds.PatientName as Item[])[0].Alphabetic).toBe('Müller^Zoë');
    const [site, roi, ...rest] = groups(ds);
    expect((child(site, '121071').ConceptCodeSequence as Item[])[0]).toMatchObject({ LongCodeValue: 'SUBDURAL_HAEMATOMA_ACUTE', CodingSchemeDesignator: '99NTRIAGE' });
    expect(site.ContentSequence!.some((i) => name(i) === '122157')).toBe(false); // no probability without calibration
    const image = child(roi, '111030').ContentSequence![0];
    expect((image.ReferencedSOPSequence as Item[])[0].ReferencedFrameNumber).toBe(7);
    expect(rest).toHaveLength(0); // no SCOORD3D without a frame of reference, no abnormality group without a score
  });

  it('cuts a site query sentence longer than a Code Meaning holds, in ASCII, so an all-ASCII SR stays in the default character set', async () => {
    const text = 'Acute subdural haematoma along the left cerebral convexity with mass effect and midline shift to the right.';
    const ds = await built(result({ findings: [finding({ queryId: 'subdural_long', text, priority: 'STAT' })] }), identity({ SOPInstanceUID: '2.25.6' }));
    const meaning = String((child(groups(ds)[0], '121071').ConceptCodeSequence as Item[])[0].CodeMeaning);
    expect(meaning.endsWith('...')).toBe(true);
    expect(meaning.length).toBeLessThanOrEqual(64);
    expect(text.startsWith(meaning.slice(0, -3))).toBe(true);
    expect(ds.SpecificCharacterSet ?? 'ISO_IR 6').not.toBe('ISO_IR 192');
  });

  it('cuts a non-ASCII site query sentence to 64 bytes of UTF-8, never inside a character', async () => {
    const text = 'Hémorragie sous-durale aiguë le long de la convexité cérébrale gauche avec effet de masse.';
    const ds = await built(result({ findings: [finding({ queryId: 'hsd', text, priority: 'STAT' })] }), identity({ SOPInstanceUID: '2.25.7' }));
    // dcmjs decodes strings inside sequence items as Latin-1 whatever the SR's character set: back to the bytes.
    const bytes = Buffer.from(String((child(groups(ds)[0], '121071').ConceptCodeSequence as Item[])[0].CodeMeaning), 'latin1');
    const meaning = bytes.toString('utf8');
    expect(bytes.length).toBeLessThanOrEqual(64); // dciodvfy (in built()) counts the same bytes
    expect(text.startsWith(meaning.slice(0, -3))).toBe(true);
    expect(ds.SpecificCharacterSet).toBe('ISO_IR 192');
  });

  it('keeps a backslash and other delimiters of a site query sentence out of its Code Meaning (LO), and in its TEXT (UT)', async () => {
    const text = 'Intracranial haemorrhage | bleed & mass ^ effect ~ \\ oedema,\t“acute”\u0007\n— Zoë.';
    const ds = await built(
      result({ findings: [finding({ queryId: 'intracranial_haemorrhage_with_mass_effect_site', text, priority: 'URGENT' })] }),
      identity({ SOPInstanceUID: '2.25.10' }),
    );
    const group = groups(ds)[0];
    // dcmjs decodes strings inside sequence items as Latin-1 whatever the SR's character set: back to the bytes.
    const utf8 = (v: unknown) => Buffer.from(String(v), 'latin1').toString('utf8');
    const code = (child(group, '121071').ConceptCodeSequence as Item[])[0];
    expect(code.LongCodeValue).toBe('INTRACRANIAL_HAEMORRHAGE_WITH_MASS_EFFECT_SITE');
    const meaning = utf8(code.CodeMeaning);
    expect(meaning).toBe('Intracranial haemorrhage | bleed & mass ^ effect ~ / oedema,...');
    expect(Buffer.byteLength(meaning)).toBeLessThanOrEqual(64);
    // UT may hold a backslash and a line break; not a tab or a BEL. Checked in the file's bytes: dcmjs's reading of
    // non-ASCII text inside sequence items differs between Node versions (Latin-1 or windows-1252).
    expect(child(group, 'QUERY').TextValue).toBeDefined();
    const file = readFileSync(path.join(dir, '2.25.10.dcm'));
    expect(file.includes(Buffer.from('Intracranial haemorrhage | bleed & mass ^ effect ~ \\ oedema, “acute” \n— Zoë.', 'utf8'))).toBe(true);
    expect(file.includes(Buffer.from('oedema,\t“acute”\u0007', 'utf8'))).toBe(false);
  });

  it('makes a Study Description copied from the source valid for LO: no backslash, at most 64 characters', async () => {
    const cases: Array<[unknown, string]> = [
      ['MR BRAIN ^ | & \\ ~ <b>"q"', 'MR BRAIN ^ | & / ~ <b>"q"'],
      // How dcmjs reads a source value that held a backslash: two values.
      [['MR BRAIN ^ | & ', ' ~ <b>"q"'], 'MR BRAIN ^ | & / ~ <b>"q"'],
      ['MRI BRAIN WITHOUT CONTRAST '.repeat(7), 'MRI BRAIN WITHOUT CONTRAST MRI BRAIN WITHOUT CONTRAST MRI BRA...'],
    ];
    for (const [i, [StudyDescription, expected]] of cases.entries()) {
      const ds = await built(result(), identity({ SOPInstanceUID: `2.25.11.${i}` }), { ...source, attributes: { ...source.attributes, StudyDescription } });
      expect(ds.StudyDescription).toBe(expected);
      expect(expected.length).toBeLessThanOrEqual(64);
    }
  });

  it('lists a key image in the evidence even when its series is not among the source series', async () => {
    const elsewhere: FindingLocation = { ...location, SeriesInstanceUID: '1.2.3.4.7', SOPInstanceUID: '1.2.3.4.7.1' };
    const ds = await built(result({ findings: [finding({ location: elsewhere })] }), identity({ SOPInstanceUID: '2.25.5' }));
    const series = ((ds.CurrentRequestedProcedureEvidenceSequence as Item[])[0].ReferencedSeriesSequence as Item[]).map((s) => s.SeriesInstanceUID);
    expect(series).toEqual(['1.2.3.4.5', '1.2.3.4.7']);
  });
});

describe('buildTriageSr dates and times (one offset for every DA and TM, the study\'s)', () => {
  // PS3.3 C.12.1 (SOP Common): Timezone Offset From UTC applies to every DA and TM of the instance, the Study Date
  // and Time copied from the source included; without it they are the creator's local time.
  const scoredAt = Date.UTC(2026, 6, 1, 23, 30, 5, 120); // 00:30:05 BST on 2 July in London, 19:30:05 EDT on 1 July in New York
  const withStudy = (attributes: NaturalDataset): SourceStudy => ({ ...source, attributes: { ...source.attributes, ...attributes } });
  /** The instant a DA, TM and offset name. */
  const instant = (date: unknown, time: unknown, offset: unknown): number => {
    const [d, t, o] = [String(date), String(time), String(offset)];
    const sign = o.startsWith('-') ? -1 : 1;
    const wall = Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8), +t.slice(0, 2), +t.slice(2, 4), +t.slice(4, 6), Math.round(Number(`0${t.slice(6) || '.0'}`) * 1000));
    return wall - sign * (+o.slice(1, 3) * 60 + +o.slice(3, 5)) * 60_000;
  };

  it('writes its times in London\'s summer time and says +0100, the offset of the study\'s local Study Date and Time', async () => {
    const ds = await built(result({ scoredAt }), identity({ now: scoredAt + 1000 }), withStudy({ StudyDate: '20260702', StudyTime: '001000' }));
    expect(ds).toMatchObject({ TimezoneOffsetFromUTC: '+0100', StudyDate: '20260702', StudyTime: '001000', ContentDate: '20260702', ContentTime: '003005.120', InstanceCreationDate: '20260702', InstanceCreationTime: '003006.120' });
    // The study (00:10 BST) comes before its result (00:30 BST) on the document's own time line.
    expect(instant(ds.StudyDate, ds.StudyTime, ds.TimezoneOffsetFromUTC)).toBe(Date.UTC(2026, 6, 1, 23, 10));
    expect(instant(ds.ContentDate, ds.ContentTime, ds.TimezoneOffsetFromUTC)).toBe(scoredAt);
  });

  it('in New York says -0400 and writes the result on the study\'s local day', async () => {
    const ds = await built(result({ scoredAt }), identity({ now: scoredAt, timeZone: 'America/New_York' }), withStudy({ StudyDate: '20260701', StudyTime: '191000' }));
    expect(ds).toMatchObject({ TimezoneOffsetFromUTC: '-0400', ContentDate: '20260701', ContentTime: '193005.120', InstanceCreationDate: '20260701', InstanceCreationTime: '193005.120' });
  });

  it('keeps the offset a source instance states, whatever the zone of this process, and writes its times in it', async () => {
    const ds = await built(result({ scoredAt }), identity({ now: scoredAt }), withStudy({ StudyDate: '20260702', StudyTime: '011000', TimezoneOffsetFromUTC: '+0200' }));
    expect(ds).toMatchObject({ TimezoneOffsetFromUTC: '+0200', StudyTime: '011000', ContentDate: '20260702', ContentTime: '013005.120' });
  });

  it('ignores an offset a source states that is not one (+01:00) and uses the zone', async () => {
    const ds = await built(result({ scoredAt }), identity({ now: scoredAt }), withStudy({ StudyDate: '20260702', StudyTime: '001000', TimezoneOffsetFromUTC: '+01:00' }));
    expect(ds).toMatchObject({ TimezoneOffsetFromUTC: '+0100', ContentTime: '003005.120' });
  });

  it('writes the results of a study read across the October change in the study\'s offset, so two made in the repeated hour keep their order', async () => {
    // Study at 23:50 BST on 24 October; 01:00-02:00 on 25 October happens twice in London (BST, then GMT).
    const study = withStudy({ StudyDate: '20261024', StudyTime: '235000' });
    const first = Date.UTC(2026, 9, 25, 0, 50); // 01:50 BST
    const second = Date.UTC(2026, 9, 25, 1, 10); // 01:10 GMT, twenty minutes later
    const v1 = await built(result({ scoredAt: first }), identity({ now: first }), study);
    const v2 = await built(result({ scoredAt: second, resultVersion: 2 }), identity({ now: second, SOPInstanceUID: '2.25.3', InstanceNumber: 2 }), study);
    expect([v1.TimezoneOffsetFromUTC, v1.ContentDate, v1.ContentTime]).toEqual(['+0100', '20261025', '015000.000']);
    expect([v2.TimezoneOffsetFromUTC, v2.ContentDate, v2.ContentTime]).toEqual(['+0100', '20261025', '021000.000']);
    expect(instant(v2.ContentDate, v2.ContentTime, v2.TimezoneOffsetFromUTC)).toBe(second);
  });

  it('reads a Study Time in a repeated or a skipped hour the same way in every zone: the first occurrence, or the offset before the change', () => {
    const offsetOf = (timeZone: string, StudyDate: string, StudyTime: string): unknown =>
      buildTriageSr(result({ scoredAt }), withStudy({ StudyDate, StudyTime }), identity({ now: scoredAt, timeZone })).TimezoneOffsetFromUTC;
    // 01:30 happens twice on 25 October in London (BST, then GMT) and on 1 November in New York (EDT, then EST).
    expect(offsetOf('Europe/London', '20261025', '013000')).toBe('+0100');
    expect(offsetOf('America/New_York', '20261101', '013000')).toBe('-0400');
    // 01:30 on 29 March in London and 02:30 on 8 March in New York do not exist: read with winter time, the offset
    // before the change (02:30 BST and 03:30 EDT).
    expect(offsetOf('Europe/London', '20260329', '013000')).toBe('+0000');
    expect(offsetOf('America/New_York', '20260308', '023000')).toBe('-0500');
    // Either side of the changes, the zone's offset of the day.
    expect(offsetOf('America/New_York', '20260308', '013000')).toBe('-0500');
    expect(offsetOf('America/New_York', '20260308', '033000')).toBe('-0400');
    expect(offsetOf('Europe/London', '20261025', '023000')).toBe('+0000');
  });

  it('takes no offset from a Study Date or Time that does not exist (30 February, hour 25, second 75), but the zone\'s now, as without one', () => {
    // scoredAt is in July (BST); 2 March, where 30 February would roll over to, is in GMT.
    for (const attributes of [{ StudyDate: '20260230', StudyTime: '101500' }, { StudyDate: '20260301', StudyTime: '2530' }, { StudyDate: '20260301', StudyTime: '101575' }, { StudyDate: '20261301', StudyTime: '' }]) {
      const ds = buildTriageSr(result({ scoredAt }), withStudy(attributes), identity({ now: scoredAt }));
      expect(ds.TimezoneOffsetFromUTC).toBe('+0100');
      expect(instant(ds.ContentDate, ds.ContentTime, ds.TimezoneOffsetFromUTC)).toBe(scoredAt);
    }
    // A leap second (TM allows 60) is a time that exists.
    const leap = buildTriageSr(result({ scoredAt }), withStudy({ StudyDate: '20261231', StudyTime: '235960' }), identity({ now: scoredAt }));
    expect(leap.TimezoneOffsetFromUTC).toBe('+0000');
  });

  it('names an offset that gives the instant back on a day with an hour that does not exist (01:30 on 29 March in London), or without a Study Date', () => {
    const at = Date.UTC(2026, 2, 29, 1, 40);
    for (const attributes of [{ StudyDate: '20260329', StudyTime: '013000' }, { StudyDate: '', StudyTime: '' }, { StudyDate: '20260329', StudyTime: '' }]) {
      // Read as built: a file without a Study Date draws dciodvfy's DICOMDIR warnings, not what is checked here.
      const ds = buildTriageSr(result({ scoredAt: at }), withStudy(attributes), identity({ now: at }));
      expect(ds.TimezoneOffsetFromUTC).toMatch(/^\+0[01]00$/);
      expect(instant(ds.ContentDate, ds.ContentTime, ds.TimezoneOffsetFromUTC)).toBe(at);
      expect(instant(ds.InstanceCreationDate, ds.InstanceCreationTime, ds.TimezoneOffsetFromUTC)).toBe(at);
    }
  });
});
