import {
  ContextResult,
  decideAssociation,
  negotiateContext,
  parseAllowList,
  RejectReason,
  RejectResult,
  RejectSource,
  type AssociationPolicy,
} from './association-policy';
import { SopClass, TransferSyntax } from './dicom-uids';

const policy = (allowed: string, max = 2): AssociationPolicy => ({ calledAeTitle: 'NEUROTRIAGE', allowList: parseAllowList(allowed), maxAssociations: max });
const facts = { protocolVersion: 1, applicationContextName: '1.2.840.10008.3.1.1.1', calledAeTitle: 'NEUROTRIAGE', callingAeTitle: 'PACS', remoteAddress: '127.0.0.1', maxLengthReceived: 16384, activeAssociations: 0, shuttingDown: false };

describe('decideAssociation', () => {
  test('a Protocol Version without bit 0, or another application context, is rejected (PS3.8 9.3.2, PS3.7 A.2.1)', () => {
    expect(decideAssociation(policy('*'), { ...facts, protocolVersion: 3 })).toEqual({ accept: true });
    expect(decideAssociation(policy('*'), { ...facts, protocolVersion: 2 })).toEqual({
      accept: false,
      result: RejectResult.Permanent,
      source: RejectSource.ServiceProviderAcse,
      reason: RejectReason.ProtocolVersionNotSupported,
      label: 'protocol-version-not-supported',
    });
    expect(decideAssociation(policy('*'), { ...facts, applicationContextName: '1.2.3.4' })).toEqual({
      accept: false,
      result: RejectResult.Permanent,
      source: RejectSource.ServiceUser,
      reason: RejectReason.ApplicationContextNotSupported,
      label: 'application-context-not-supported',
    });
  });

  test('a Maximum Length Received of 1-6 (no room for one byte of a PDV) is rejected permanently; 0 (no limit) and 7 are not', () => {
    for (const maxLengthReceived of [1, 2, 5, 6]) {
      expect(decideAssociation(policy('*'), { ...facts, maxLengthReceived })).toEqual({
        accept: false,
        result: RejectResult.Permanent,
        source: RejectSource.ServiceUser,
        reason: RejectReason.NoReasonGiven,
        label: 'max-length-too-small',
      });
    }
    for (const maxLengthReceived of [0, 7, 0xffffffff]) expect(decideAssociation(policy('*'), { ...facts, maxLengthReceived })).toEqual({ accept: true });
  });

  test('an empty allow-list rejects every calling AE (the safe default)', () => {
    expect(decideAssociation(policy(''), facts)).toEqual({
      accept: false,
      result: RejectResult.Permanent,
      source: RejectSource.ServiceUser,
      reason: RejectReason.CallingAeNotRecognized,
      label: 'calling-ae-not-recognised',
    });
  });

  test('a listed calling AE is accepted, with its space padding ignored', () => {
    expect(decideAssociation(policy('PACS, MODALITY'), { ...facts, callingAeTitle: 'PACS  ' })).toEqual({ accept: true });
    expect(decideAssociation(policy('*'), { ...facts, callingAeTitle: 'ANYONE' })).toEqual({ accept: true });
  });

  test('AE@address pins the peer address, IPv4-mapped IPv6 included', () => {
    const pinned = policy('PACS@10.0.0.5');
    expect(decideAssociation(pinned, { ...facts, remoteAddress: '::ffff:10.0.0.5' })).toEqual({ accept: true });
    expect(decideAssociation(pinned, { ...facts, remoteAddress: '10.0.0.6' })).toMatchObject({ accept: false, label: 'calling-ae-not-recognised' });
  });

  test('with DICOM_TLS_AE_FROM_CERT a TLS peer must call itself by its certificate\'s common name; plain TCP is unaffected', () => {
    const bound = { ...policy('PACS, MODALITY'), aeFromCertificate: true };
    expect(decideAssociation(bound, { ...facts, certificateCommonName: 'PACS' })).toEqual({ accept: true });
    const claimed = decideAssociation(bound, { ...facts, callingAeTitle: 'PACS', certificateCommonName: 'MODALITY' });
    expect(claimed).toMatchObject({ accept: false, reason: RejectReason.CallingAeNotRecognized, label: 'calling-ae-not-in-certificate' });
    expect(decideAssociation(bound, { ...facts, certificateCommonName: null })).toMatchObject({ accept: false, label: 'calling-ae-not-in-certificate' });
    expect(decideAssociation(bound, facts)).toEqual({ accept: true });
    expect(decideAssociation(policy('PACS'), { ...facts, certificateCommonName: 'MODALITY' })).toEqual({ accept: true });
  });

  test('a wrong called AE is "called AE not recognised", checked first', () => {
    expect(decideAssociation(policy('*'), { ...facts, calledAeTitle: 'OTHER' })).toMatchObject({
      accept: false,
      reason: RejectReason.CalledAeNotRecognized,
      source: RejectSource.ServiceUser,
    });
  });

  test('beyond the limit, and while stopping, the rejection is transient from the presentation service provider', () => {
    expect(decideAssociation(policy('PACS', 2), { ...facts, activeAssociations: 2 })).toEqual({
      accept: false,
      result: RejectResult.Transient,
      source: RejectSource.ServiceProviderPresentation,
      reason: RejectReason.LocalLimitExceeded,
      label: 'local-limit-exceeded',
    });
    expect(decideAssociation(policy('PACS'), { ...facts, shuttingDown: true })).toMatchObject({
      accept: false,
      result: RejectResult.Transient,
      reason: RejectReason.TemporaryCongestion,
    });
  });

  test('invalid allow-list entries fail at start with the entry named', () => {
    expect(() => parseAllowList('PACS,THIS_TITLE_IS_TOO_LONG')).toThrow(/THIS_TITLE_IS_TOO_LONG/);
    expect(() => parseAllowList('PACS@')).toThrow(/empty address/);
  });
});

describe('negotiateContext', () => {
  test('MR storage takes the first proposed syntax we support, compressed ones included', () => {
    expect(negotiateContext(SopClass.MRImageStorage, ['1.2.840.10008.1.2.2', TransferSyntax.JPEGLSLossless, TransferSyntax.ExplicitVRLittleEndian], 'reject')).toEqual({
      result: ContextResult.Accept,
      transferSyntaxUID: TransferSyntax.JPEGLSLossless,
      use: 'store',
    });
    expect(negotiateContext(SopClass.EnhancedMRImageStorage, [TransferSyntax.JPEG2000Lossless], 'reject')).toMatchObject({ use: 'store' });
  });

  test('lossy and big endian syntaxes are refused', () => {
    expect(negotiateContext(SopClass.MRImageStorage, ['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.91', '1.2.840.10008.1.2.2'], 'reject')).toEqual({
      result: ContextResult.RejectTransferSyntaxesNotSupported,
    });
  });

  test('other storage classes follow DICOM_OTHER_STORAGE; non-storage classes are never accepted', () => {
    const ct = '1.2.840.10008.5.1.4.1.1.2';
    expect(negotiateContext(ct, [TransferSyntax.ExplicitVRLittleEndian], 'reject')).toEqual({ result: ContextResult.RejectAbstractSyntaxNotSupported });
    expect(negotiateContext(ct, [TransferSyntax.ExplicitVRLittleEndian], 'accept-and-ignore')).toMatchObject({ use: 'ignore' });
    // An ignored class takes whatever syntax comes first, lossy or big endian: its bytes are never read.
    expect(negotiateContext(ct, ['1.2.840.10008.1.2.4.50', TransferSyntax.ExplicitVRLittleEndian], 'accept-and-ignore')).toEqual({
      result: ContextResult.Accept,
      transferSyntaxUID: '1.2.840.10008.1.2.4.50',
      use: 'ignore',
    });
    const studyRootFind = '1.2.840.10008.5.1.4.1.2.2.1';
    expect(negotiateContext(studyRootFind, [TransferSyntax.ExplicitVRLittleEndian], 'accept-and-ignore')).toEqual({ result: ContextResult.RejectAbstractSyntaxNotSupported });
  });

  test("a vendor's private SOP class (outside the DICOM root) is other storage too; a malformed UID is not", () => {
    const siemensCsaNonImage = '1.3.12.2.1107.5.9.1';
    expect(negotiateContext(siemensCsaNonImage, [TransferSyntax.ExplicitVRLittleEndian], 'accept-and-ignore')).toMatchObject({ result: ContextResult.Accept, use: 'ignore' });
    expect(negotiateContext(siemensCsaNonImage, [TransferSyntax.ExplicitVRLittleEndian], 'reject')).toEqual({ result: ContextResult.RejectAbstractSyntaxNotSupported });
    expect(negotiateContext('not-a-uid', [TransferSyntax.ExplicitVRLittleEndian], 'accept-and-ignore')).toEqual({ result: ContextResult.RejectAbstractSyntaxNotSupported });
    expect(negotiateContext('1.2.840.10008.9.9', [TransferSyntax.ExplicitVRLittleEndian], 'accept-and-ignore')).toEqual({ result: ContextResult.RejectAbstractSyntaxNotSupported });
  });

  test('verification takes the uncompressed syntaxes only', () => {
    expect(negotiateContext(SopClass.Verification, [TransferSyntax.ImplicitVRLittleEndian], 'reject')).toMatchObject({ use: 'verification' });
    expect(negotiateContext(SopClass.Verification, [TransferSyntax.JPEGLosslessSV1], 'reject')).toEqual({ result: ContextResult.RejectTransferSyntaxesNotSupported });
  });
});
