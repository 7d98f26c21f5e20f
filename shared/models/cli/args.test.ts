import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs, UsageError } from './args';

const KNOWN = { bundle: undefined, threads: '2' };

const thrown = (argv: string[]): UsageError => {
  try {
    parseArgs(argv, KNOWN);
  } catch (err) {
    return err as UsageError;
  }
  throw new Error('accepted');
};

test('values given, defaults kept', () => {
  expect(parseArgs(['--bundle', 'b'], KNOWN)).toEqual({ bundle: 'b', threads: '2' });
});

test('--help, an unknown option, a missing value and a missing required option are usage errors with the options listed', () => {
  expect(thrown(['--help'])).toMatchObject({ help: true });
  expect(thrown(['--bundle', 'b', '--treads', '4'])).toMatchObject({ help: false, message: 'unknown option --treads' });
  expect(thrown(['--bundle'])).toMatchObject({ message: '--bundle needs a value' });
  expect(thrown([])).toMatchObject({ message: 'missing --bundle' });
  expect(thrown(['b'])).toMatchObject({ message: 'unexpected argument b' });
  expect(thrown([]).usage).toMatch(/--bundle <required>\n {2}--threads \(default "2"\)$/);
});

test('the built models:eval answers --help with its options (exit 0) and a wrong option with the usage (exit 2)', () => {
  const cli = path.resolve(__dirname, '../../../dist/shared/models/cli/eval.js');
  const help = spawnSync(process.execPath, [cli, '--help'], { encoding: 'utf8' });
  expect(help.status).toBe(0);
  expect(help.stdout).toContain('--synth-args (default "--matrix 128")');
  const wrong = spawnSync(process.execPath, [cli, '--seeds', '1'], { encoding: 'utf8' });
  expect(wrong.status).toBe(2);
  expect(wrong.stderr).toMatch(/^unknown option --seeds\nusage: /);
});
