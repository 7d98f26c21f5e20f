// Lets a child `node` process run the TypeScript sources directly (as jest does, through @swc/core), so the
// send test can run the sender inside a private network namespace without depending on a prior build.
const { transformSync } = require('@swc/core');
const { readFileSync } = require('node:fs');

// '.ts' must come before '.json' in resolution order: `import ... from './lexicon'` means lexicon.ts, not the
// lexicon.json beside it (Node tries the registered extensions in insertion order).
const loadJson = require.extensions['.json'];
delete require.extensions['.json'];
require.extensions['.ts'] = function compileTs(module, filename) {
  const { code } = transformSync(readFileSync(filename, 'utf8'), {
    filename,
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
    module: { type: 'commonjs' },
    sourceMaps: 'inline',
  });
  module._compile(code, filename);
};
require.extensions['.json'] = loadJson;
