// The report sentence rules every reader of free text shares (report check, report pseudo-labels, evaluation):
// splitting, assertion cues and the cue-stripped text a sentence is matched on.
import { assertionOf, deniesOnly, reportSentences, splitSentences, stripCues } from './sentences';

describe('splitSentences', () => {
  test('splits on line breaks and sentence ends, drops headings, bullets and empty parts', () => {
    const report = 'FINDINGS: Acute infarct in the left MCA territory. No haemorrhage!\n- Ventricles normal;  midline shift absent\n\nIMPRESSION:\n1. Stroke.';
    expect(splitSentences(report)).toEqual([
      'Acute infarct in the left MCA territory', 'No haemorrhage!', 'Ventricles normal', 'midline shift absent', 'Stroke',
    ]);
  });

  test('"but" and "however" start a clause with its own assertion', () => {
    const parts = splitSentences('No haemorrhage but an acute infarct in the pons. Ventricles normal, however there is a mass.');
    expect(parts).toEqual(['No haemorrhage', 'an acute infarct in the pons', 'Ventricles normal', 'there is a mass']);
    expect(parts.map(assertionOf)).toEqual(['absent', 'present', 'absent', 'present']);
  });

  test('leaves out the request, technique and comparison sections, whatever their case; keeps findings and impression', () => {
    const report = [
      'Clinical history: Sudden headache, anticoagulated. ? bleed.',
      'Technique: Axial T2, FLAIR, DWI. No contrast given.',
      'Comparison: CT earlier today.',
      'Findings',
      'Acute haematoma in the left thalamus.',
      'Hydrocephalus: none.',
      'Impression: Left thalamic bleed.',
    ].join('\n');
    expect(splitSentences(report)).toEqual(['Acute haematoma in the left thalamus', 'Hydrocephalus: none', 'Left thalamic bleed']);
    // Capitals, a heading on its own line, and sections that run over several lines until the next heading.
    const upper = 'REASON FOR EXAM:\nStroke symptoms.\nPRIOR IMAGING: None.\nOBSERVATIONS:\nNo acute infarct.\nCOMMENT:\nNormal study.';
    expect(splitSentences(upper)).toEqual(['No acute infarct', 'Normal study']);
    // A report without sections is all findings.
    expect(splitSentences('Acute infarct. No haemorrhage.')).toEqual(['Acute infarct', 'No haemorrhage']);
  });

  test('a heading with its text on the line drops that line only; one alone on its line, the lines up to a blank line', () => {
    expect(splitSentences('Clinical history: headache.\n\nThere is an acute infarct.')).toEqual(['There is an acute infarct']);
    expect(splitSentences('Technique: T2.\nBrain: acute infarct')).toEqual(['Brain: acute infarct']);
    expect(splitSentences('Exam: MRI brain.\nLarge right frontal mass')).toEqual(['Large right frontal mass']);
    expect(splitSentences('CLINICAL HISTORY:\nHeadache.\n\nAcute infarct.')).toEqual(['Acute infarct']);
    // Combined findings headings, and a post-contrast finding line, are findings.
    expect(splitSentences('History: fall.\nFindings and impression: Acute SDH')).toEqual(['Acute SDH']);
    expect(splitSentences('Indication: stroke\nFindings/Impression: Acute infarct.')).toEqual(['Acute infarct']);
    expect(splitSentences('Contrast: ring-enhancing lesion in the left frontal lobe.')).toEqual(['Contrast: ring-enhancing lesion in the left frontal lobe']);
  });

  test('keeps decimals inside a sentence together', () => {
    expect(splitSentences('Lesion measures 1.5 cm. Stable.')).toEqual(['Lesion measures 1.5 cm', 'Stable']);
  });
});

describe('assertionOf', () => {
  test.each([
    ['Acute infarct in the left MCA territory', 'present'],
    ['No acute infarct', 'absent'],
    ['Negative for haemorrhage', 'absent'],
    ['Ventricles are normal in size', 'absent'],
    ['Abnormal signal in the pons', 'present'],
    ['Small infarct cannot be excluded', 'uncertain'],
    ['Possible early ischaemia', 'uncertain'],
    ['Intracranial haemorrhage is excluded', 'absent'],
    ['Hydrocephalus: none', 'absent'],
    ['Nothing to indicate significant cerebral atrophy', 'absent'],
    ['Nil acute', 'absent'],
    ['White matter signal is preserved', 'absent'],
    ['Cortical ribbon intact', 'absent'],
    ['Mass lesion - none', 'absent'],
    // Hedges stay hedges with an adverb; the new cues do not deny a finding they only accompany.
    ['Haemorrhage cannot be entirely excluded', 'uncertain'],
    ['Large left MCA infarct with preserved flow voids', 'present'],
    ['Acute infarct in the left pons, nil else', 'present'],
    ['Acute infarct, nothing else of note', 'present'],
    ['A small haemorrhage is not excluded', 'uncertain'],
  ])('%s -> %s', (sentence, expected) => {
    expect(assertionOf(sentence)).toBe(expected);
  });
});

describe('stripCues', () => {
  test.each([
    ['No intracranial haemorrhage', 'intracranial haemorrhage'],
    ['Small infarct cannot be excluded', 'Small infarct'],
    ['Negative for acute infarct', 'acute infarct'],
    ['Possible early ischaemia', 'early ischaemia'],
    ['Acute left thalamic haematoma', 'Acute left thalamic haematoma'],
    ['Normal', 'Normal'],
  ])('%s -> %s', (sentence, about) => {
    expect(stripCues(sentence)).toBe(about);
  });

  test('reportSentences keeps each sentence with its assertion and the text it is matched on', () => {
    expect(reportSentences('IMPRESSION: No haemorrhage. Probable small infarct.')).toEqual([
      { text: 'No haemorrhage', assertion: 'absent', about: 'haemorrhage' },
      { text: 'Probable small infarct', assertion: 'uncertain', about: 'small infarct' },
    ]);
  });
});

describe('deniesOnly', () => {
  test.each([
    ['No haemorrhage.', true],
    ['No intracranial hemorrhage', true],
    ['Without hydrocephalus', true],
    ['There is no acute infarct. No mass.', true],
    ['Normal MRI brain. No intracranial abnormality.', false],
    ['Unremarkable study', false],
    ['No haemorrhage but an acute infarct', false],
    ['Acute infarct', false],
    ['Haemorrhage cannot be excluded', false],
    ['Haemorrhage cannot be entirely excluded', false],
    ['Hydrocephalus: none.', true],
    ['Acute infarct, nothing else of note', false],
    ['White matter signal is preserved', false],
  ])('%s -> %s', (text, denies) => {
    expect(deniesOnly(text)).toBe(denies);
  });
});
