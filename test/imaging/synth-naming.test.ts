// The sequence classifier against everything the synthetic cohort writes: every series name, ImageType and
// timing of both scanner sets (drawn from many study plans, no images needed) is classified as its ground truth,
// and an SWI acquisition's phase image never as SWI. Then end to end on generated DICOM: a study with SWI gives an
// SWI volume from one of its SWI series, a study without one still gives its other volumes.
import { classifySeries, unusableReason, type ClassifierInput } from '../../shared/imaging/classifier';
import type { SeriesSequence } from '../../shared/imaging/classifier-rules';
import { DEFAULT_PREPROCESSING } from '../../shared/imaging/spec';
import { loadStudyVolumes } from '../../shared/imaging/study';
import { createStudyContext, generateStudy, planStudy } from '../../tools/synth/study';
import type { ScannerSet, Sequence } from '../../tools/synth/types';

const TRUTH: Record<Sequence, SeriesSequence> = {
  T1: 'T1', T2: 'T2', FLAIR: 'FLAIR', DWI: 'DWI', ADC: 'ADC', SWI: 'SWI', SWI_PHASE: 'OTHER', LOCALIZER: 'LOCALISER',
};

describe('the classifier on every synthetic series name', () => {
  it.each<ScannerSet>(['train', 'heldout'])('scanner set %s', (scannerSet) => {
    const seen = new Map<string, number>();
    const wrong: string[] = [];
    for (let i = 0; i < 600; i++) {
      const { protocol } = planStudy(3, i, { scannerSet });
      for (const sp of protocol.series) {
        const x: ClassifierInput = {
          SeriesDescription: sp.seriesDescription,
          ProtocolName: sp.protocolName,
          SequenceName: sp.sequenceName,
          ScanningSequence: sp.scanningSequence,
          SequenceVariant: sp.sequenceVariant,
          ImageType: sp.imageType,
          EchoTime: sp.te,
          RepetitionTime: sp.tr,
          InversionTime: sp.ti ?? undefined,
        };
        const parts: Array<[ClassifierInput, SeriesSequence]> = sp.sequence === 'DWI'
          ? [[{ ...x, DiffusionBValue: 1000 }, 'DWI'], [{ ...x, DiffusionBValue: 0 }, 'DWI_B0']]
          : [[x, TRUTH[sp.sequence]]];
        for (const [input, want] of parts) {
          const got = classifySeries(input);
          const key = `${protocol.scanner.vendor} ${sp.sequence} "${sp.seriesDescription}" [${sp.imageType.join('\\')}]`;
          seen.set(key, (seen.get(key) ?? 0) + 1);
          if (got.sequence !== want) wrong.push(`${key}: ${got.sequence} by ${got.rule}, want ${want}`);
          if (sp.sequence === 'SWI_PHASE') expect(unusableReason({ Modality: 'MR', isImageStorage: true, hasPixelData: true }, got)).toBe('unsupported-sequence');
        }
      }
    }
    expect([...new Set(wrong)]).toEqual([]);
    // the draw covered the naming: SWI and its phase among many distinct names
    expect([...seen.keys()].filter((k) => k.includes(' SWI ')).length).toBeGreaterThan(8);
    expect([...seen.keys()].some((k) => k.includes(' SWI_PHASE '))).toBe(true);
  });
});

describe('SWI volumes from generated DICOM', () => {
  const ctx = createStudyContext();
  const find = (pred: (kind: '2D' | '3D' | undefined, phase: boolean) => boolean): number => {
    for (let i = 0; i < 500; i++) {
      const p = planStudy(5, i, { fast: true }).protocol;
      if (pred(p.swi?.kind, p.series.some((s) => s.sequence === 'SWI_PHASE'))) return i;
    }
    throw new Error('no such study in 500 plans');
  };

  it.each([
    ['a 3D SWI with its phase image', find((k, phase) => k === '3D' && phase)],
    ['a 2D T2* gradient echo', find((k) => k === '2D')],
  ])('%s gives an SWI volume from an SWI series, never the phase', async (_name, index) => {
    const s = generateStudy(5, index, { fast: true }, ctx);
    const res = await loadStudyVolumes(s.files.map((f) => ({ name: f.path, data: f.data })), DEFAULT_PREPROCESSING);
    expect(res.volumes.SWI).toBeInstanceOf(Float32Array);
    const swiSeries = new Set(s.labels.series.filter((x) => x.sequence === 'SWI').map((x) => x.SeriesInstanceUID));
    expect(swiSeries.has(res.volumeInfo.SWI!.SeriesInstanceUID)).toBe(true);
    for (const x of s.labels.series.filter((l) => l.sequence === 'SWI_PHASE')) {
      const r = res.series.find((y) => y.SeriesInstanceUID === x.SeriesInstanceUID)!;
      expect(r).toMatchObject({ sequence: 'OTHER', used: false, reason: 'unsupported-sequence' });
    }
  });

  it('a study without SWI still gives its other volumes and lists SWI as missing', async () => {
    const s = generateStudy(5, find((k) => k === undefined), { fast: true }, ctx);
    const res = await loadStudyVolumes(s.files.map((f) => ({ name: f.path, data: f.data })), DEFAULT_PREPROCESSING);
    expect(res.missing).toContain('SWI');
    expect(res.volumes.DWI ?? res.volumes.T2 ?? res.volumes.FLAIR).toBeInstanceOf(Float32Array);
  });
});
