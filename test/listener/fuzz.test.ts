// The mutation corpus (tools/fuzz: 7 clean bases and 277 mutants, seed 14) sent raw over one association to a real
// listener: every instance DCMTK or the image rules find corrupt gets a failure status, never Success; the clean
// bases are stored; the association carries every response and a C-ECHO after the last; nothing refused reaches
// the store and no temp file is left.
import path from 'node:path';
import { rmSync } from 'node:fs';
import { mutationCorpus, type CorpusInstance } from '../../tools/fuzz/corpus';
import { referenceVerdict, type Verdict } from '../../tools/fuzz/oracle';
import { sendCorpus } from '../../tools/fuzz/send';
import { summarise, type FuzzRow } from '../../tools/fuzz/cli';
import { leftoverTempFiles, listFiles, startHarness, tempDir, CALLED_AE, CALLING_AE, type Harness } from './harness';

const SEED = 14;
const MUTANTS = 277;

let h: Harness;
let corpus: CorpusInstance[];
let verdicts: Verdict[];
let files: string;

beforeAll(async () => {
  files = tempDir('nt-fuzz-');
  corpus = await mutationCorpus({ seed: SEED, count: MUTANTS });
  verdicts = [];
  for (const instance of corpus) verdicts.push(await referenceVerdict(files, instance));
  h = await startHarness();
}, 180_000);

afterAll(async () => {
  await h?.stop();
  rmSync(files, { recursive: true, force: true });
});

test('the corpus is deterministic and covers every mutation kind', async () => {
  const again = await mutationCorpus({ seed: SEED, count: MUTANTS });
  expect(again.map((i) => i.dataset.toString('base64'))).toEqual(corpus.map((i) => i.dataset.toString('base64')));
  expect(corpus.filter((i) => i.mutation !== 'none')).toHaveLength(MUTANTS);
  expect(new Set(corpus.map((i) => i.mutation)).size).toBe(12);
  // The reference reads every clean base as sound; most mutants are corrupt, some (a flipped pixel) are not.
  corpus.forEach((i, k) => {
    if (i.mutation === 'none') expect(verdicts[k]).toEqual({ corrupt: false, why: '' });
  });
  expect(verdicts.filter((v) => v.corrupt).length).toBeGreaterThan(MUTANTS / 2);
});

test('no detectably corrupt instance is acknowledged with Success, and the association carries on', async () => {
  const run = await sendCorpus(corpus, { host: '127.0.0.1', port: h.ae.port, callingAe: CALLING_AE, calledAe: CALLED_AE });
  const rows: FuzzRow[] = corpus.map((i, k) => ({ id: i.id, mutation: i.mutation, detail: i.detail, verdict: verdicts[k], result: run.results[k] }));
  // Printed for the record (the figures docs/dicom-conformance.md quotes come from `npm run fuzz:listener`).
  console.log(summarise(rows));

  expect(run.associationsLost).toBe(0);
  expect(run.results.every((r) => r.status >= 0)).toBe(true);
  expect(run.echoStatus).toBe(0);
  const acknowledgedCorrupt = rows.filter((r) => r.verdict.corrupt && r.result?.status === 0).map((r) => `${r.id}: ${r.detail} (${r.verdict.why})`);
  expect(acknowledgedCorrupt).toEqual([]);
  for (const r of rows.filter((x) => x.mutation === 'none')) expect(r.result?.status).toBe(0);
  // Failures say why, in the Error Comment, and use only the documented statuses.
  for (const r of rows.filter((x) => x.result && x.result.status !== 0)) {
    expect([0xa900, 0xc000]).toContain(r.result?.status);
    expect(r.result?.errorComment).toBeTruthy();
  }

  // The store holds one file per base instance (mutants with a base's UIDs that pass are duplicates of it).
  const bases = new Set(corpus.filter((i) => i.mutation === 'none').map((i) => i.SOPInstanceUID));
  const stored = listFiles(path.join(h.dataDir, 'store')).map((f) => path.basename(f, '.dcm'));
  expect(new Set(stored)).toEqual(bases);
  expect(leftoverTempFiles(h.dataDir)).toEqual([]);
}, 180_000);
