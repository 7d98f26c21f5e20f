// Worker thread of the cohort writer: generates the studies it is sent (by index) and posts them back with
// their file buffers transferred, not copied.
import { parentPort, workerData } from 'node:worker_threads';
import { createStudyContext, generateStudy } from './study';
import type { SynthOptions } from './types';

const { seed, options } = workerData as { seed: number | string; options: SynthOptions };
const ctx = createStudyContext();
parentPort?.on('message', (job: { index: number }) => {
  const s = generateStudy(seed, job.index, options, ctx);
  const transfer = s.files.map((f) => f.data.buffer as ArrayBuffer);
  parentPort!.postMessage(s, transfer);
});
