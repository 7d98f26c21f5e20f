// The synth command line's --preview [K]: an optional count, whatever follows it (README runs it before --send).
import { withPreviewDefault } from './cli';

test('--preview without a count gets 8, before another option or at the end; a count is kept', () => {
  expect(withPreviewDefault(['--n', '8', '--preview', '--send', 'NEUROTRIAGE@127.0.0.1:11112'])).toEqual(['--n', '8', '--preview=8', '--send', 'NEUROTRIAGE@127.0.0.1:11112']);
  expect(withPreviewDefault(['--out', 'x', '--preview'])).toEqual(['--out', 'x', '--preview=8']);
  expect(withPreviewDefault(['--preview', '12', '--fast'])).toEqual(['--preview', '12', '--fast']);
  expect(withPreviewDefault(['--preview=3'])).toEqual(['--preview=3']);
});
