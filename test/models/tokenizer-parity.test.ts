// Token ids from the service (@huggingface/tokenizers reading tokenizer.json, shared/models/tokenizer.ts) equal
// the training recipe's (onnx-models/training/nt_tokenizer.py) on a fixed sentence set: a vocabulary is learnt
// from a small report corpus, then both sides encode sentences that exercise the normaliser (case, accents,
// control characters, odd whitespace), the pre-tokeniser (punctuation, symbols, numbers), WordPiece (unseen
// words spelt in pieces, characters outside the vocabulary) and truncation.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadTokenizer } from '../../shared/models/tokenizer';
import { python } from './python';

const CORPUS = [
  'FINDINGS: There is an acute infarct in the left MCA territory measuring 23 mm, with restricted diffusion. IMPRESSION: Acute left MCA infarct.',
  'FINDINGS: The lateral and third ventricles are enlarged out of proportion to the sulci, with periventricular oedema. IMPRESSION: Obstructive hydrocephalus.',
  'FINDINGS: No intracranial haemorrhage, mass or midline shift. The ventricles and sulci are normal. IMPRESSION: Normal MRI brain.',
  'FINDINGS: A 4.2 cm heterogeneous mass in the right frontal lobe with vasogenic oedema and 6 mm midline shift. IMPRESSION: Right frontal mass.',
  'FINDINGS: Scattered T2/FLAIR white matter hyperintensities (Fazekas grade 2). IMPRESSION: Small vessel disease.',
  'FINDINGS: Generalised volume loss with prominent sulci for age. IMPRESSION: Cerebral atrophy.',
];

const SENTENCES = [
  'There is an acute infarct.',
  'NO EVIDENCE OF ACUTE INFARCTION; no haemorrhage.',
  'Oedème périventriculaire — Ménière, naïve café.',
  'Left-sided 2.3x1.1 cm lesion (axial T2/FLAIR), ?haemorrhage vs. calcification!',
  'Symbols: $5 + 3 = 8 < 9 > 7 ^ ` | ~ @ # % & * _ { } [ ] \\ "quoted" \'single\'',
  'Tabs\tand\nnewlines\r\nand  double  spaces  ',
  'Unseen words: subarachnoid xanthogranuloma cavernoma leukoencephalopathy',
  'Characters outside the vocabulary: 脑 MRI ß Ω µ ° ±',
  'zero\u200bwidth and control\u0007chars',
  '',
  'word '.repeat(200),
];

describe('tokenizer parity (TypeScript vs Python)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'nt-tok-'));
    python('nt_tokenizer.py', ['train', '300', path.join(dir, 'tokenizer.json')], JSON.stringify(CORPUS));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('learns a BERT-style vocabulary with the special tokens first', () => {
    const json = JSON.parse(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
    expect(json.model.type).toBe('WordPiece');
    const vocab = json.model.vocab as Record<string, number>;
    expect([vocab['[PAD]'], vocab['[UNK]'], vocab['[CLS]'], vocab['[SEP]'], vocab['[MASK]']]).toEqual([0, 1, 2, 3, 4]);
    expect(Object.keys(vocab).length).toBeGreaterThan(150);
    expect(vocab['infarct']).toBeDefined();
  });

  it.each([64, 16])('gives the same ids on both sides (maxLength %i)', async (maxLength) => {
    const py = JSON.parse(python('nt_tokenizer.py', ['encode', path.join(dir, 'tokenizer.json'), String(maxLength)], JSON.stringify(SENTENCES))) as number[][];
    const tokenizer = await loadTokenizer(path.join(dir, 'tokenizer.json'), maxLength);
    const ts = SENTENCES.map((s) => tokenizer.encode(s).ids);
    expect(ts).toEqual(py);
    // The set really exercises what it claims: pieces, unknowns and truncation all occur.
    expect(py.flat()).toContain(1);
    expect(Math.max(...py.map((ids) => ids.length))).toBe(maxLength);
    for (const ids of py) expect([ids[0], ids[ids.length - 1]]).toEqual([2, 3]);
  });
});
