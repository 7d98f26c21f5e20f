// The image size a compressed frame declares in its own header, read before it is decoded: a few hundred bytes of
// codestream can declare gigapixels (65535 x 65535), and the codecs allocate and work for what it declares
// (OpenJPEG spent 5.6 s before giving up on one). A size other than Rows x Columns is refused instead.

export interface CodestreamSize {
  rows: number;
  columns: number;
}

/** JPEG 2000 / HTJ2K (ISO 15444-1 A.5.1): SOC then SIZ; a JP2 wrapper is searched through for them. */
function j2kSize(b: Uint8Array): CodestreamSize | undefined {
  const limit = Math.min(b.byteLength - 24, 4096);
  for (let i = 0; i <= limit; i++) {
    if (b[i] === 0xff && b[i + 1] === 0x4f && b[i + 2] === 0xff && b[i + 3] === 0x51) {
      const dv = new DataView(b.buffer, b.byteOffset + i, 24);
      // Xsiz, Ysiz: the reference grid; XOsiz, YOsiz: the image's offset in it.
      return { columns: dv.getUint32(8) - dv.getUint32(16), rows: dv.getUint32(12) - dv.getUint32(20) };
    }
  }
  return undefined;
}

/** JPEG (ISO 10918-1 B.2.2) and JPEG-LS (ISO 14495-1 SOF55): the frame header's Y and X; Y 0 (set by DNL) is unknown. */
function jpegSize(b: Uint8Array): CodestreamSize | undefined {
  if (b[0] !== 0xff || b[1] !== 0xd8) return undefined;
  let i = 2;
  while (i + 9 <= b.byteLength) {
    if (b[i] !== 0xff) return undefined;
    const marker = b[i + 1];
    if (marker === 0xff) {
      i += 1; // fill byte
      continue;
    }
    const sof = (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xf7;
    if (sof) {
      const rows = (b[i + 5] << 8) | b[i + 6];
      return rows === 0 ? undefined : { rows, columns: (b[i + 7] << 8) | b[i + 8] };
    }
    if (marker === 0xda) return undefined; // start of scan before any frame header
    i += 2 + ((b[i + 2] << 8) | b[i + 3]);
  }
  return undefined;
}

/** The size a compressed frame declares, or undefined where it declares none this can read (RLE has none). */
export function codestreamSize(codec: 'rle' | 'jpeg' | 'jpegls' | 'j2k' | 'htj2k', encoded: Uint8Array): CodestreamSize | undefined {
  if (codec === 'j2k' || codec === 'htj2k') return j2kSize(encoded);
  if (codec === 'jpeg' || codec === 'jpegls') return jpegSize(encoded);
  return undefined;
}
