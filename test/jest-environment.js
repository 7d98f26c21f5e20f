// onnxruntime-node checks `data instanceof Float32Array` against the host realm's constructors, and jest's
// node environment gives each test file its own realm. Copy the host's typed-array constructors in.
const { TestEnvironment } = require('jest-environment-node');

const TYPED = [
  'ArrayBuffer', 'SharedArrayBuffer', 'DataView',
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array',
  'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array',
];

class NeurotriageEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of TYPED) this.global[name] = globalThis[name];
    this.global.Buffer = Buffer;
  }
}

module.exports = NeurotriageEnvironment;
