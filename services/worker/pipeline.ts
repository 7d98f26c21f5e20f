// One study through the whole pipeline: load (decode + preprocess, in the thread pool) -> image encoders ->
// scoring. Shared by the queue worker and `npm run score`, so offline scores are the service's scores.
import { performance } from 'node:perf_hooks';
import type { StudyResult } from '../../shared/results';
import { expectedSequences, type Sequence } from '../../shared/model-manifest';
import { PermanentStudyError } from './errors';
import type { ImageEmbedder, ModelBundle, StudyLoader } from './ports';
import type { QuerySet } from './query-vectors';
import { l2normalize } from '../../shared/models/scoring';
import type { RefusedImages } from '../../shared/refusals';
import { localiseFindings, type LocaliseOptions } from './localise';
import { applyRefusals } from './refusals';
import { queryVectors, scoreStudy } from './scoring';

export interface PipelineDeps {
  loader: StudyLoader;
  models: ModelBundle;
  /** Usually models.image wrapped by batchingEmbedder; defaults to models.image. */
  image?: ImageEmbedder;
  /** Occlusion search settings for flagged findings (localise.ts); false: findings carry no location. */
  localise?: LocaliseOptions | false;
}

export interface ScoredStudy {
  result: StudyResult;
  /** Unit-length image vectors by sequence, plus "combined" (see scoring.ts). */
  vectors: Record<string, Float32Array>;
  /** Length of each sequence's raw encoder output (vectors[s] * norms[s] is what was scored). */
  norms: Partial<Record<Sequence, number>>;
}

export interface StudyMeta {
  StudyInstanceUID?: string;
  AccessionNumber?: string;
  receivedAt?: number;
  /** The study's last instance arrival (ms epoch): a provisional result waits from here. */
  lastReceivedAt?: number;
  /** Instances the listener refused at C-STORE (shared/refusals.ts readRefusals): listed in the result's series. */
  refused?: RefusedImages[];
}

/**
 * How long a partial study's result stays provisional after its last arrival (docs/worker.md "Partial studies");
 * 0 or absent: every result is final at once.
 */
export interface PartialPolicy {
  waitMs: number;
}

export async function scoreStudyFolder(
  deps: PipelineDeps,
  studyDir: string,
  querySet: QuerySet,
  meta: StudyMeta = {},
  partial: PartialPolicy = { waitMs: 0 },
): Promise<ScoredStudy> {
  const t0 = performance.now();
  const loaded = await deps.loader.load(studyDir);
  const StudyInstanceUID = meta.StudyInstanceUID ?? loaded.StudyInstanceUID;
  if (!StudyInstanceUID) throw new PermanentStudyError('the study folder holds no StudyInstanceUID', 'corrupt-data');

  const { manifest, sequences: modelSequences } = deps.models;
  const scorable = (Object.keys(loaded.volumes) as Sequence[]).filter((s) => modelSequences.includes(s) && loaded.volumes[s]);
  if (scorable.length === 0) {
    const seen = [...new Set(loaded.series.map((s) => s.sequence))].join(', ') || 'none';
    throw new PermanentStudyError(
      `no scorable sequence: the model needs one of ${modelSequences.join(', ')}; the study has ${seen}`,
      'no-scorable-sequence',
      'unsupported',
    );
  }

  const t1 = performance.now();
  const image = deps.image ?? deps.models.image;
  const embedded = await Promise.all(scorable.map(async (s) => [s, (await image.embed(s, [loaded.volumes[s]!]))[0]] as const));
  const t2 = performance.now();
  // A vector with NaN or Infinity scores nothing and would poison search: never stored (the volumes are checked
  // for non-finite values when decoded; this is the last guard before Redis).
  const broken = embedded.find(([, v]) => !v.every(Number.isFinite));
  if (broken) throw new PermanentStudyError(`the ${broken[0]} image encoder returned non-finite values for this study's volume`, 'corrupt');

  const embeddings = Object.fromEntries(embedded) as Partial<Record<Sequence, Float32Array>>;
  const until = (meta.lastReceivedAt ?? Date.now()) + partial.waitMs;
  const score = scoreStudy(embeddings, querySet.queries, querySet.vectors, {
    combination: manifest.combination,
    // What a complete study has: a supplementary sequence (SWI) is scored when present and never waited for.
    modelSequences: expectedSequences(manifest),
    normalQuery: querySet.normalQuery,
    bundleVersion: manifest.version,
    classThresholds: querySet.classThresholds,
    // Re-scored after the wait already ran out (e.g. re-queued at a restart): judged as final at once.
    final: partial.waitMs <= 0 || until <= Date.now(),
  });
  const vectors: Record<string, Float32Array> = { combined: score.combined };
  const norms: Partial<Record<Sequence, number>> = {};
  for (const [s, v] of embedded) {
    vectors[s] = l2normalize(v);
    norms[s] = Math.hypot(...v);
  }
  const t3 = performance.now();

  // Where each flagged finding is: its own encoder runs, after the decision (localisation never changes a score).
  // Most probable first: within a priority class they get the finer search first (localise.ts maxRuns).
  const flagged = score.findings.filter((f) => f.flagged).sort((a, b) => (b.probability ?? 0) - (a.probability ?? 0));
  let localiseMs: number | undefined;
  if (deps.localise !== false && flagged.length > 0 && loaded.geometry) {
    const byId = new Map(querySet.queries.map((q) => [q.id, q]));
    const targets = queryVectors(flagged.map((f) => byId.get(f.queryId)!), querySet.vectors).map((v) => ({ queryId: v.query.id, vectors: v }));
    const { locations } = await localiseFindings(
      { volumes: loaded.volumes, geometry: loaded.geometry, embeddings, targets },
      { image: deps.models.image, preprocessing: manifest.preprocessing, combination: manifest.combination, atlas: deps.models.atlas },
      deps.localise,
    );
    for (const f of score.findings) {
      const location = locations.get(f.queryId);
      if (location) f.location = location;
    }
    localiseMs = performance.now() - t3;
  }
  const t4 = performance.now();

  const intake = applyRefusals(loaded.series, meta.refused ?? [], loaded.completeness, loaded.keptImages);
  const round = (ms: number) => Math.round(ms * 10) / 10;
  const result: StudyResult = {
    StudyInstanceUID,
    ...((meta.AccessionNumber ?? loaded.AccessionNumber) ? { AccessionNumber: meta.AccessionNumber ?? loaded.AccessionNumber } : {}),
    priority: score.priority,
    priorityProbability: score.priorityProbability,
    findings: score.findings,
    abnormalProbability: score.abnormalProbability,
    sequencesUsed: score.sequencesUsed,
    sequencesMissing: score.sequencesMissing,
    series: intake.series,
    // Images left out of a used series (unreadable, another orientation, refused at intake, ...) make the result
    // less certain too.
    confidence: Math.round(score.confidence * (intake.completeness ?? 1) * 1000) / 1000,
    ...(score.waitingFor.length > 0 ? { provisional: { waitingFor: score.waitingFor, until } } : {}),
    model: { bundleId: manifest.bundleId, version: manifest.version },
    judgedWith: { querySetVersion: score.querySetVersion, classThresholds: querySet.classThresholds },
    provider: deps.models.provider,
    timingsMs: {
      decode: round(loaded.timingsMs.decode),
      preprocess: round(loaded.timingsMs.preprocess),
      inference: round(t2 - t1),
      scoring: round(t3 - t2),
      ...(localiseMs !== undefined ? { localise: round(localiseMs) } : {}),
      total: round(t4 - t0),
    },
    receivedAt: meta.receivedAt ?? Date.now(),
    scoredAt: Date.now(),
  };
  return { result, vectors, norms };
}
