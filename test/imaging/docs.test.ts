// docs/imaging.md stays in step with the code: every classifier rule, unusable reason and reason images are left out is documented.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CLASSIFIER_RULES } from '../../shared/imaging/classifier-rules';
import { UNUSABLE_REASONS } from '../../shared/imaging/errors';
import { DROP_REASONS } from '../../shared/imaging/study';

const doc = readFileSync(path.join(__dirname, '../../docs/imaging.md'), 'utf8');

describe('docs/imaging.md', () => {
  it.each(CLASSIFIER_RULES.map((r) => r.id))('documents classifier rule %s', (id) => {
    expect(doc).toContain(`\`${id}\``);
  });
  it.each([...UNUSABLE_REASONS])('documents unusable reason %s', (reason) => {
    expect(doc).toContain(`\`${reason}\``);
  });
  it.each([...DROP_REASONS])('documents why images are left out: %s', (reason) => {
    expect(doc).toContain(`\`${reason}\``);
  });
});
