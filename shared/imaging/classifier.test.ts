// The sequence classifier against real-world vendor naming (Siemens, GE, Philips) and against physics alone.
import { classifySeries, examLevelProtocols, unusableReason, type ClassifierInput } from './classifier';
import type { SeriesSequence } from './classifier-rules';

const DIFF_TRACEW = ['DERIVED', 'PRIMARY', 'DIFFUSION', 'TRACEW'];
const DIFF_ADC = ['DERIVED', 'PRIMARY', 'DIFFUSION', 'ADC'];

type Case = [string, ClassifierInput, SeriesSequence];
const d = (SeriesDescription: string, more: ClassifierInput = {}): ClassifierInput => ({ SeriesDescription, ...more });

const CASES: Case[] = [
  // Siemens
  ['Siemens T2 TSE', d('t2_tse_tra'), 'T2'],
  ['Siemens T2 TSE 320', d('t2_tse_tra_320_p2'), 'T2'],
  ['Siemens T2 BLADE', d('t2_tse_tra_blade_p2'), 'T2'],
  ['Siemens FLAIR (tirm dark-fluid)', d('tirm_tra_dark-fluid'), 'FLAIR'],
  ['Siemens FLAIR (t2_tirm dark-fluid)', d('t2_tirm_tra_dark-fluid_p2'), 'FLAIR'],
  ['Siemens FLAIR named t2_tirm_tra (TI 2500)', d('t2_tirm_tra', { ScanningSequence: ['SE', 'IR'], InversionTime: 2500 }), 'FLAIR'],
  ['Siemens TIRM with a short TI stays STIR', d('t2_tirm_tra', { ScanningSequence: ['SE', 'IR'], InversionTime: 150 }), 'OTHER'],
  ['Siemens 3D FLAIR SPACE', d('t2_space_dark-fluid_sag_p2_iso'), 'FLAIR'],
  ['Siemens TRACEW b1000', d('ep2d_diff_3scan_trace_p2_TRACEW', { ImageType: DIFF_TRACEW, DiffusionBValue: 1000 }), 'DWI'],
  ['Siemens TRACEW b0', d('ep2d_diff_3scan_trace_p2_TRACEW', { ImageType: DIFF_TRACEW, DiffusionBValue: 0 }), 'DWI_B0'],
  ['Siemens ADC by ImageType', d('ep2d_diff_3scan_trace_p2_ADC', { ImageType: DIFF_ADC }), 'ADC'],
  ['Siemens ADC by name only', d('ep2d_diff_3scan_trace_p2_ADC'), 'ADC'],
  ['Siemens RESOLVE', d('resolve_4scan_trace_tra_p2_192_TRACEW'), 'DWI'],
  ['Siemens DTI (directions, no trace)', d('ep2d_diff_mddw_20_p2'), 'OTHER'],
  ['Siemens FA map', d('ep2d_diff_mddw_20_p2_FA', { ImageType: ['DERIVED', 'PRIMARY', 'DIFFUSION', 'FA'] }), 'OTHER'],
  ['Siemens MPRAGE', d('t1_mprage_sag_p2_iso'), 'T1'],
  ['Siemens T1 SE', d('t1_se_tra'), 'T1'],
  ['Siemens T1 FLASH 2D', d('t1_fl2d_tra'), 'T1'],
  ['Siemens T2* hemo', d('t2_fl2d_tra_hemo'), 'SWI'],
  ['Siemens T2* fl2d without hemo', d('t2_fl2d_tra'), 'SWI'],
  ['Siemens SWI magnitude', d('SWI_Images'), 'SWI'],
  ['Siemens SWI minIP', d('mIP_Images(SW)'), 'SWI'],
  ['Siemens SWI phase by name', d('Pha_Images'), 'OTHER'],
  ['Siemens SWI phase by ImageType', d('Pha_Images', { ImageType: ['ORIGINAL', 'PRIMARY', 'P', 'ND'], ScanningSequence: ['GR'], EchoTime: 20 }), 'OTHER'],
  ['Siemens SWI magnitude (Mag_Images)', d('Mag_Images', { ImageType: ['ORIGINAL', 'PRIMARY', 'M', 'ND', 'NORM'] }), 'SWI'],
  ['Siemens SWI processed by ImageType', d('SWI_Images', { ImageType: ['DERIVED', 'PRIMARY', 'SWI', 'ND', 'NORM'] }), 'SWI'],
  ['Siemens SWI mIP by ImageType', d('mIP_Images(SW)', { ImageType: ['DERIVED', 'PRIMARY', 'MNIP', 'ND', 'NORM'] }), 'SWI'],
  ['Siemens SWI protocol name as description', d('t2_swi_tra_p2'), 'SWI'],
  ['Siemens T2* hemo (spaced)', d('T2* HEMO TRA'), 'SWI'],
  ['Siemens T2* fl2d p2', d('t2_fl2d_tra_p2'), 'SWI'],
  ['Siemens SWI named oddly, ImageType SWI', d('Series 12', { ImageType: ['DERIVED', 'PRIMARY', 'SWI', 'ND', 'NORM'] }), 'SWI'],
  ['Siemens scout', d('AAHead_Scout_32ch-head-coil'), 'LOCALISER'],
  ['Siemens localizer', d('localizer'), 'LOCALISER'],
  ['Siemens perfusion', d('ep2d_perf_p2'), 'OTHER'],
  ['Siemens TOF', d('tof_fl3d_tra_p2'), 'OTHER'],
  // GE
  ['GE T2 FRFSE', d('Ax T2 FRFSE'), 'T2'],
  ['GE T2 PROPELLER', d('Ax T2 PROPELLER'), 'T2'],
  ['GE FLAIR', d('AX FLAIR'), 'FLAIR'],
  ['GE T2 FLAIR', d('Ax T2 FLAIR'), 'FLAIR'],
  ['GE CUBE FLAIR', d('Sag CUBE FLAIR'), 'FLAIR'],
  ['GE DWI', d('DWI Asset', { DiffusionBValue: 1000 }), 'DWI'],
  ['GE ADC', d('ADC (10^-6 mm²/s)'), 'ADC'],
  ['GE ADC long name', d('Apparent Diffusion Coefficient (mm²/s)'), 'ADC'],
  // GE writes the exponential ADC (exp(-b ADC): inverted contrast) beside the ADC; it must never become the ADC
  ['GE exponential ADC', d('Exponential Apparent Diffusion Coefficient'), 'OTHER'],
  ['GE exponential ADC with the ADC ImageType', d('Exponential Apparent Diffusion Coefficient', { ImageType: DIFF_ADC }), 'OTHER'],
  ['GE T1 FLAIR is T1', d('Sag T1 FLAIR'), 'T1'],
  ['GE BRAVO', d('Sag T1 BRAVO'), 'T1'],
  ['GE FSPGR', d('Ax FSPGR 3D'), 'T1'],
  ['GE SWAN', d('Ax SWAN'), 'SWI'],
  ['GE SWAN bare', d('SWAN'), 'SWI'],
  ['GE SWAN 3D', d('AX SWAN 3D'), 'SWI'],
  ['GE SWAN filtered phase (ImageType OTHER)', d('Ax SWAN Filt_Phase', { ImageType: ['ORIGINAL', 'PRIMARY', 'OTHER'], ScanningSequence: ['GR'], EchoTime: 25 }), 'OTHER'],
  ['GE T2* hemo', d('AX T2* HEMO'), 'SWI'],
  ['GE GRE T2*', d('Ax GRE T2*'), 'SWI'],
  ['GE T2* GRE', d('Ax T2* GRE'), 'SWI'],
  ['GE GRE (long TE)', d('AX GRE', { EchoTime: 20 }), 'SWI'],
  ['GE 3-plane loc', d('3-Plane Loc'), 'LOCALISER'],
  ['GE calibration', d('ASSET calibration'), 'OTHER'],
  ['GE T1 SE post-contrast', d('AX T1 SE +C'), 'T1'],
  // Philips
  ['Philips T2W TSE', d('T2W_TSE'), 'T2'],
  ['Philips FLAIR longTR', d('FLAIR_longTR'), 'FLAIR'],
  ['Philips T2W FLAIR', d('T2W_FLAIR'), 'FLAIR'],
  ['Philips VISTA FLAIR', d('VISTA_FLAIR'), 'FLAIR'],
  ['Philips DWI', d('DWI_SENSE', { DiffusionBValue: 1000 }), 'DWI'],
  ['Philips DWI b0', d('DWI_SENSE', { DiffusionBValue: 0 }), 'DWI_B0'],
  ['Philips dADC', d('dADC'), 'ADC'],
  ['Philips 3D T1 TFE', d('3D_T1_TFE'), 'T1'],
  ['Philips sT1W 3D TFE', d('sT1W_3D_TFE'), 'T1'],
  ['Philips T1W SE', d('T1W_SE'), 'T1'],
  ['Philips T1W FFE', d('T1W_FFE'), 'T1'],
  ['Philips SWIp', d('SWIp'), 'SWI'],
  ['Philips T2* FFE', d('T2*_FFE'), 'SWI'],
  ['Philips SWIp magnitude', d('SWIp', { ImageType: ['ORIGINAL', 'PRIMARY', 'M_FFE', 'M', 'FFE'] }), 'SWI'],
  ['Philips SWIp phase (same name, ImageType P)', d('SWIp', { ImageType: ['ORIGINAL', 'PRIMARY', 'P_FFE', 'P', 'FFE'] }), 'OTHER'],
  ['Philips SWI 3D', d('SWI_3D'), 'SWI'],
  ['Philips T2*W FFE TRA', d('T2*W_FFE_TRA'), 'SWI'],
  ['Philips FFE T2* TRA', d('FFE T2* TRA'), 'SWI'],
  ['Philips Survey', d('Survey'), 'LOCALISER'],
  ['Philips SmartBrain', d('SmartBrain'), 'LOCALISER'],
  ['Philips SENSE refscan', d('SENSE-refscan'), 'OTHER'],
  ['Philips PD TSE', d('PD_TSE'), 'OTHER'],
  // Canon (Toshiba)
  ['Canon T2 FSE', d('T2W_FSE_AX'), 'T2'],
  ['Canon FLAIR', d('FLAIR_AX'), 'FLAIR'],
  ['Canon ADC map', d('ADC_map'), 'ADC'],
  ['Canon DWI b1000', d('DWI_AX_b1000', { DiffusionBValue: 1000 }), 'DWI'],
  ['Canon 3D T1', d('3D_T1W_SAG'), 'T1'],
  ['Canon T2* FFE', d('T2*W_FFE_AX'), 'SWI'],
  ['Canon T2*W AX', d('T2*W_AX'), 'SWI'],
  ['Canon T2* FE AX', d('T2*_FE_AX'), 'SWI'],
  ['Canon FSBB', d('FSBB'), 'SWI'],
  ['Canon FSBB AX', d('FSBB_AX'), 'SWI'],
  ['Canon SWI AX', d('SWI_AX'), 'SWI'],
  ['Canon T2WI', d('T2WI_AX'), 'T2'],
  ['Canon FLAIR fs', d('FLAIR AX fs'), 'FLAIR'],
  ['Canon Locator', d('Locator'), 'LOCALISER'],
  // United Imaging (uMR)
  ['UIH T2 FSE', d('t2_fse_tra'), 'T2'],
  ['UIH FLAIR', d('t2_flair_tra_fs'), 'FLAIR'],
  ['UIH DWI', d('dwi_tra_b1000', { DiffusionBValue: 1000 }), 'DWI'],
  ['UIH EPI DWI b0', d('epi_dwi_tra', { DiffusionBValue: 0 }), 'DWI_B0'],
  ['UIH ADC', d('dwi_tra_b1000_ADC'), 'ADC'],
  ['UIH 3D T1 GRE FSP', d('t1_gre_fsp_3d_sag_iso'), 'T1'],
  ['UIH SWI', d('swi_tra'), 'SWI'],
  ['UIH SWI phase', d('swi_tra_PHA', { ImageType: ['ORIGINAL', 'PRIMARY', 'PHASE'] }), 'OTHER'],
  ['UIH T2* GRE', d('t2*_gre_tra'), 'SWI'],
  ['UIH T2star GRE', d('t2star_gre_tra'), 'SWI'],
  // Fujifilm / Hitachi
  ['Hitachi T2WI', d('T2WI_AX'), 'T2'],
  ['Hitachi T2WI FSE', d('AX T2WI FSE'), 'T2'],
  ['Hitachi FLAIR', d('FLAIR_AX'), 'FLAIR'],
  ['Hitachi DWI', d('DWI b1000 AX', { DiffusionBValue: 1000 }), 'DWI'],
  ['Hitachi ADC map', d('ADC map'), 'ADC'],
  ['Hitachi T1WI', d('T1WI_SAG'), 'T1'],
  ['Hitachi 3D T1 RSSG', d('3D T1WI RSSG SAG'), 'T1'],
  ['Hitachi BSI', d('BSI_AX'), 'SWI'],
  ['Hitachi T2*WI', d('T2*WI_AX'), 'SWI'],
  ['Hitachi T2*WI GE', d('AX T2*WI GE'), 'SWI'],
  ['Hitachi Scanogram', d('Scanogram'), 'LOCALISER'],
  // Names that say nothing: ProtocolName, then physics
  ['Protocol name when the description says nothing', { SeriesDescription: 'Series 5', ProtocolName: 't2_tse_tra' }, 'T2'],
  ['Physics: long-TI IR is FLAIR', { ScanningSequence: ['SE', 'IR'], RepetitionTime: 9000, EchoTime: 90, InversionTime: 2500 }, 'FLAIR'],
  ['Physics: GR IR TI 900 is T1 (MPRAGE)', { ScanningSequence: ['GR', 'IR'], RepetitionTime: 2000, EchoTime: 3, InversionTime: 900 }, 'T1'],
  ['Physics: short TR/TE SE is T1', { ScanningSequence: ['SE'], RepetitionTime: 500, EchoTime: 12 }, 'T1'],
  ['Physics: long TR/TE SE is T2', { ScanningSequence: ['SE'], RepetitionTime: 5000, EchoTime: 100 }, 'T2'],
  ['Physics: long TR short TE SE is PD', { ScanningSequence: ['SE'], RepetitionTime: 3000, EchoTime: 15 }, 'OTHER'],
  ['Physics: long-TE GRE is T2*/SWI', { ScanningSequence: ['GR'], RepetitionTime: 30, EchoTime: 20 }, 'SWI'],
  ['Physics: long-TE GRE phase is not SWI', { ScanningSequence: ['GR'], RepetitionTime: 30, EchoTime: 20, ImageType: ['ORIGINAL', 'PRIMARY', 'P', 'ND'] }, 'OTHER'],
  ['A gradient-echo localiser is not SWI', d('localizer', { ScanningSequence: ['GR'], RepetitionTime: 8, EchoTime: 20, ImageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'] }), 'LOCALISER'],
  ['Physics: short-TE GRE is T1', { ScanningSequence: ['GR'], RepetitionTime: 8, EchoTime: 3 }, 'T1'],
  ['Physics: b=1000 is DWI', { ScanningSequence: ['EP'], DiffusionBValue: 1000 }, 'DWI'],
  ['Physics: EPI without b is not DWI', { ScanningSequence: ['EP'], RepetitionTime: 1500, EchoTime: 30 }, 'OTHER'],
  ['Nothing at all', {}, 'OTHER'],
  ['Enhanced MR acquisition contrast', { AcquisitionContrast: 'FLUID_ATTENUATED' }, 'FLAIR'],
  ['ImageType LOCALIZER wins over the name', d('t2_tse_tra', { ImageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'] }), 'LOCALISER'],
];

describe('classifySeries', () => {
  it('has a table of at least 40 real-world cases', () => expect(CASES.length).toBeGreaterThanOrEqual(40));
  it.each(CASES)('%s', (_name, input, expected) => {
    expect(classifySeries(input).sequence).toBe(expected);
  });

  it.each([
    ['AX T1 SE +C', true],
    ['t1_mprage_tra_p2_iso_post', true],
    ['T1 C AX', true],
    ['Sag T1 BRAVO', false],
    ['T1W_3D_TFE_GD', true],
    ['t2_tse_tra', false],
  ])('contrast enhancement from the name: %s -> %s', (desc, expected) => {
    expect(classifySeries({ SeriesDescription: desc }).contrastEnhanced).toBe(expected);
  });

  it('ContrastBolusAgent marks a series post-contrast', () => {
    expect(classifySeries({ SeriesDescription: 'Ax T1', ContrastBolusAgent: 'Gadovist' }).contrastEnhanced).toBe(true);
  });

  it('names the rule that decided', () => {
    expect(classifySeries(d('ep2d_diff_3scan_trace_p2_ADC', { ImageType: DIFF_ADC })).rule).toBe('it-adc');
    expect(classifySeries(d('Sag T1 FLAIR')).rule).toBe('txt-t1-flair');
    expect(classifySeries({}).rule).toBe('fallback');
  });
});

describe('unusableReason', () => {
  const ok = { Modality: 'MR', isImageStorage: true, hasPixelData: true, SamplesPerPixel: 1 };
  const t2 = classifySeries(d('t2_tse_tra'));
  it.each([
    ['CT', { ...ok, Modality: 'CT' }, 'not-mr'],
    ['structured report', { ...ok, isImageStorage: false }, 'not-image'],
    ['no pixel data', { ...ok, hasPixelData: false }, 'not-image'],
    ['colour', { ...ok, SamplesPerPixel: 3 }, 'colour'],
    ['PALETTE COLOR with one sample', { ...ok, PhotometricInterpretation: 'PALETTE COLOR' }, 'colour'],
    ['BodyPartExamined CSPINE', { ...ok, BodyPartExamined: 'CSPINE' }, 'not-head'],
    ['BodyPartExamined L-SPINE', { ...ok, BodyPartExamined: 'L-SPINE' }, 'not-head'],
    ['description c-spine', { ...ok, SeriesDescription: 't2_tse_sag_C-spine' }, 'not-head'],
    ['description lumbar', { ...ok, SeriesDescription: 'Sag T2 FRFSE Lumbar' }, 'not-head'],
  ] as const)('%s -> %s', (_n, input, reason) => {
    expect(unusableReason(input, t2)).toBe(reason);
  });
  it.each(['MONOCHROME1', 'MONOCHROME2', 'MONOCHROME2 '])('%p is grey levels', (pi) => {
    expect(unusableReason({ ...ok, PhotometricInterpretation: pi }, t2)).toBeUndefined();
  });
  it.each(['HEAD', 'BRAIN', 'HEADNECK', 'SKULL', ''])('BodyPartExamined %p is a head', (part) => {
    expect(unusableReason({ ...ok, BodyPartExamined: part }, t2)).toBeUndefined();
  });
  it('localisers and sequences without an encoder are unusable', () => {
    expect(unusableReason(ok, classifySeries(d('3-Plane Loc')))).toBe('localiser');
    expect(unusableReason(ok, classifySeries(d('PD_TSE')))).toBe('unsupported-sequence');
    expect(unusableReason(ok, classifySeries(d('Pha_Images')))).toBe('unsupported-sequence');
  });
  it('an SWI series is usable (bundles may have an SWI encoder)', () => {
    expect(unusableReason(ok, classifySeries(d('Ax SWAN')))).toBeUndefined();
  });
});

describe('examLevelProtocols', () => {
  it('a ProtocolName on series of different acquisitions names the exam (GE), not a series', () => {
    const ge = [
      { ProtocolName: 'BRAIN STROKE/DWI', ScanningSequence: ['SE'], RepetitionTime: 4000, EchoTime: 100 },
      { ProtocolName: 'BRAIN STROKE/DWI', ScanningSequence: ['EP'], RepetitionTime: 6000, EchoTime: 80 },
      { ProtocolName: 'BRAIN STROKE/DWI', ScanningSequence: ['GR'], RepetitionTime: 600, EchoTime: 15 },
    ];
    expect([...examLevelProtocols(ge)]).toEqual(['brain stroke dwi']);
  });
  it("Siemens' per-series protocols are kept, including one shared by the TRACEW and ADC of one acquisition", () => {
    const siemens = [
      { ProtocolName: 't2_tse_tra_p2', ScanningSequence: ['SE'], RepetitionTime: 4000, EchoTime: 100 },
      { ProtocolName: 'ep2d_diff_3scan_trace_p2', ScanningSequence: ['EP'], RepetitionTime: 6000, EchoTime: 80 },
      { ProtocolName: 'ep2d_diff_3scan_trace_p2', ScanningSequence: ['EP'], RepetitionTime: 6000, EchoTime: 80 },
    ];
    expect(examLevelProtocols(siemens).size).toBe(0);
  });
});
