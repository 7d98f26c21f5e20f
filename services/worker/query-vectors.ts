// The triage queries a worker scores against, and their text vectors. The set is the running bundle's default
// queries (always from its manifest) layered with the site's queries in Redis (shared/queries.ts); a change (API)
// bumps a version and publishes it. The worker refreshes on the message and also compares the version before each
// study, so a missed message costs one GET, never a stale score. At start it moves what older versions left in
// Redis to the layered contract (shared/query-migration.ts) and publishes the class thresholds it judges with.
// Vectors are cached by model version + sentence: only new or edited sentences go through the text encoder.
import type { Redis } from 'ioredis';
import type { Logger } from '../../shared/logger';
import type { Manifest, TriageQuery } from '../../shared/model-manifest';
import { classThresholds, type ClassThresholds, type SensitivitySettings } from '../../shared/models/decision';
import { publishJudging, queryKeys, readQuerySet } from '../../shared/queries';
import { migrateQueries } from '../../shared/query-migration';
import type { TextEmbedder } from './ports';
import { sentencesOf, type TextVectors } from './scoring';

export class TextVectorCache {
  private readonly cache = new Map<string, Float32Array>();
  constructor(
    private readonly encoder: TextEmbedder,
    /** e.g. "bundleId@version": a new bundle never reuses an old bundle's vectors. */
    private readonly modelKey: string,
  ) {}

  /** Embeds the sentences not cached yet, in one encoder call, and returns vectors for all of them. */
  async vectors(sentences: readonly string[]): Promise<TextVectors> {
    const key = (s: string) => `${this.modelKey}\n${s}`;
    const missing = [...new Set(sentences.filter((s) => !this.cache.has(key(s))))];
    if (missing.length > 0) {
      const vecs = await this.encoder.embed(missing);
      missing.forEach((s, i) => this.cache.set(key(s), vecs[i]));
    }
    return new Map(sentences.map((s) => [s, this.cache.get(key(s))!]));
  }

  get size(): number {
    return this.cache.size;
  }
}

export interface QuerySet {
  queries: TriageQuery[];
  /** Study-level probability thresholds per class (decision.ts classThresholds of the bundle's decision). */
  classThresholds: ClassThresholds;
  normalQuery?: TriageQuery;
  vectors: TextVectors;
  version: number;
}

export interface QuerySource {
  /** Current queries with their vectors; re-reads Redis when the version moved. */
  current(): Promise<QuerySet>;
  close(): Promise<void>;
}

export interface QuerySourceDeps {
  redis: Redis;
  /** A second connection for SUBSCRIBE (a subscribed ioredis connection cannot run other commands). */
  subscriber?: Redis;
  manifest: Manifest;
  text: TextEmbedder;
  log: Logger;
  /** The site's chosen study-level sensitivities (TRIAGE_STAT_SENSITIVITY, ...); absent: the bundle's. */
  sensitivity?: SensitivitySettings;
}

export async function createQuerySource(deps: QuerySourceDeps): Promise<QuerySource> {
  const { redis, subscriber, manifest, log } = deps;
  const cache = new TextVectorCache(deps.text, `${manifest.bundleId}@${manifest.version}`);
  const migrated = await migrateQueries(redis, manifest.queries);
  if (migrated.migrated) log.info({ dropped: migrated.dropped, kept: migrated.kept, uncalibrated: migrated.uncalibrated, unreadable: migrated.unreadable }, 'triage queries moved to the layered contract (bundle defaults + site queries)');
  const thresholds = classThresholds(manifest.decision, deps.sensitivity);
  await publishJudging(redis, manifest, { classThresholds: thresholds, sensitivity: deps.sensitivity ?? {}, at: new Date().toISOString() });

  let set: QuerySet | null = null;
  let loading: Promise<QuerySet> | null = null;

  const load = async (): Promise<QuerySet> => {
    const { queries, version, problems, disabled } = await readQuerySet(redis, manifest.queries);
    for (const p of problems) log.warn({ problem: p }, 'skipping an invalid triage query');
    const vectors = await cache.vectors(sentencesOf(queries, manifest.normalQuery));
    const site = queries.filter((q) => q.origin === 'site').map((q) => q.id);
    log.info({ version, queries: queries.length, site, disabled: disabled.map((q) => q.id), cachedSentences: cache.size }, 'triage queries embedded');
    return { queries, normalQuery: manifest.normalQuery, vectors, version, classThresholds: thresholds };
  };
  const reload = (): Promise<QuerySet> => {
    // One reload at a time; callers during a reload share its result.
    loading ??= load().then((s) => (set = s)).finally(() => (loading = null));
    return loading;
  };

  const onMessage = (channel: string) => {
    if (channel !== queryKeys.changedChannel()) return;
    reload().catch((err: unknown) => log.error({ err }, 'reloading triage queries failed; retrying before the next study'));
  };
  if (subscriber) {
    subscriber.on('message', onMessage);
    await subscriber.subscribe(queryKeys.changedChannel());
  }
  await reload();

  return {
    async current() {
      const version = Number((await redis.get(queryKeys.version())) ?? 0);
      if (set && set.version === version && !loading) return set;
      return reload();
    },
    async close() {
      if (subscriber) {
        subscriber.off('message', onMessage);
        await subscriber.unsubscribe(queryKeys.changedChannel()).catch(() => undefined);
      }
    },
  };
}

/** The bundle's default queries without Redis: offline scoring and the benchmark. */
export async function manifestQuerySet(manifest: Manifest, text: TextEmbedder, sensitivity: SensitivitySettings = {}): Promise<QuerySet> {
  const cache = new TextVectorCache(text, `${manifest.bundleId}@${manifest.version}`);
  const vectors = await cache.vectors(sentencesOf(manifest.queries, manifest.normalQuery));
  return { queries: manifest.queries, normalQuery: manifest.normalQuery, vectors, version: 0, classThresholds: classThresholds(manifest.decision, sensitivity) };
}
