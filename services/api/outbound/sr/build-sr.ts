// Builds the triage result as a DICOM Comprehensive 3D SR following TID 1500 "Measurement Report" (naturalised
// dataset, keyword -> value; PS3.16 TID 1500, 1501, 1410, 1001/1002/1004, 1204, 4019). One Measurement Group per
// finding holds its qualitative evaluations (probability, threshold, flagged, sets the study's priority, the decision
// in words, calibration); a located finding's group is a TID 1410 planar ROI whose Image Region is a SCOORD CIRCLE on
// the key slice, and a second TID 1410 group with the same tracking UID gives the region as a SCOORD3D in patient
// coordinates. Study-level values (triage priority, the decision, a provisional result's wait, sequences used,
// query-set version) are the Qualitative Evaluations container; the abnormality probability is its own group.
// Codes: codes.ts. Pure: the caller supplies the source attributes, the UIDs and the clock.
import type { FindingLocation, FindingScore, StudyResult } from '../../../../shared/results';
import { flagStatement, probabilityDecimal, probabilityPairDecimal } from '../../../../shared/models/decision';
import { derivedUid } from '../idempotency';
import { resultStatements } from '../statements';
import { CALIBRATION_CODES, CODES, codeItem, findingCode, loValue, PRIORITY_CODES, PRIVATE_SCHEME_IDENTIFICATION, type Code } from './codes';
import type { NaturalDataset } from './dcmjs';
import { coded, concept, container, documentTimes, type DocumentIdentity, keyImageClass, keyImageItem, languageAndObserver, sourceStudyModules, text, uidref, withCharacterSet } from './document';
import type { SourceStudy } from './source-study';

export const COMPREHENSIVE_3D_SR = '1.2.840.10008.5.1.4.1.1.88.34';

export interface SrDocumentRef {
  SeriesInstanceUID: string;
  SOPInstanceUID: string;
  SOPClassUID: string;
}

export interface SrIdentity extends DocumentIdentity {
  /** The SR of the result this one supersedes (Predecessor Documents Sequence). */
  predecessor?: SrDocumentRef;
}

/** DS is 16 characters at most; four decimals is finer than a score needs (probabilities: decisionNumbers). */
function ds(x: number): string {
  return String(Number(x.toFixed(4)));
}

/** A NUM item; `value` is a number, or its DS text when the caller chose the places (probabilities, thresholds). */
const num = (c: Code, value: number | string): NaturalDataset => ({
  RelationshipType: 'CONTAINS',
  ValueType: 'NUM',
  ...concept(c),
  MeasuredValueSequence: [{ NumericValue: typeof value === 'string' ? value : ds(value), MeasurementUnitsCodeSequence: [codeItem(CODES.noUnits)] }],
});
const yesNo = (b: boolean): Code => (b ? CODES.yes : CODES.no);

/** TID 4019 Algorithm Identification. */
function algorithm(result: StudyResult): NaturalDataset[] {
  return [
    text('HAS CONCEPT MOD', CODES.algorithmName, result.model.bundleId),
    text('HAS CONCEPT MOD', CODES.algorithmVersion, result.model.version),
  ];
}

/** TID 4108 Tracking Identifier: the query id, and a UID that stays the same for this finding in every version. */
function tracking(result: StudyResult, f: FindingScore): NaturalDataset[] {
  return [
    text('CONTAINS', CODES.trackingIdentifier, f.queryId),
    uidref('CONTAINS', CODES.trackingUid, derivedUid('neurotriage-sr-tracking', result.StudyInstanceUID, f.queryId)),
  ];
}

/**
 * P and its threshold as DS: never read 0 or 1 unless they are, and with the places that keep their order, so the
 * numbers never say P >= threshold when the flag says No (shared/models/decision.ts probabilityPairDecimal).
 */
function decisionNumbers(f: FindingScore): { p: string | null; t: string | null } {
  if (f.probability !== null && f.threshold !== null) {
    const [p, t] = probabilityPairDecimal(f.probability, f.threshold);
    return { p, t };
  }
  return { p: f.probability === null ? null : probabilityDecimal(f.probability), t: f.threshold === null ? null : ds(f.threshold) };
}

function evaluations(f: FindingScore): NaturalDataset[] {
  const { p, t } = decisionNumbers(f);
  return [
    text('CONTAINS', CODES.query, f.text),
    num(CODES.similarity, f.similarity),
    ...(p === null ? [] : [num(CODES.probability, p)]),
    ...(t === null ? [] : [num(CODES.threshold, t)]),
    coded('CONTAINS', CODES.flagged, yesNo(f.flagged)),
    coded('CONTAINS', CODES.triggered, yesNo(f.triggered)),
    // The decision in words, as the HL7 NTE: why a flagged finding did not set the priority (held) included.
    text('CONTAINS', CODES.decision, flagStatement(f)),
    coded('CONTAINS', CODES.queryPriority, PRIORITY_CODES[f.priority]),
    coded('CONTAINS', CODES.calibration, CALIBRATION_CODES[f.calibration] ?? CALIBRATION_CODES.uncalibrated),
  ];
}

/**
 * The region on the key slice: a circle (centre and one point on the circumference, PS3.3 C.18.6.1.2), or, where
 * rows and columns are spaced differently, the ellipse that circle in mm makes in pixels (the major axis' end
 * points, then the minor axis').
 */
function imageRegion(loc: FindingLocation, source: SourceStudy): NaturalDataset {
  const [c, r] = loc.point;
  const across = [c - loc.radiusPx, r, c + loc.radiusPx, r];
  const down = loc.radiusRowsPx === undefined ? [] : [c, r - loc.radiusRowsPx, c, r + loc.radiusRowsPx];
  return {
    RelationshipType: 'CONTAINS',
    ValueType: 'SCOORD',
    ...concept(CODES.imageRegion),
    ...(loc.radiusRowsPx === undefined
      ? { GraphicType: 'CIRCLE', GraphicData: [c, r, c + loc.radiusPx, r] }
      : { GraphicType: 'ELLIPSE', GraphicData: loc.radiusRowsPx > loc.radiusPx ? [...down, ...across] : [...across, ...down] }),
    ContentSequence: [keyImageItem('SELECTED FROM', loc, source)],
  };
}

/**
 * The same circle in patient coordinates, as an ELLIPSE in the key slice's plane (major and minor axis end points,
 * PS3.3 C.18.9.1.2); `axes` are the slice's row and column directions.
 */
function patientRegion(loc: FindingLocation & { FrameOfReferenceUID: string }, axes: { row: number[]; column: number[] }): NaturalDataset {
  const p = loc.patientMm;
  const at = (dir: number[], s: number) => p.map((v, i) => v + s * loc.radiusMm * dir[i]);
  return {
    RelationshipType: 'CONTAINS',
    ValueType: 'SCOORD3D',
    ...concept(CODES.imageRegion),
    GraphicType: 'ELLIPSE',
    GraphicData: [...at(axes.row, -1), ...at(axes.row, 1), ...at(axes.column, -1), ...at(axes.column, 1)],
    ReferencedFrameOfReferenceUID: loc.FrameOfReferenceUID,
  };
}

function findingGroups(result: StudyResult, f: FindingScore, source: SourceStudy): NaturalDataset[] {
  const head = [...tracking(result, f), coded('CONTAINS', CODES.finding, findingCode(f.queryId, f.text)), coded('HAS CONCEPT MOD', CODES.findingSite, CODES.brain), ...algorithm(result)];
  const loc = f.location;
  if (!loc) return [container('CONTAINS', CODES.measurementGroup, [...head, ...evaluations(f)], '1501')];
  const groups = [
    container('CONTAINS', CODES.measurementGroup, [
      ...head,
      coded('CONTAINS', CODES.localisationMethod, CODES.occlusion),
      imageRegion(loc, source),
      num(CODES.scoreDrop, loc.scoreDrop),
      ...evaluations(f),
    ], '1410'),
  ];
  const o = loc.ImageOrientationPatient;
  if (loc.FrameOfReferenceUID && o) {
    const axes = { row: o.slice(0, 3), column: o.slice(3, 6) };
    groups.push(container('CONTAINS', CODES.measurementGroup, [...head, patientRegion({ ...loc, FrameOfReferenceUID: loc.FrameOfReferenceUID }, axes)], '1410'));
  }
  return groups;
}

function abnormalGroup(result: StudyResult): NaturalDataset[] {
  if (result.abnormalProbability === null) return [];
  return [container('CONTAINS', CODES.measurementGroup, [
    text('CONTAINS', CODES.trackingIdentifier, 'abnormal'),
    uidref('CONTAINS', CODES.trackingUid, derivedUid('neurotriage-sr-tracking', result.StudyInstanceUID, 'abnormal')),
    coded('CONTAINS', CODES.finding, CODES.abnormal),
    ...algorithm(result),
    num(CODES.probability, probabilityDecimal(result.abnormalProbability)),
    num(CODES.sequenceFraction, result.confidence),
  ], '1501')];
}

/**
 * Current Requested Procedure Evidence: the source series the result used, plus any key image outside them (every
 * image the content references must be listed).
 */
function evidence(result: StudyResult, source: SourceStudy): NaturalDataset[] {
  const series = source.series.map((s) => ({ SeriesInstanceUID: s.SeriesInstanceUID, instances: [...s.instances] }));
  for (const loc of result.findings.flatMap((f) => (f.location ? [f.location] : []))) {
    if (series.some((s) => s.instances.some((i) => i.SOPInstanceUID === loc.SOPInstanceUID))) continue;
    let s = series.find((x) => x.SeriesInstanceUID === loc.SeriesInstanceUID);
    if (!s) series.push((s = { SeriesInstanceUID: loc.SeriesInstanceUID, instances: [] }));
    s.instances.push({ SOPClassUID: keyImageClass(loc, source), SOPInstanceUID: loc.SOPInstanceUID });
  }
  return [{
    StudyInstanceUID: result.StudyInstanceUID,
    ReferencedSeriesSequence: series.map((s) => ({
      SeriesInstanceUID: s.SeriesInstanceUID,
      ReferencedSOPSequence: s.instances.map((i) => ({ ReferencedSOPClassUID: i.SOPClassUID, ReferencedSOPInstanceUID: i.SOPInstanceUID })),
    })),
  }];
}

export function buildTriageSr(result: StudyResult, source: SourceStudy, id: SrIdentity): NaturalDataset {
  return withCharacterSet(buildDataset(result, source, id));
}

function buildDataset(result: StudyResult, source: SourceStudy, id: SrIdentity): NaturalDataset {
  const statements = resultStatements(result);
  const content = [
    ...languageAndObserver(result),
    coded('HAS CONCEPT MOD', CODES.procedureReported, CODES.imagingProcedure),
    container('CONTAINS', CODES.imagingMeasurements, [
      ...result.findings.flatMap((f) => findingGroups(result, f, source)),
      ...abnormalGroup(result),
    ]),
    container('CONTAINS', CODES.qualitativeEvaluations, [
      coded('CONTAINS', CODES.triagePriority, PRIORITY_CODES[result.priority]),
      text('CONTAINS', CODES.decision, statements.decision),
      ...(statements.provisional ? [text('CONTAINS', CODES.provisional, statements.provisional)] : []),
      ...(statements.incomplete ? [text('CONTAINS', CODES.finalWithout, statements.incomplete)] : []),
      ...(result.sequencesUsed.length > 0 ? [text('CONTAINS', CODES.sequencesUsed, result.sequencesUsed.join(', '))] : []),
      ...(result.judgedWith ? [text('CONTAINS', CODES.querySetVersion, result.judgedWith.querySetVersion)] : []),
    ]),
  ];
  const p = id.predecessor;
  const t = documentTimes(source, id.now, id.timeZone);
  return {
    // SOP Common (Specific Character Set: withCharacterSet)
    SOPClassUID: COMPREHENSIVE_3D_SR,
    SOPInstanceUID: id.SOPInstanceUID,
    InstanceCreationDate: t.da(id.now),
    InstanceCreationTime: t.tm(id.now),
    TimezoneOffsetFromUTC: t.offset,
    CodingSchemeIdentificationSequence: [PRIVATE_SCHEME_IDENTIFICATION],
    // Patient + General Study: copied so the SR lands in the source study
    ...sourceStudyModules(result, source),
    // SR Document Series, General Equipment and Enhanced General Equipment
    Modality: 'SR',
    SeriesInstanceUID: id.SeriesInstanceUID,
    SeriesNumber: id.SeriesNumber,
    SeriesDescription: 'AI triage (neurotriage)',
    ReferencedPerformedProcedureStepSequence: [],
    Manufacturer: 'neurotriage',
    ManufacturerModelName: loValue(result.model.bundleId),
    DeviceSerialNumber: loValue(result.model.version),
    SoftwareVersions: loValue(id.softwareVersion),
    // SR Document General: machine output, never verified by a person; PARTIAL while the result is provisional
    // (a later version follows), COMPLETE once it is final.
    InstanceNumber: id.InstanceNumber,
    CompletionFlag: result.provisional ? 'PARTIAL' : 'COMPLETE',
    VerificationFlag: 'UNVERIFIED',
    ContentDate: t.da(result.scoredAt),
    ContentTime: t.tm(result.scoredAt),
    ...(p
      ? {
          PredecessorDocumentsSequence: [{
            StudyInstanceUID: result.StudyInstanceUID,
            ReferencedSeriesSequence: [{ SeriesInstanceUID: p.SeriesInstanceUID, ReferencedSOPSequence: [{ ReferencedSOPClassUID: p.SOPClassUID, ReferencedSOPInstanceUID: p.SOPInstanceUID }] }],
          }],
        }
      : {}),
    PerformedProcedureCodeSequence: [],
    CurrentRequestedProcedureEvidenceSequence: evidence(result, source),
    // SR Document Content: the root CONTAINER, TID 1500
    ...container(undefined, CODES.imagingMeasurementReport, content, '1500'),
  };
}
