// The test environment for every suite. Two things about onnxruntime-node under jest:
// - it checks `data instanceof Float32Array` against the host realm's constructors, and jest's node environment
//   gives each test file its own realm: copy the host's typed-array constructors in;
// - its native binding registers a process cleanup hook when first initialised, and a second copy of its JS
//   (jest loads modules afresh for every test file, in the same worker process) aborts the process
//   (node::CleanupQueue::Add assertion). So the module is loaded once per worker process, here in the host
//   realm, and test files get that one instance through moduleNameMapper (test/onnxruntime-shared.js).
const { TestEnvironment } = require('jest-environment-node');

const TYPED = [
  'ArrayBuffer', 'SharedArrayBuffer', 'DataView',
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array',
  'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array',
];

let onnxruntime; // one per worker process, loaded on first use

class NeurotriageEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of TYPED) this.global[name] = globalThis[name];
    this.global.Buffer = Buffer;
    Object.defineProperty(this.global, '__neurotriageOnnxruntime', {
      get: () => (onnxruntime ??= require('onnxruntime-node')),
    });
  }
}

module.exports = NeurotriageEnvironment;
