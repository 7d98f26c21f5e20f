// Float32 data as little-endian bytes, whatever the host's byte order: the one format of the stored image vectors
// (Redis), the report sentence vectors, the bundle's atlas and sentence bank, and the volumes CLI's .f32 files.
import { endianness } from 'node:os';

const LITTLE_ENDIAN = endianness() === 'LE';

/**
 * The float32 values of little-endian bytes, in a fresh, aligned array (Buffers from Redis or the file system are
 * slices at arbitrary byte offsets). `what` names the data in the error for a length that is not whole floats.
 */
export function float32FromLE(bytes: Uint8Array, what = 'float32 data'): Float32Array {
  if (bytes.byteLength % 4 !== 0) throw new Error(`${what} has ${bytes.byteLength} bytes, not a multiple of 4`);
  if (LITTLE_ENDIAN) return new Float32Array(new Uint8Array(bytes).buffer);
  const out = new Float32Array(bytes.byteLength / 4);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/** Little-endian bytes of float32 values (a copy). */
export function float32ToLE(values: Float32Array): Buffer {
  if (LITTLE_ENDIAN) return Buffer.from(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  const out = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i], i * 4);
  return out;
}
