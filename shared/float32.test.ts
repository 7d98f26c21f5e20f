import { float32FromLE, float32ToLE } from './float32';

describe('float32 little-endian bytes', () => {
  it('round-trips values and writes them little-endian', () => {
    const v = Float32Array.from([1.5, -2, 0, 3.25e-8]);
    const bytes = float32ToLE(v);
    expect(bytes.readFloatLE(4)).toBe(-2);
    expect([...float32FromLE(bytes)]).toEqual([...v]);
  });

  it('reads a slice at an odd byte offset into a fresh, aligned array', () => {
    const padded = Buffer.concat([Buffer.from([7]), float32ToLE(Float32Array.from([4, 5]))]).subarray(1);
    const out = float32FromLE(padded);
    expect([...out]).toEqual([4, 5]);
    expect(out.byteOffset).toBe(0);
    out[0] = 9;
    expect(padded.readFloatLE(0)).toBe(4);
  });

  it('refuses bytes that are not whole floats, naming the data', () => {
    expect(() => float32FromLE(Buffer.alloc(6), 'stored vector')).toThrow('stored vector has 6 bytes, not a multiple of 4');
  });
});
