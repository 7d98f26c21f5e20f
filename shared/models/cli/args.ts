// Tiny --flag value parser for the model CLIs (no dependency needed for four flags).
export function parseArgs(argv: string[], known: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string | undefined> = { ...known };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const key = a.slice(2);
    if (!(key in known)) throw new Error(`unknown option --${key} (known: ${Object.keys(known).map((k) => `--${k}`).join(' ')})`);
    const value = argv[++i];
    if (value === undefined) throw new Error(`--${key} needs a value`);
    out[key] = value;
  }
  const missing = Object.entries(out).filter(([, v]) => v === undefined).map(([k]) => `--${k}`);
  if (missing.length > 0) throw new Error(`missing ${missing.join(' ')}`);
  return out as Record<string, string>;
}
