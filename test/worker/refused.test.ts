// Instances refused at intake reach the result (docs/worker.md "Instances refused at intake"), with every part
// real: storescu (DCMTK) sends a synthetic study to the listener with every T2 instance damaged so that the
// listener refuses it (A900: Columns no longer matches the pixel data) and two FLAIR instances damaged the same
// way; the worker (initStudyWorker, BullMQ, ONNX Runtime with the fixture bundle) scores the rest. The result must
// list the T2 series as refused whole and the FLAIR series with its refused images, and count those against the
// confidence; no patient identifier goes anywhere.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expectedSequences } from '../../shared/model-manifest';
import { readRefusals } from '../../shared/refusals';
import { resultKeys, type StudyResult } from '../../shared/results';
import { keys } from '../../shared/studies';
import { confidence } from '../../services/worker/scoring';
import { runTool, storescu } from '../helpers/dcmtk';
import { CALLED_AE, CALLING_AE } from '../listener/harness';
import { waitFor } from './helpers';
import { inlineJobDeps, listenerBeside, runWorker, workerParts } from './parts';
import { synthStudy } from './studies';

describe('instances refused at C-STORE (listener + worker, real parts)', () => {
  const parts = workerParts('refused');
  const study = synthStudy(7717, 3, { fast: true });
  const listener = listenerBeside(parts);
  let filesDir: string;

  beforeAll(() => {
    filesDir = path.join(parts.dataDir, 'outgoing');
  });

  it('a series refused whole is listed with its reason and status; a series partly refused lists the images; both are counted', async () => {
    const seriesOf = (sequence: string) => study.labels.series.filter((s) => s.sequence === sequence).map((s) => s.SeriesInstanceUID);
    const [t2] = seriesOf('T2');
    const [flair] = seriesOf('FLAIR');
    expect(t2 && flair).toBeTruthy();
    mkdirSync(filesDir, { recursive: true });
    const files = study.files.map((f) => {
      const file = path.join(filesDir, `${f.SOPInstanceUID}.dcm`);
      writeFileSync(file, f.data);
      return { ...f, file };
    });
    // Every T2 instance and two FLAIR instances: Columns 1 over a 64-column image, refused with A900.
    const damaged = [...files.filter((f) => f.SeriesInstanceUID === t2), ...files.filter((f) => f.SeriesInstanceUID === flair).slice(0, 2)];
    const t2Count = damaged.length - 2;
    for (const f of damaged) {
      const r = await runTool('dcmodify', ['-nb', '-m', 'Columns=1', f.file]);
      expect(r.code).toBe(0);
    }
    // The damaged ones first: the study's job waits for the quiet period after the last stored instance.
    const order = [...damaged, ...files.filter((f) => !damaged.includes(f))];

    const uid = study.StudyInstanceUID;
    const deps = inlineJobDeps(parts);
    await runWorker(deps, async () => {
      const sent = await storescu({ port: listener.port, callingAe: CALLING_AE, calledAe: CALLED_AE }, order.map((f) => f.file), ['-nh']);
      expect(sent.statuses).toEqual(order.map((f) => (damaged.includes(f) ? 0xa900 : 0x0000)));
      const result = await waitFor('the scored result', async () => {
        const raw = await parts.client.get(resultKeys.result(uid));
        const status = await parts.client.hget(keys.study(uid), 'status');
        return raw && status === 'scored' ? (JSON.parse(raw) as StudyResult) : null;
      }, 90_000, 100);

      expect(result.sequencesMissing).toContain('T2');
      expect(result.series.find((s) => s.SeriesInstanceUID === t2)).toEqual({
        SeriesInstanceUID: t2, sequence: 'unknown', used: false, reason: 'refused-at-intake',
        dropped: [{ images: t2Count, reason: 'refused-at-intake', refusal: 'invalid-image', status: 'A900' }],
      });
      const flairLine = result.series.find((s) => s.SeriesInstanceUID === flair && s.used);
      expect(flairLine?.sequence).toBe('FLAIR');
      expect(flairLine?.dropped).toContainEqual({ images: 2, reason: 'refused-at-intake', refusal: 'invalid-image', status: 'A900' });
      // The sequences' share alone would be this; the refused FLAIR images lower it further.
      const bySequences = confidence(result.sequencesUsed, expectedSequences(parts.models.manifest));
      expect(result.confidence).toBeLessThan(bySequences);
      expect(result.confidence).toBeGreaterThan(bySequences * 0.7);
      // What the listener recorded: UIDs, codes, statuses and counts only.
      expect(await readRefusals(parts.client, uid)).toEqual(expect.arrayContaining([
        { SeriesInstanceUID: t2, refusal: 'invalid-image', status: 'A900', images: t2Count },
        { SeriesInstanceUID: flair, refusal: 'invalid-image', status: 'A900', images: 2 },
      ]));
      const record = JSON.stringify([await parts.client.hgetall(keys.studyRefused(uid)), await parts.client.hgetall(keys.studyRefusedInstances(uid)), result.series]);
      expect(record).not.toContain(study.AccessionNumber);
    });
    rmSync(filesDir, { recursive: true, force: true });
  }, 180_000);
});
