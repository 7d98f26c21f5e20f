/** One test runner for the whole repository: unit tests beside the code, integration tests under test/. */
module.exports = {
  testEnvironment: '<rootDir>/test/jest-environment.js',
  transform: { '^.+\\.ts$': ['@swc/jest'] },
  testMatch: ['<rootDir>/{services,shared,tools,scripts,test}/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/', '/var/'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  // One onnxruntime-node per worker process: see test/jest-environment.js.
  moduleNameMapper: { '^onnxruntime-node$': '<rootDir>/test/onnxruntime-shared.js' },
  testTimeout: 60000,
  // Integration tests start real Redis, DCMTK and Orthanc processes; two cores, so two workers at most.
  maxWorkers: 2,
  // A hook that times out can leave a real child process or socket behind (seen once: Orthanc's start under heavy
  // load); the run must then end with its failures reported, not wait for that handle until CI's time limit.
  forceExit: true,
};
