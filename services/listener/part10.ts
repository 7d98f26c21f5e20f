// DICOM Part 10 framing for received data sets: buildFileMeta() writes the preamble, "DICM" and the File Meta
// Information (group 0002) from the C-STORE command and the presentation context, so the bytes received on the
// wire follow it unchanged. (Parsing and re-serialising whole data sets is what made stock dcmjs-dimse ~10x slower
// than DCMTK; dataset-check.ts walks the received bytes without either.)

export interface FileMetaInput {
  MediaStorageSOPClassUID: string;
  MediaStorageSOPInstanceUID: string;
  TransferSyntaxUID: string;
  ImplementationClassUID: string;
  ImplementationVersionName: string;
  /** The calling AE title of the association the instance arrived on. */
  SourceApplicationEntityTitle?: string;
}

function padded(value: string, pad: number): Buffer {
  const bytes = Buffer.from(value, 'latin1');
  return bytes.length % 2 === 0 ? bytes : Buffer.concat([bytes, Buffer.from([pad])]);
}

/** One explicit VR little endian element with a 2-byte length (all group 0002 VRs we write except OB). */
function shortElement(element: number, vr: string, value: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16LE(0x0002, 0);
  head.writeUInt16LE(element, 2);
  head.write(vr, 4, 'latin1');
  head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

/** Preamble (128 zero bytes), "DICM" and the File Meta Information group, explicit VR little endian. */
export function buildFileMeta(input: FileMetaInput): Buffer {
  const version = Buffer.alloc(14);
  version.writeUInt16LE(0x0002, 0);
  version.writeUInt16LE(0x0001, 2);
  version.write('OB', 4, 'latin1');
  version.writeUInt32LE(2, 8);
  version[12] = 0x00;
  version[13] = 0x01;
  const elements = [
    version,
    shortElement(0x0002, 'UI', padded(input.MediaStorageSOPClassUID, 0)),
    shortElement(0x0003, 'UI', padded(input.MediaStorageSOPInstanceUID, 0)),
    shortElement(0x0010, 'UI', padded(input.TransferSyntaxUID, 0)),
    shortElement(0x0012, 'UI', padded(input.ImplementationClassUID, 0)),
    shortElement(0x0013, 'SH', padded(input.ImplementationVersionName.slice(0, 16), 0x20)),
  ];
  if (input.SourceApplicationEntityTitle) {
    elements.push(shortElement(0x0016, 'AE', padded(input.SourceApplicationEntityTitle.slice(0, 16), 0x20)));
  }
  const body = Buffer.concat(elements);
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt16LE(0x0002, 0);
  groupLength.writeUInt16LE(0x0000, 2);
  groupLength.write('UL', 4, 'latin1');
  groupLength.writeUInt16LE(4, 6);
  groupLength.writeUInt32LE(body.length, 8);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), groupLength, body]);
}
