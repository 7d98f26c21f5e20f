// Child process of cohort.test.ts, run inside a private network namespace next to a DCMTK storescp: generates
// N fast studies in process and C-STOREs them to NT_TEST@127.0.0.1:<port>, then prints the cohort summary.
import { writeCohort } from '../../tools/synth/cohort';
import { createStoreSender, parseTarget } from '../../tools/synth/send';
import { DEFAULT_OPTIONS } from '../../tools/synth/types';

async function run(): Promise<void> {
  const [port, n, seed] = process.argv.slice(2).map(Number);
  const sender = createStoreSender(parseTarget(`NT_TEST@127.0.0.1:${port}`), 'NT_SYNTH');
  const summary = await writeCohort({
    n: n!, seed: seed!, out: undefined, options: { ...DEFAULT_OPTIONS, fast: true }, workers: 0, previewCount: 0, sender, sendConcurrency: 2,
  });
  process.stdout.write(JSON.stringify(summary.counts) + '\n');
}

run().catch((e: Error) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
});
