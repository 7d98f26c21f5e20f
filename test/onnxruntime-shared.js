// Test files import onnxruntime-node through this module: the one instance the test environment loaded in the
// host realm for this worker process (see test/jest-environment.js for why).
module.exports = globalThis.__neurotriageOnnxruntime;
