// `npm run synth -- --n 20 --seed 1 --out var/cohort [--fast] [--send AE@host:port] [--reports-to host:port]
// [--preview]`: the synthetic cohort generator and PACS simulator's command line (with --reports-to it is the RIS
// too: each study's report goes out as HL7 ORU^R01 after its images). Parses options, shows a progress bar,
// prints a summary.
import { parseArgs } from 'node:util';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { writeCohort } from './cohort';
import { createStoreSender, parseTarget } from './send';
import { createReportSender, parseReportTarget } from './send-reports';
import { DEFAULT_OPTIONS, type SynthOptions } from './types';

const USAGE = `Usage: npm run synth -- [options]
  --n N                  number of studies (default 10)
  --seed S               seed (default 1); the same seed and options give the same bytes
  --out DIR              output folder (default var/synth-<seed>); --out none with --send writes nothing
  --fast                 small studies for tests: 64x64 matrix, 12 slices
  --matrix M             T2/FLAIR acquisition matrix (DWI/ADC get 0.625 M); 128 suits training
  --normal-fraction F    fraction of normal studies (default ${DEFAULT_OPTIONS.normalFraction})
  --phrasing-set S       train | heldout report phrasings (default train)
  --scanner-set S        train | heldout scanners and protocols (default train)
  --preview [K]          write DIR/preview.png with the first K studies (default 8)
  --send AE@host:port    C-STORE each study to this SCP as it is generated
  --concurrency C        associations in flight with --send (default 2)
  --calling-ae AE        our AE title with --send (default NT_SYNTH)
  --reports-to host:port send each study's report as HL7 ORU^R01 over MLLP (after its images with --send);
                         sending facility NT_SYNTH, accession number in OBR-3 and OBR-18
  --workers W            generation threads (default: cores, 0 = in process)
  --swi-share F          fraction of studies with an SWI or T2* gradient-echo series (default ${DEFAULT_OPTIONS.swiShare}; 1 for a
                         cohort that trains an SWI encoder)
  --help`;

/**
 * `--preview` takes an optional count. node:util parseArgs has no optional values: a string option followed by
 * another option is "ambiguous" and at the end "missing". So a `--preview` not followed by a count gets the default
 * written in (`--preview=8`); `--preview 12` and `--preview=12` pass as they are.
 */
export function withPreviewDefault(argv: readonly string[], defaultCount = 8): string[] {
  return argv.map((arg, i) => (arg === '--preview' && !/^\d+$/.test(argv[i + 1] ?? '') ? `--preview=${defaultCount}` : arg));
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: withPreviewDefault(argv),
    options: {
      n: { type: 'string', default: '10' },
      seed: { type: 'string', default: '1' },
      out: { type: 'string' },
      fast: { type: 'boolean', default: false },
      matrix: { type: 'string' },
      'normal-fraction': { type: 'string', default: String(DEFAULT_OPTIONS.normalFraction) },
      'phrasing-set': { type: 'string', default: 'train' },
      'scanner-set': { type: 'string', default: 'train' },
      preview: { type: 'string' },
      send: { type: 'string' },
      concurrency: { type: 'string', default: '2' },
      'calling-ae': { type: 'string', default: 'NT_SYNTH' },
      'reports-to': { type: 'string' },
      workers: { type: 'string' },
      'swi-share': { type: 'string', default: String(DEFAULT_OPTIONS.swiShare) },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: false,
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const n = Number(values.n);
  const normalFraction = Number(values['normal-fraction']);
  const phrasing = values['phrasing-set'];
  const scanners = values['scanner-set'];
  if (!Number.isInteger(n) || n < 1) throw new Error('--n must be a positive integer');
  if (!(normalFraction >= 0 && normalFraction <= 1)) throw new Error('--normal-fraction must be in [0, 1]');
  if (phrasing !== 'train' && phrasing !== 'heldout') throw new Error('--phrasing-set must be train or heldout');
  if (scanners !== 'train' && scanners !== 'heldout') throw new Error('--scanner-set must be train or heldout');
  const matrix = values.matrix ? Number(values.matrix) : undefined;
  if (matrix !== undefined && !(Number.isInteger(matrix) && matrix >= 32 && matrix <= 512)) throw new Error('--matrix must be an integer in 32..512');
  const seed = /^\d+$/.test(values.seed) ? Number(values.seed) : values.seed;
  const swiShare = Number(values['swi-share']);
  if (!(swiShare >= 0 && swiShare <= 1)) throw new Error('--swi-share must be in [0, 1]');
  const options: SynthOptions = { fast: values.fast, matrix, phrasingSet: phrasing, scannerSet: scanners, normalFraction, swiShare };
  const out = values.out === 'none' ? undefined : path.resolve(values.out ?? `var/synth-${seed}`);
  const previewCount = values.preview === undefined ? 0 : Number(values.preview);
  if (!(Number.isInteger(previewCount) && previewCount >= 0)) throw new Error('--preview takes a count of studies (a whole number), or nothing for 8');
  const sender = values.send ? createStoreSender(parseTarget(values.send), values['calling-ae']) : undefined;
  const reportSender = values['reports-to'] ? createReportSender(parseReportTarget(values['reports-to'])) : undefined;
  const acks: Record<string, number> = {};
  const afterStudy = reportSender
    ? async (report: { AccessionNumber: string; text: string }) => {
        const code = await reportSender.send(report);
        acks[code] = (acks[code] ?? 0) + 1;
      }
    : undefined;
  const workers = values.workers !== undefined ? Number(values.workers) : Math.min(availableParallelism(), n);

  const bar = new cliProgress.SingleBar(
    { format: 'synth [{bar}] {value}/{total} studies | {mb} MB | {rate} studies/s | eta {eta_formatted}', hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  const t0 = Date.now();
  let mb = 0;
  bar.start(n, 0, { mb: '0', rate: '0' });
  try {
    const summary = await writeCohort({
      n, seed, out, options, workers, previewCount, sender, sendConcurrency: Number(values.concurrency), afterStudy,
      onStudy: ({ bytes }) => {
        mb += bytes / 1e6;
        const done = (bar.getProgress() * n) + 1;
        bar.increment(1, { mb: mb.toFixed(0), rate: (done / ((Date.now() - t0) / 1000)).toFixed(2) });
      },
    });
    bar.stop();
    const c = summary.counts;
    console.log(`synth: ${c.studies} studies (${c.normal} normal), ${c.series} series, ${c.instances} instances, ${(c.bytes / 1e6).toFixed(1)} MB in ${summary.seconds.toFixed(1)} s${out ? ` -> ${out}` : ''}`);
    if (sender) console.log(`synth: sent ${c.sent} instances, ${c.sendFailures} refused`);
    if (reportSender) {
      const line = Object.entries(acks).map(([code, count]) => `${count} ${code}`).join(', ');
      console.log(`synth: sent ${c.studies} reports to ${values['reports-to']}: ${line || 'none acknowledged'}`);
    }
    return acks.AE || acks.AR ? 1 : 0;
  } catch (e) {
    bar.stop();
    throw e;
  } finally {
    await reportSender?.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      console.error(`synth: ${e.message}`);
      process.exit(1);
    },
  );
}
