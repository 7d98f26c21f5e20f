import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseOptions, UsageError } from './cli-args';

/** What `run` threw (it must throw). */
const thrownBy = (run: () => unknown): UsageError => {
  try {
    run();
  } catch (err) {
    return err as UsageError;
  }
  throw new Error('accepted');
};

test('parseOptions gives typed values with defaults; --help and a wrong option are usage errors listing the options', () => {
  const options = { seed: { type: 'string', default: '14' }, out: { type: 'string' }, quiet: { type: 'boolean', default: false } } as const;
  expect(parseOptions(options, ['--out', 'd', '--quiet'])).toEqual({ seed: '14', out: 'd', quiet: true });
  const refused = (argv: string[]): UsageError => thrownBy(() => parseOptions(options, argv));
  expect(refused(['-h'])).toMatchObject({ help: true });
  expect(refused(['--sed', '1'])).toMatchObject({ help: false, message: expect.stringContaining("'--sed'") });
  expect(refused(['extra'])).toMatchObject({ help: false, message: expect.stringContaining("'extra'") });
  expect(refused(['--help']).usage).toMatch(/\n {2}--seed <value> \(default "14"\)\n {2}--out <value>\n {2}--quiet$/);
});

test('a required option missing is a usage error naming every one missing; --help marks them <required>', () => {
  const options = { bundle: { type: 'string', required: true }, out: { type: 'string', required: true }, threads: { type: 'string', default: '2' } } as const;
  const values = parseOptions(options, ['--out', 'o', '--bundle', 'b']);
  expect(values).toEqual({ bundle: 'b', out: 'o', threads: '2' });
  // Typed string, not string | undefined: the callers use them without checks.
  const bundle: string = values.bundle;
  expect(bundle).toBe('b');
  const refused = (argv: string[]): UsageError => thrownBy(() => parseOptions(options, argv));
  expect(refused(['--threads', '4'])).toMatchObject({ help: false, message: 'missing --bundle --out' });
  expect(refused(['--bundle', 'b'])).toMatchObject({ help: false, message: 'missing --out' });
  expect(refused(['--bundle'])).toMatchObject({ help: false, message: expect.stringContaining("'--bundle <value>' argument missing") });
  expect(refused(['--help']).usage).toMatch(/\n {2}--bundle <required>\n {2}--out <required>\n {2}--threads <value> \(default "2"\)$/);
});

test('a string option takes the next argument as its value even when it starts with a dash', () => {
  const options = { 'synth-args': { type: 'string', default: '--matrix 128' }, tolerance: { type: 'string' }, fast: { type: 'boolean' } } as const;
  expect(parseOptions(options, ['--synth-args', '--fast --workers 0', '--tolerance', '-1'])).toEqual({ 'synth-args': '--fast --workers 0', tolerance: '-1' });
  expect(parseOptions(options, ['--synth-args=--help', '--fast'])).toEqual({ 'synth-args': '--help', fast: true });
  // A value, not a request for help.
  expect(parseOptions(options, ['--synth-args', '--help'])).toEqual({ 'synth-args': '--help' });
});

test.each([
  ['models:eval', 'shared/models/cli/eval.js', '--synth-args <value> (default "--matrix 128")', '--seeds', /^Unknown option '--seeds'.*\nusage: /],
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

test('the built score CLI, with required options left out, names them and exits 2', () => {
  const score = spawnSync(process.execPath, [path.resolve(__dirname, '../dist/shared/models/cli/score.js'), '--threads', '1'], { encoding: 'utf8' });
  expect(score.status).toBe(2);
  expect(score.stderr).toMatch(/^missing --bundle --volumes --out\nusage: [^\n]*\n {2}--bundle <required>\n/);
});
