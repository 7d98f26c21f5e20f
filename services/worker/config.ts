// The worker's own settings (on top of shared/config.ts): execution providers, model bundle location, concurrency,
// cross-study batching, retry policy, metrics port, the site's operating points and the partial-study wait. Validated once at start by loadSection.
import { Type, type Static } from '@sinclair/typebox';
import { ConfigError, loadSection, settingsSource } from '../../shared/config';
import type { SensitivitySettings } from '../../shared/models/decision';
import type { ExecutionProvider } from '../../shared/models';

export const WorkerConfigSchema = Type.Object({
  /** Study jobs processed at once by one worker process (decode/preprocess run in parallel in the thread pool). */
  WORKER_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 256 }),
  /** Comma-separated ONNX Runtime execution providers in order of preference, e.g. "cuda,cpu". */
  EXECUTION_PROVIDERS: Type.String({ pattern: '^[a-z0-9_-]+(,[a-z0-9_-]+)*$' }),
  MODELS_DIR: Type.String({ minLength: 1 }),
  /** Volumes of one sequence from up to this many concurrent studies go through one session call (GPU). */
  WORKER_BATCH_SIZE: Type.Integer({ minimum: 1, maximum: 256 }),
  /** How long a partial batch waits for more studies before running; 0 runs at once. */
  WORKER_BATCH_WAIT_MS: Type.Integer({ minimum: 0, maximum: 10000 }),
  /**
   * Loader processes for DICOM reading, decode + preprocessing (load-pool.ts), one study each at a time; 0 runs
   * them in the worker process itself, without containment (tests only). WORKER_LOAD_THREADS is the old name.
   */
  WORKER_LOAD_PROCESSES: Type.Integer({ minimum: 0, maximum: 64 }),
  /** The old name of WORKER_LOAD_PROCESSES (loading ran in threads): read only when WORKER_LOAD_PROCESSES is unset. */
  WORKER_LOAD_THREADS: Type.Optional(Type.Integer({ minimum: 0, maximum: 64 })),
  /** A loader process resident above this many MB is killed; its study fails as too-large. */
  WORKER_LOAD_MAX_RSS_MB: Type.Integer({ minimum: 64, maximum: 65536 }),
  /** A study still loading after this many seconds is stopped; it fails as load-timeout. */
  WORKER_LOAD_TIMEOUT_SECONDS: Type.Number({ exclusiveMinimum: 0, maximum: 3600 }),
  /** HTTP port of /metrics, /livez and /readyz; 0 picks a free port (tests), which is logged. */
  /**
   * ONNX Runtime intra-op threads per session; 0 leaves ONNX Runtime's default (one per core, spinning). With
   * several studies in flight, 1 gives more studies/s on CPU: bench:infer measured ~200 vs ~330 ms CPU per study.
   */
  WORKER_ORT_THREADS: Type.Integer({ minimum: 0, maximum: 256 }),
  /**
   * Localise flagged findings (occlusion search on the image encoders, localise.ts): the key image and region on the
   * page, in the SR and in HL7. Off saves its encoder runs (docs/benchmarks.md) and results carry no location.
   */
  WORKER_LOCALISE: Type.Boolean(),
  /** Retry policy for transient failures, used when the producer's job options do not set attempts. */
  WORKER_JOB_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 100 }),
  WORKER_BACKOFF_MS: Type.Integer({ minimum: 1, maximum: 3_600_000 }),
  /** BullMQ lock: a killed worker's job is retried by another worker after about this long. */
  WORKER_LOCK_DURATION_MS: Type.Integer({ minimum: 1000, maximum: 600_000 }),
  WORKER_STALLED_INTERVAL_MS: Type.Integer({ minimum: 500, maximum: 600_000 }),
  WORKER_METRICS_PORT: Type.Integer({ minimum: 0, maximum: 65535 }),
  WORKER_METRICS_HOST: Type.String({ minLength: 1 }),
  /**
   * The site's operating point for the study-level STAT (URGENT) decision: the sensitivity to keep, read off the
   * bundle's decision table (manifest.decision, docs/worker.md "Operating points"). Unset: the bundle's default.
   */
  TRIAGE_STAT_SENSITIVITY: Type.Optional(Type.Number({ minimum: 0.5, maximum: 1 })),
  TRIAGE_URGENT_SENSITIVITY: Type.Optional(Type.Number({ minimum: 0.5, maximum: 1 })),
  /**
   * A result that lacks sequences STAT/URGENT queries read on stays provisional this long after the study's last
   * instance: findings scored without their own sequences cannot raise the priority until it is final. 0: no wait.
   */
  WORKER_PARTIAL_WAIT_SECONDS: Type.Integer({ minimum: 0, maximum: 86_400 }),
});

export type WorkerConfig = Static<typeof WorkerConfigSchema>;

export const WORKER_DEFAULTS: WorkerConfig = {
  WORKER_CONCURRENCY: 3,
  EXECUTION_PROVIDERS: 'cuda,cpu',
  MODELS_DIR: './onnx-models',
  WORKER_BATCH_SIZE: 1,
  WORKER_BATCH_WAIT_MS: 5,
  WORKER_LOAD_PROCESSES: 2,
  WORKER_LOAD_MAX_RSS_MB: 640,
  WORKER_LOAD_TIMEOUT_SECONDS: 120,
  WORKER_ORT_THREADS: 1,
  WORKER_LOCALISE: true,
  WORKER_JOB_ATTEMPTS: 5,
  WORKER_BACKOFF_MS: 2000,
  WORKER_LOCK_DURATION_MS: 30_000,
  WORKER_STALLED_INTERVAL_MS: 30_000,
  WORKER_METRICS_PORT: 9465,
  WORKER_METRICS_HOST: '127.0.0.1',
  WORKER_PARTIAL_WAIT_SECONDS: 300,
};

type Source = Record<string, string | undefined>;

export function loadWorkerConfig(env: Source = process.env): WorkerConfig {
  const source = { ...settingsSource(env) };
  // WORKER_LOAD_THREADS, from when loading ran in threads, still sets the loader count.
  if (source.WORKER_LOAD_PROCESSES === undefined && source.WORKER_LOAD_THREADS !== undefined) source.WORKER_LOAD_PROCESSES = source.WORKER_LOAD_THREADS;
  const config = loadSection(WorkerConfigSchema, WORKER_DEFAULTS, source);
  // Checked here, not when the bundle loads: that came after the HTTP server and the wait for a missing bundle,
  // and its plain error (exit 1) made npm start restart the worker for ever instead of stopping on a bad setting.
  const unknown = executionProviders(config).filter((p) => !(KNOWN_PROVIDERS as readonly string[]).includes(p));
  if (unknown.length > 0) {
    throw new ConfigError([`EXECUTION_PROVIDERS=${JSON.stringify(config.EXECUTION_PROVIDERS)}: unknown provider(s) ${unknown.join(', ')}; expected a comma list of ${KNOWN_PROVIDERS.join(', ')}`]);
  }
  return config;
}

/** The ONNX Runtime execution providers the worker can use (services/worker/models.ts). */
export const KNOWN_PROVIDERS: readonly ExecutionProvider[] = ['cuda', 'cpu'];

export function executionProviders(config: Pick<WorkerConfig, 'EXECUTION_PROVIDERS'>): string[] {
  return config.EXECUTION_PROVIDERS.split(',').map((p) => p.trim()).filter(Boolean);
}

/** The study-level sensitivities a site chose (only those set). */
export function sensitivitySettings(config: Pick<WorkerConfig, 'TRIAGE_STAT_SENSITIVITY' | 'TRIAGE_URGENT_SENSITIVITY'>): SensitivitySettings {
  return {
    ...(config.TRIAGE_STAT_SENSITIVITY !== undefined ? { STAT: config.TRIAGE_STAT_SENSITIVITY } : {}),
    ...(config.TRIAGE_URGENT_SENSITIVITY !== undefined ? { URGENT: config.TRIAGE_URGENT_SENSITIVITY } : {}),
  };
}
