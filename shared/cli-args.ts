// How the command-line tools (model CLIs, benchmarks, the fuzzer) read their options and how they end: --help
// prints the options with their defaults (exit 0); a wrong option prints what was wrong and the usage (exit 2); any
// other failure prints its message (exit 1). parseArgs is a tiny --flag value parser (strings only);
// parseOptions is node:util's parseArgs (typed values, booleans) with the same --help and usage errors.
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

export function parseArgs(argv: string[], known: Record<string, string | undefined>): Record<string, string> {
  const usage = usageOf(Object.entries(known).map(([k, v]) => `--${k} ${v === undefined ? '<required>' : `(default ${JSON.stringify(v)})`}`));
  const out: Record<string, string | undefined> = { ...known };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') throw new UsageError('', usage, true);
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument ${a}`, usage);
    const key = a.slice(2);
    if (!(key in known)) throw new UsageError(`unknown option --${key}`, usage);
    const value = argv[++i];
    if (value === undefined) throw new UsageError(`--${key} needs a value`, usage);
    out[key] = value;
  }
  const missing = Object.entries(out).filter(([, v]) => v === undefined).map(([k]) => `--${k}`);
  if (missing.length > 0) throw new UsageError(`missing ${missing.join(' ')}`, usage);
  return out as Record<string, string>;
}

type NodeOptions = Record<string, { type: 'string' | 'boolean'; short?: string; default?: string | boolean; multiple?: false }>;

/**
 * node:util's parseArgs, strict, no positionals; --help or -h, or a wrong option, throws UsageError. With
 * allowNegative, a boolean is turned off by --no-<name>.
 */
export function parseOptions<const O extends NodeOptions>(options: O, argv: string[] = process.argv.slice(2), settings: { allowNegative?: boolean } = {}) {
  const usage = usageOf(Object.entries(options).map(([k, o]) => {
    const name = o.type === 'boolean' && settings.allowNegative ? `--[no-]${k}` : `--${k}`;
    return `${name}${o.type === 'string' ? ' <value>' : ''}${o.default === undefined || o.default === false ? '' : ` (default ${JSON.stringify(o.default)})`}`;
  }));
  if (argv.includes('--help') || argv.includes('-h')) throw new UsageError('', usage, true);
  try {
    return parseNodeArgs({ options, args: argv, strict: true, allowPositionals: false, allowNegative: settings.allowNegative ?? false }).values;
  } catch (err) {
    throw new UsageError((err as Error).message, usage);
  }
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
