// How the command-line tools (model CLIs, benchmarks, the fuzzer) read their options and how they end: --help
// prints the options with their defaults (exit 0); a wrong option or a missing required one prints what was wrong and
// the usage (exit 2); any other failure prints its message (exit 1). parseOptions is node:util's parseArgs (typed
// values, booleans) with required options and these --help and usage errors.
import path from 'node:path';
import { parseArgs as parseNodeArgs } from 'node:util';

/** A command line the CLI cannot run with, or --help. */
export class UsageError extends Error {
  constructor(message: string, readonly usage: string, readonly help = false) {
    super(message);
    this.name = 'UsageError';
  }
}

function usageOf(options: string[]): string {
  const script = path.relative(process.cwd(), process.argv[1] ?? 'cli');
  return [`usage: node ${script} [--option value ...]`, ...options.map((o) => `  ${o}`)].join('\n');
}

type Option = { type: 'string' | 'boolean'; short?: string; default?: string | boolean; multiple?: false; required?: boolean };
type Options = Record<string, Option>;

/** The parsed values: a string option that is required or has a default is always there, so it is typed string. */
type Values<O extends Options> = {
  -readonly [K in keyof O]: (O[K]['type'] extends 'boolean' ? boolean : string) | (O[K] extends { required: true } | { default: unknown } ? never : undefined);
};

/**
 * `--name value` for each string option becomes `--name=value`, so that a value starting with a dash is taken as the
 * value (e.g. `--synth-args "--matrix 128"`), as getopt does; node:util would refuse it as ambiguous.
 */
function joinValues(options: Options, argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const isString = a.startsWith('--') && options[a.slice(2)]?.type === 'string';
    if (isString && i + 1 < argv.length) out.push(`${a}=${argv[++i]}`);
    else out.push(a);
  }
  return out;
}

/**
 * node:util's parseArgs, strict, no positionals; --help or -h, a wrong option or a missing required one
 * (`required: true`) throws UsageError. With allowNegative, a boolean is turned off by --no-<name>.
 */
export function parseOptions<const O extends Options>(
  options: O,
  argv: string[] = process.argv.slice(2),
  settings: { allowNegative?: boolean; /** What the command does, after the option list in its usage. */ about?: string } = {},
): Values<O> {
  const listed = usageOf(Object.entries(options).map(([k, o]) => {
    const name = o.type === 'boolean' && settings.allowNegative ? `--[no-]${k}` : `--${k}`;
    const value = o.type === 'boolean' ? '' : o.required ? ' <required>' : ' <value>';
    return `${name}${value}${o.default === undefined || o.default === false ? '' : ` (default ${JSON.stringify(o.default)})`}`;
  }));
  const usage = settings.about ? `${listed}\n${settings.about}` : listed;
  const args = joinValues(options, argv);
  if (args.includes('--help') || args.includes('-h')) throw new UsageError('', usage, true);
  // node:util knows nothing of `required`.
  const nodeOptions = Object.fromEntries(Object.entries(options).map(([k, { required: _, ...o }]) => [k, o]));
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseNodeArgs({ options: nodeOptions, args, strict: true, allowPositionals: false, allowNegative: settings.allowNegative ?? false }).values;
  } catch (err) {
    throw new UsageError((err as Error).message, usage);
  }
  const missing = Object.keys(options).filter((k) => options[k].required && values[k] === undefined).map((k) => `--${k}`);
  if (missing.length > 0) throw new UsageError(`missing ${missing.join(' ')}`, usage);
  return values as Values<O>;
}

/** Ends the process for a CLI's failure as described above. */
export function failCli(err: unknown, opts: { stack?: boolean } = {}): never {
  if (err instanceof UsageError) {
    if (err.help) {
      console.log(err.usage);
      process.exit(0);
    }
    console.error(`${err.message}\n${err.usage}`);
    process.exit(2);
  }
  const e = err as Error;
  console.error(opts.stack ? (e.stack ?? e.message) : (e.message ?? String(err)));
  process.exit(1);
}

/** Runs a CLI's main and exits as described above. */
export function runCli(main: () => Promise<void>, opts: { stack?: boolean } = {}): void {
  main().catch((err: unknown) => failCli(err, opts));
}
