import { DicomParseError, UnusableSeriesError } from '../../shared/imaging/errors';
import { ModelInputError } from '../../shared/models/errors';
import { asPermanent, PermanentStudyError, RetryableStudyError, rebuildError, serializeError } from './errors';

describe('error classification', () => {
  it('treats imaging and model input errors as permanent, with the imaging reason', () => {
    const unsupported = asPermanent(new UnusableSeriesError('localiser', 'scout images only'));
    expect(unsupported).toMatchObject({ reason: 'localiser', outcome: 'unsupported' });
    const corrupt = asPermanent(new DicomParseError('store/1.2/3.4/5.6.dcm', 'truncated'));
    expect(corrupt).toMatchObject({ reason: 'corrupt', outcome: 'failed' });
    expect(asPermanent(new ModelInputError('volume has 12 voxels'))).toMatchObject({ outcome: 'failed' });
  });

  it('retries anything not known to be permanent', () => {
    expect(asPermanent(new Error('ECONNRESET'))).toBeNull();
    expect(asPermanent(new RetryableStudyError('busy'))).toBeNull();
    expect(asPermanent('a string')).toBeNull();
  });

  it('keeps a permanent error permanent across the worker-thread boundary', () => {
    for (const err of [new UnusableSeriesError('not-mr', 'CT'), new PermanentStudyError('nothing', 'no-scorable-sequence', 'unsupported')]) {
      const rebuilt = rebuildError(structuredClone(serializeError(err)));
      expect(asPermanent(rebuilt)).toMatchObject({ reason: asPermanent(err)!.reason, outcome: asPermanent(err)!.outcome });
    }
    expect(asPermanent(rebuildError(serializeError(new Error('EMFILE'))))).toBeNull();
  });
});
