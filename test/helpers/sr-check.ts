// Checks an SR file with the real tools: dicom3tools' dciodvfy (IOD and module conformance) and DCMTK's dsrdump (SR
// tree, value types and relationship constraints). Used by the SR unit test and the Orthanc end-to-end test.
import { writeFileSync } from 'node:fs';
// eslint-disable-next-line @typescript-eslint/ban-ts-comment -- dcmjs 0.50.3 ships no type declarations
// @ts-ignore
import dcmjsUntyped from 'dcmjs';
import { runTool } from './dcmtk';

const dcmjs = dcmjsUntyped as {
  data: {
    DicomDict: new (meta: Record<string, unknown>) => { dict: Record<string, unknown>; write(): ArrayBuffer };
    DicomMetaDictionary: { denaturalizeDataset(ds: Record<string, unknown>): Record<string, unknown> };
  };
};

/** Writes a naturalised dataset as a Part 10 file (explicit VR little endian), as cStore would put it on the wire. */
export function writePart10(file: string, ds: Record<string, unknown>): void {
  const dict = new dcmjs.data.DicomDict(dcmjs.data.DicomMetaDictionary.denaturalizeDataset({
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: String(ds.SOPClassUID),
    MediaStorageSOPInstanceUID: String(ds.SOPInstanceUID),
    TransferSyntaxUID: '1.2.840.10008.1.2.1',
    ImplementationClassUID: '1.2.826.0.1.3680043.10.1234.1',
  }));
  dict.dict = dcmjs.data.DicomMetaDictionary.denaturalizeDataset(ds);
  writeFileSync(file, Buffer.from(dict.write()));
}

export interface SrCheck {
  /** dciodvfy "Error" lines. */
  errors: string[];
  /** dciodvfy "Warning" lines, less the ones every private coding scheme gets ("Unrecognized defined term <99...>"). */
  warnings: string[];
  /** The IOD dciodvfy recognised (e.g. "Comprehensive3DSR"). */
  iod: string;
  /** dsrdump's rendering of the document. */
  dump: string;
  /**
   * dsrdump's error and warning lines ("E:", "W:"), less DCMTK 3.6.7's notes on what it cannot check: UTF-8 values
   * (its VR checker skips them) and template constraints (it reads TID 2010 but does not check it).
   */
  dumpProblems: string[];
}

export async function checkSr(file: string): Promise<SrCheck> {
  const [v, d] = await Promise.all([runTool('dciodvfy', [file]), runTool('dsrdump', ['+Pt', file])]);
  const lines = v.stderr.split('\n').concat(v.stdout.split('\n')).map((l) => l.trim()).filter(Boolean);
  const dumpLines = d.stderr.split('\n').concat(d.stdout.split('\n'));
  return {
    errors: lines.filter((l) => /^Error/.test(l)),
    warnings: lines.filter((l) => /^Warning/.test(l) && !/Unrecognized defined term <99[A-Z0-9]+> for value 1 of attribute <Coding Scheme Designator>/.test(l)),
    iod: lines.find((l) => !/^(Error|Warning)/.test(l)) ?? '',
    dump: d.stdout,
    dumpProblems: dumpLines.filter((l) => /^[EW]:/.test(l) && !/VR checker does not support this Specific Character Set: ISO_IR 192|Check for template constraints not yet supported/.test(l)),
  };
}
