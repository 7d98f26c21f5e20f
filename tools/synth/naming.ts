// How each vendor names and types its series in the archive: SeriesDescription, ProtocolName, SequenceName and
// ImageType for every sequence, in the styles of Siemens, GE and Philips (training scanners) and of Canon,
// United Imaging (UIH) and Fujifilm/Hitachi (held-out scanners only). Pure tables; the draw picks among them.
import type { Rng } from './prng';
import type { Sequence } from './types';

export type Vendor = 'SIEMENS' | 'GE' | 'PHILIPS' | 'CANON' | 'UIH' | 'HITACHI';

export interface SeriesNames {
  desc: string;
  proto: string;
  seqName: string;
}

/** ImageType of an original magnitude image, as each vendor writes it (extra values appended). */
export function magnitudeImageType(v: Vendor, ...rest: string[]): string[] {
  switch (v) {
    case 'SIEMENS':
      return ['ORIGINAL', 'PRIMARY', 'M', 'ND', 'NORM', ...rest];
    case 'PHILIPS':
      return ['ORIGINAL', 'PRIMARY', 'M_FFE', 'M', 'FFE', ...rest];
    case 'UIH':
      return ['ORIGINAL', 'PRIMARY', 'M', 'NORM', ...rest];
    default:
      return ['ORIGINAL', 'PRIMARY', 'OTHER', ...rest];
  }
}

/** ImageType of a spin-echo magnitude series (Philips writes M_SE). */
export function spinEchoImageType(v: Vendor): string[] {
  return ['ORIGINAL', 'PRIMARY', v === 'PHILIPS' ? 'M_SE' : 'M', v === 'PHILIPS' ? 'M' : 'ND'];
}

/** Names of a T2, FLAIR, DWI, ADC, T1 or localiser series (SWI: see swiNames). */
export function seriesNames(v: Vendor, seq: Exclude<Sequence, 'SWI' | 'SWI_PHASE'>, t1kind: '2D' | '3D' | undefined, rng: Rng): SeriesNames {
  const same = (d: string, seqName: string): SeriesNames => ({ desc: d, proto: d, seqName });
  switch (v) {
    case 'SIEMENS':
      switch (seq) {
        case 'T2': return same(rng.pick(['t2_tse_tra', 't2_tse_tra_p2', 't2_tse_tra_512', 'T2 TSE TRA']), '*tse2d1_15');
        case 'FLAIR': return same(rng.pick(['t2_tirm_tra_dark-fluid', 't2_tirm_tra_dark-fluid_p2', 'T2 FLAIR TRA']), '*tir2d1_15');
        case 'DWI': return same(rng.pick(['ep2d_diff_3scan_trace_p2', 'ep2d_diff_tra_b1000', 'DWI TRA']), '*ep_b1000t');
        case 'ADC': { const d = rng.pick(['ep2d_diff_3scan_trace_p2_ADC', 'ep2d_diff_tra_b1000_ADC', 'DWI TRA_ADC']); return { desc: d, proto: d.replace(/_ADC$/, ''), seqName: '*ep_b1000t' }; }
        case 'T1': return t1kind === '3D' ? same('t1_mprage_sag_p2_iso', '*tfl3d1_16ns') : same('t1_se_sag', '*se2d1');
        case 'LOCALIZER': return { desc: rng.pick(['localizer', 'AAHead_Scout_64ch-head-coil']), proto: 'localizer', seqName: '*fl2d1' };
      }
      break;
    case 'GE': {
      const ge = (d: string, seqName: string, proto = `BRAIN/${d}`): SeriesNames => ({ desc: d, proto, seqName });
      switch (seq) {
        case 'T2': { const d = rng.pick(['Ax T2 FSE', 'AX T2 FRFSE', 'Ax T2 PROPELLER']); return ge(d, d.includes('PROP') ? 'PROPELLER' : 'FSE'); }
        case 'FLAIR': return ge(rng.pick(['Ax T2 FLAIR', 'AX FLAIR', 'Ax T2 FLAIR fs']), 'FSE-IR');
        case 'DWI': return ge(rng.pick(['Ax DWI 1000b', 'AX DWI ASSET', 'Ax DIFFUSION']), 'EPI');
        case 'ADC': return ge(rng.pick(['Apparent Diffusion Coefficient (mm2/s)', 'ADC (10^-6 mm2/s)']), 'EPI', 'BRAIN/Ax DWI 1000b');
        case 'T1': return t1kind === '3D' ? ge('Sag 3D T1 BRAVO', 'BRAVO') : ge(rng.pick(['Sag T1 FLAIR', 'SAG T1 SE']), 'SE', 'BRAIN/Sag T1');
        case 'LOCALIZER': return ge('3Plane Loc SSFSE', 'SSFSE', 'BRAIN/3Plane Loc');
      }
      break;
    }
    case 'PHILIPS':
      switch (seq) {
        case 'T2': return same(rng.pick(['T2W_TSE', 'T2W_TSE_TRA', 'AX T2W TSE']), 'TSE');
        case 'FLAIR': return same(rng.pick(['T2W_FLAIR', 'FLAIR_longTR', 'AX FLAIR']), 'IR_TSE');
        case 'DWI': return same(rng.pick(['DWI_SENSE', 'DWI_b1000', 'DWI SE']), 'DwiSE');
        case 'ADC': return { desc: rng.pick(['dADC', 'DWI_SENSE_ADC', 'ADC']), proto: 'DWI_SENSE', seqName: 'DwiSE' };
        case 'T1': return t1kind === '3D' ? same('T1W_3D_TFE', 'T1TFE') : same('T1W_SE_SAG', 'SE');
        case 'LOCALIZER': return { desc: 'Survey', proto: 'SURVEY', seqName: 'FFE' };
      }
      break;
    case 'CANON':
      switch (seq) {
        case 'T2': return { desc: rng.pick(['T2W_FSE_AX', 'T2WI_AX']), proto: 'Brain T2 AX', seqName: 'FSE2D' };
        case 'FLAIR': return { desc: rng.pick(['FLAIR_AX', 'FLAIR AX fs']), proto: 'Brain FLAIR AX', seqName: 'FLAIR2D' };
        case 'DWI': return { desc: 'DWI_AX_b1000', proto: 'Brain DWI AX', seqName: 'SE_EPI' };
        case 'ADC': return { desc: 'ADC_map', proto: 'Brain DWI AX', seqName: 'SE_EPI' };
        case 'T1': return t1kind === '3D' ? { desc: '3D_T1W_SAG', proto: 'Brain 3D T1', seqName: 'FFE3D' } : { desc: 'T1W_SE_SAG', proto: 'Brain T1 SAG', seqName: 'SE2D' };
        case 'LOCALIZER': return { desc: 'Locator', proto: 'Locator', seqName: 'FFE2D' };
      }
      break;
    case 'UIH':
      // United Imaging uMR: lower-case Siemens-like names with their own sequence family words (fse, gre_fsp)
      switch (seq) {
        case 'T2': return same(rng.pick(['t2_fse_tra', 't2_fse_tra_p2', 't2_fse_tra_512']), 'fse');
        case 'FLAIR': return same(rng.pick(['t2_flair_tra', 't2_flair_tra_fs', 'flair_tra']), 'fse_ir');
        case 'DWI': return same(rng.pick(['dwi_tra_b1000', 'epi_dwi_tra', 'dwi_b1000_tra']), 'epi_dwi');
        case 'ADC': { const d = rng.pick(['dwi_tra_b1000_ADC', 'ADC']); return { desc: d, proto: 'dwi_tra_b1000', seqName: 'epi_dwi' }; }
        case 'T1': return t1kind === '3D' ? same('t1_gre_fsp_3d_sag_iso', 'gre_fsp_3d') : same('t1_fse_sag', 'fse');
        case 'LOCALIZER': return same(rng.pick(['localizer', 'tri-plane localizer']), 'gre_fsp');
      }
      break;
    case 'HITACHI':
      // Fujifilm (formerly Hitachi) ECHELON / OASIS: "WI" suffixes, GE = gradient echo, RSSG = RF-spoiled SARGE
      switch (seq) {
        case 'T2': return same(rng.pick(['T2WI_AX', 'AX T2WI FSE', 'T2WI FSE AX']), 'FSE');
        case 'FLAIR': return same(rng.pick(['FLAIR_AX', 'AX FLAIR', 'FLAIR AX']), 'IR-FSE');
        case 'DWI': return same(rng.pick(['DWI_AX', 'DWI b1000 AX', 'AX DWI']), 'SE-EPI');
        case 'ADC': return { desc: rng.pick(['ADC', 'ADC_AX', 'ADC map']), proto: 'DWI_AX', seqName: 'SE-EPI' };
        case 'T1': return t1kind === '3D' ? same('3D T1WI RSSG SAG', 'RSSG') : same('T1WI_SAG', 'SE');
        case 'LOCALIZER': return same('Scanogram', 'GE');
      }
  }
  throw new Error(`no naming for ${v} ${seq}`);
}

/** Which image of an SWI acquisition a series holds: the T2* magnitude, the SWI-processed (phase-masked)
 *  magnitude, its minimum-intensity projection, or the phase. */
export type SwiImage = 'magnitude' | 'swi' | 'mip' | 'phase';

export interface SwiName extends SeriesNames {
  imageType: string[];
  image: SwiImage;
}

/**
 * The series an SWI or T2* acquisition leaves in the archive, as each vendor names and types them: Siemens SWI
 * stores magnitude, phase, SWI and mIP (or a subset), GE SWAN a combined magnitude (sometimes a filtered phase,
 * told apart only by its name), Philips SWIp magnitude and phase under one name (told apart by ImageType), Canon
 * FSBB, UIH SWI with its phase, Hitachi BSI; 2D T2* gradient echo is one magnitude series everywhere.
 */
export function swiNames(v: Vendor, kind: '2D' | '3D', rng: Rng): SwiName[] {
  const one = (desc: string, proto: string, seqName: string, imageType: string[], image: SwiImage = 'magnitude'): SwiName => ({ desc, proto, seqName, imageType, image });
  const M = magnitudeImageType(v);
  if (kind === '2D') {
    switch (v) {
      case 'SIEMENS': { const d = rng.pick(['t2_fl2d_tra_hemo', 'T2* HEMO TRA', 't2_fl2d_tra_p2']); return [one(d, d, '*fl2d1', M)]; }
      case 'GE': { const d = rng.pick(['AX T2* GRE', 'Ax GRE T2*', 'AX T2* HEMO']); return [one(d, `BRAIN/${d}`, 'GRE', M)]; }
      case 'PHILIPS': { const d = rng.pick(['T2*_FFE', 'T2*W_FFE_TRA', 'FFE T2* TRA']); return [one(d, d, 'FFE', M)]; }
      case 'CANON': { const d = rng.pick(['T2*W_AX', 'T2*_FE_AX']); return [one(d, `Brain ${d}`, 'FE2D', M)]; }
      case 'UIH': { const d = rng.pick(['t2*_gre_tra', 't2star_gre_tra']); return [one(d, d, 'gre', M)]; }
      case 'HITACHI': { const d = rng.pick(['T2*WI_AX', 'AX T2*WI GE']); return [one(d, d, 'GE', M)]; }
    }
  }
  switch (v) {
    case 'SIEMENS': {
      const proto = rng.pick(['t2_swi_tra_p2', 'SWI_tra_p2', 't2_swi_tra_p2_1.5mm']);
      const mag = one('Mag_Images', proto, '*swi3d1r', M);
      const pha = one('Pha_Images', proto, '*swi3d1r', ['ORIGINAL', 'PRIMARY', 'P', 'ND'], 'phase');
      const swi = one('SWI_Images', proto, '*swi3d1r', ['DERIVED', 'PRIMARY', 'SWI', 'ND', 'NORM'], 'swi');
      const mip = one('mIP_Images(SW)', proto, '*swi3d1r', ['DERIVED', 'PRIMARY', 'MNIP', 'ND', 'NORM'], 'mip');
      return rng.weighted<SwiName[]>([[[mag, pha, swi, mip], 0.4], [[swi, mip], 0.35], [[one(proto, proto, '*swi3d1r', magnitudeImageType(v, 'SWI'), 'swi')], 0.25]]);
    }
    case 'GE': {
      const d = rng.pick(['SWAN', 'Ax SWAN', 'AX SWAN 3D']);
      const mag = one(d, `BRAIN/${d}`, 'SWAN', M);
      return rng.chance(0.15) ? [mag, one(`${d} Filt_Phase`, `BRAIN/${d}`, 'SWAN', M, 'phase')] : [mag];
    }
    case 'PHILIPS': {
      const d = rng.pick(['SWIp', 'SWIp', 'SWI_3D']);
      const mag = one(d, d, 'FFE', M, 'swi');
      return d === 'SWIp' && rng.chance(0.5) ? [mag, one(d, d, 'FFE', ['ORIGINAL', 'PRIMARY', 'P_FFE', 'P', 'FFE'], 'phase')] : [mag];
    }
    case 'CANON': { const d = rng.pick(['FSBB', 'FSBB_AX', 'SWI_AX']); return [one(d, `Brain ${d}`, 'FE3D', M)]; }
    case 'UIH': {
      const d = rng.pick(['swi_tra', 'swi_gre_tra_p2']);
      const mag = one(d, d, 'gre_swi', M, 'swi');
      return rng.chance(0.5) ? [mag, one(`${d}_PHA`, d, 'gre_swi', ['ORIGINAL', 'PRIMARY', 'PHASE'], 'phase')] : [mag];
    }
    case 'HITACHI': { const d = rng.pick(['BSI_AX', 'BSI 3D AX']); return [one(d, d, 'RSSG', M, 'swi')]; }
  }
}
