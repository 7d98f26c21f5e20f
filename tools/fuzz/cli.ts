// `npm run fuzz:listener -- [--seed 14] [--count 277] [--out DIR] [--send AE@host:port] [--calling-ae AE]`:
// makes the mutation corpus (tools/fuzz/corpus.ts); --out writes each instance as a Part 10 file with its
// reference verdict (DCMTK) in index.tsv; --send sends them to a running listener over one association and prints,
// per mutation kind, how many were detectably corrupt and how many of those were acknowledged with Success.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { mutationCorpus } from './corpus';
import { referenceVerdict, type Verdict } from './oracle';
import { sendCorpus, type SendResult } from './send';
import { parseOptions, runCli } from '../../shared/cli-args';

export interface FuzzRow {
  id: string;
  mutation: string;
  detail: string;
  verdict: Verdict;
  result?: SendResult;
}

/** Per mutation kind: made, detectably corrupt, and (when sent) corrupt ones acknowledged with Success. */
export function summarise(rows: FuzzRow[]): string {
  const kinds = [...new Set(rows.map((r) => r.mutation))];
  const lines = ['mutation           made  corrupt  refused  corrupt+Success'];
  for (const kind of kinds) {
    const of = rows.filter((r) => r.mutation === kind);
    const corrupt = of.filter((r) => r.verdict.corrupt);
    const refused = of.filter((r) => r.result && r.result.status !== 0);
    const acked = corrupt.filter((r) => r.result?.status === 0);
    lines.push(`${kind.padEnd(18)} ${String(of.length).padStart(4)} ${String(corrupt.length).padStart(8)} ${String(refused.length).padStart(8)} ${String(acked.length).padStart(16)}`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const values = parseOptions({
    seed: { type: 'string', default: '14' },
    count: { type: 'string', default: '277' },
    out: { type: 'string' },
    send: { type: 'string' },
    'calling-ae': { type: 'string', default: 'NT_FUZZ' },
  });
  const corpus = await mutationCorpus({ seed: Number(values.seed), count: Number(values.count) });
  const dir = values.out ?? mkdtempSync(path.join(tmpdir(), 'nt-fuzz-'));
  mkdirSync(dir, { recursive: true });
  const rows: FuzzRow[] = [];
  for (const instance of corpus) {
    rows.push({ id: instance.id, mutation: instance.mutation, detail: instance.detail, verdict: await referenceVerdict(dir, instance) });
  }
  if (values.send) {
    const m = /^([^@]{1,16})@([^:]+):(\d+)$/.exec(values.send);
    if (!m) throw new Error(`--send expects AE@host:port, got "${values.send}"`);
    const run = await sendCorpus(corpus, { calledAe: m[1], host: m[2], port: Number(m[3]), callingAe: values['calling-ae'] as string });
    run.results.forEach((r, i) => (rows[i].result = r));
    console.log(`associations lost: ${run.associationsLost}; C-ECHO afterwards: 0x${run.echoStatus.toString(16).padStart(4, '0')}`);
  }
  const index = rows.map((r) => [r.id, r.mutation, r.detail, r.verdict.corrupt ? 'corrupt' : 'readable', r.verdict.why, r.result ? `0x${r.result.status.toString(16).padStart(4, '0')}` : '', r.result?.errorComment ?? ''].join('\t'));
  if (values.out) writeFileSync(path.join(dir, 'index.tsv'), `${['id', 'mutation', 'detail', 'reference', 'why', 'status', 'comment'].join('\t')}\n${index.join('\n')}\n`);
  else rmSync(dir, { recursive: true, force: true });
  console.log(summarise(rows));
}

if (require.main === module) runCli(main);
