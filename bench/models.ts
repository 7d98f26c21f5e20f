// npm run bench:models: CPU (or CUDA) inference time for one study, all sequences of the bundle, through the
// service's model layer. Uses real canonical volumes when --volumes names a volumes folder, otherwise smooth
// synthetic ones of the bundle's shape (inference time does not depend on the values).
// Usage: npm run bench:models -- [--bundle onnx-models] [--volumes VOLDIR] [--runs 30] [--threads 2] [--provider cpu]
import os from 'node:os';
import type { Sequence } from '../shared/model-manifest';
import { loadModels, type ExecutionProvider } from '../shared/models';
import { parseOptions, runCli } from '../shared/cli-args';
import { listStudies, readStudy } from '../shared/models/cli/volumes';

async function main(): Promise<void> {
  const args = parseOptions({
    bundle: { type: 'string', default: 'onnx-models' },
    volumes: { type: 'string', default: '' },
    runs: { type: 'string', default: '30' },
    threads: { type: 'string', default: '2' },
    provider: { type: 'string', default: 'cpu' },
  });
  const providers = args.provider.split(',') as ExecutionProvider[];
  const tLoad = performance.now();
  const models = await loadModels(args.bundle, { executionProviders: providers, threads: Number(args.threads) });
  const loadMs = performance.now() - tLoad;
  let volumes: Partial<Record<Sequence, Float32Array>>;
  if (args.volumes) {
    const studies = await listStudies(args.volumes);
    volumes = await readStudy(studies.find((s) => models.sequences.every((q) => s.files[q])) ?? studies[0], models.sequences);
  } else {
    const n = models.manifest.preprocessing.shape.reduce((a, b) => a * b, 1);
    volumes = Object.fromEntries(models.sequences.map((s, k) => [s, Float32Array.from({ length: n }, (_, i) => Math.sin(i / 97 + k))]));
  }
  const queries = await models.embedQueries(models.manifest.queries);
  await models.embedStudy(volumes); // warm-up
  const times: number[] = [];
  for (let r = 0; r < Number(args.runs); r++) {
    const t0 = performance.now();
    models.score(await models.embedStudy(volumes), queries);
    times.push(performance.now() - t0);
  }
  const tq = performance.now();
  await models.embedQueries(models.manifest.queries);
  const queryMs = performance.now() - tq;
  await models.close();
  times.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}`,
      provider: models.provider,
      threads: Number(args.threads),
      sequences: Object.keys(volumes),
      runs: times.length,
      studyMedianMs: Number(times[Math.floor(times.length / 2)].toFixed(1)),
      studyP95Ms: Number(times[Math.floor(times.length * 0.95)].toFixed(1)),
      embedAllQueriesMs: Number(queryMs.toFixed(1)),
      loadBundleMs: Number(loadMs.toFixed(0)),
    }),
  );
}

runCli(main);
