import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs, parseOptions, UsageError } from './cli-args';

const KNOWN = { bundle: undefined, threads: '2' };

/** What `run` threw (it must throw). */
const thrownBy = (run: () => unknown): UsageError => {
  try {
    run();
  } catch (err) {
    return err as UsageError;
  }
  throw new Error('accepted');
};
const thrown = (argv: string[]): UsageError => thrownBy(() => parseArgs(argv, KNOWN));

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

test('parseOptions gives typed values with defaults; --help and a wrong option are usage errors listing the options', () => {
  const options = { seed: { type: 'string', default: '14' }, out: { type: 'string' }, quiet: { type: 'boolean', default: false } } as const;
  expect(parseOptions(options, ['--out', 'd', '--quiet'])).toEqual({ seed: '14', out: 'd', quiet: true });
  const refused = (argv: string[]): UsageError => thrownBy(() => parseOptions(options, argv));
  expect(refused(['-h'])).toMatchObject({ help: true });
  expect(refused(['--sed', '1'])).toMatchObject({ help: false, message: expect.stringContaining("'--sed'") });
  expect(refused(['extra'])).toMatchObject({ help: false, message: expect.stringContaining("'extra'") });
  expect(refused(['--help']).usage).toMatch(/\n {2}--seed <value> \(default "14"\)\n {2}--out <value>\n {2}--quiet$/);
});

test.each([
  ['models:eval', 'shared/models/cli/eval.js', '--synth-args (default "--matrix 128")', '--seeds', /^unknown option --seeds\nusage: /],
  ['fuzzer', 'tools/fuzz/cli.js', '--seed <value> (default "14")', '--sead', /^Unknown option '--sead'.*\nusage: /],
])('the built %s answers --help with its options (exit 0) and a wrong option with the usage (exit 2)', (_name, script, listed, wrongOption, said) => {
  const cli = path.resolve(__dirname, '../dist', script);
  const help = spawnSync(process.execPath, [cli, '--help'], { encoding: 'utf8' });
  expect(help.status).toBe(0);
  expect(help.stdout).toContain(listed);
  const wrong = spawnSync(process.execPath, [cli, wrongOption, '1'], { encoding: 'utf8' });
  expect(wrong.status).toBe(2);
  expect(wrong.stderr).toMatch(said);
});
