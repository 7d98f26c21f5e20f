// `node dist/tools/synth/corpus.js --n 60000 --seed 11 --out corpus.jsonl [--phrasing-set train] [--with-labels]`: a large text
// corpus for the text encoder's self-supervised training, without any image: the reports of N planned studies (the
// same findings, protocol and report writer as a full cohort, so the language is exactly the cohort's) plus the
// lexicon's off-topic English, marked so training can keep it apart. One JSON line each:
// {"text": "...", "kind": "report" | "off-topic"}. Labels are not written: training never sees them.
import { createWriteStream } from 'node:fs';
import { parseArgs } from 'node:util';
import { entries, LEXICON } from './lexicon';
import { planStudy, reportFor } from './study';
import type { PhrasingSet, StudyLabels } from './types';

export interface CorpusRow {
  text: string;
  kind: 'report' | 'off-topic';
  /** Only with withLabels (evaluation of the text side): the finding types the report was written from. */
  findings?: string[];
}

export function* corpus(n: number, seed: number | string, set: PhrasingSet, withLabels = false): Generator<CorpusRow> {
  for (let i = 0; i < n; i++) {
    const plan = planStudy(seed, i, { phrasingSet: set });
    const labels: StudyLabels = {
      AccessionNumber: '', StudyInstanceUID: '', normal: plan.subject.findings.length === 0, findings: plan.subject.findings,
      age: plan.subject.age, sex: plan.subject.sex, manufacturer: '', model: '', fieldStrength: plan.protocol.scanner.fieldT, series: [],
    };
    yield { text: reportFor(seed, i, plan, labels), kind: 'report', ...(withLabels ? { findings: [...new Set(labels.findings.map((f) => f.type))] } : {}) };
  }
  // Off-topic English: the lexicon's sentences, and as many again made from its subject and predicate lists.
  const offTopic = entries(LEXICON.offTopic, set);
  for (const text of offTopic) yield { text, kind: 'off-topic' };
  const subjects = entries(LEXICON.offTopicWords.subjects, set);
  const predicates = entries(LEXICON.offTopicWords.predicates, set);
  for (const s of subjects) for (const p of predicates) yield { text: `${s} ${p}.`, kind: 'off-topic' };
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      n: { type: 'string', default: '10000' }, seed: { type: 'string', default: '11' }, out: { type: 'string' }, 'phrasing-set': { type: 'string', default: 'train' },
      // evaluation only: training reads texts, never labels
      'with-labels': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const n = Number(values.n);
  const set = values['phrasing-set'];
  if (!Number.isInteger(n) || n < 1) throw new Error('--n must be a positive integer');
  if (set !== 'train' && set !== 'heldout') throw new Error('--phrasing-set must be train or heldout');
  if (!values.out) throw new Error('--out FILE is required');
  const out = createWriteStream(values.out);
  let count = 0;
  for (const row of corpus(n, values.seed, set, values['with-labels'])) {
    if (!out.write(JSON.stringify(row) + '\n')) await new Promise<void>((r) => out.once('drain', () => r()));
    count++;
  }
  await new Promise<void>((resolve) => out.end(resolve));
  console.log(`wrote ${count} texts to ${values.out}`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
}
