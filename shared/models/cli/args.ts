// Tiny --flag value parser for the model CLIs (no dependency needed for a handful of flags), and how they end:
// --help prints the options with their defaults (exit 0); a wrong option prints what was wrong and the usage (exit 2);
// any other failure prints its message (exit 1).
import path from 'node:path';

/** A command line the CLI cannot run with, or --help. */
export class UsageError extends Error {
  constructor(message: string, readonly usage: string, readonly help = false) {
    super(message);
    this.name = 'UsageError';
  }
}

function usageOf(known: Record<string, string | undefined>): string {
  const script = path.relative(process.cwd(), process.argv[1] ?? 'cli');
  const options = Object.entries(known).map(([k, v]) => `  --${k} ${v === undefined ? '<required>' : `(default ${JSON.stringify(v)})`}`);
  return [`usage: node ${script} [--option value ...]`, ...options].join('\n');
}

export function parseArgs(argv: string[], known: Record<string, string | undefined>): Record<string, string> {
  const usage = usageOf(known);
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

/** Runs a CLI's main and exits as described above. */
export function runCli(main: () => Promise<void>, opts: { stack?: boolean } = {}): void {
  main().catch((err: Error) => {
    if (err instanceof UsageError) {
      if (err.help) {
        console.log(err.usage);
        process.exit(0);
      }
      console.error(`${err.message}\n${err.usage}`);
      process.exit(2);
    }
    console.error(opts.stack ? (err.stack ?? err.message) : err.message);
    process.exit(1);
  });
}
