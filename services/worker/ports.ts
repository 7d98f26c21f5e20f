// The narrow interfaces the worker's pipeline is built on: a study loader (DICOM files -> canonical volumes, run in
// the thread pool) and the model bundle (image and text encoders). Adapters in load-study.ts and models.ts bind
// them to shared/imaging and shared/models; tests and the benchmark use the same adapters.
import type { SourceGeometry, Vec3 } from '../../shared/imaging';
import type { Manifest, Sequence } from '../../shared/model-manifest';
import type { NormalAtlas } from '../../shared/models';
import type { SeriesOutcome } from '../../shared/results';

/** One canonical volume, shaped manifest.preprocessing.shape ([D, H, W]), float32, row-major. */
export type Volume = Float32Array;

/** Where a canonical volume sits in the patient and which series it came from: what localisation maps back with. */
export interface VolumeGeometry {
  /** Patient (LPS mm) position of the canonical grid's centre. */
  centreMm: Vec3;
  source: SourceGeometry;
}

export interface LoadedStudy {
  StudyInstanceUID?: string;
  AccessionNumber?: string;
  volumes: Partial<Record<Sequence, Volume>>;
  series: SeriesOutcome[];
  /**
   * Fraction of the used series' images that made it into their volumes (1 when nothing was left out that the
   * series meant to hold: unreadable, no geometry, another orientation, a duplicate); scales the confidence.
   */
  completeness?: number;
  /** Images in the used series' volumes (the numerator of completeness): what refused images are weighed against. */
  keptImages?: number;
  /** Per sequence with a volume; absent from loaders that predate localisation (then findings carry no location). */
  geometry?: Partial<Record<Sequence, VolumeGeometry>>;
  /** Milliseconds spent decoding pixel data and building canonical volumes. */
  timingsMs: { decode: number; preprocess: number };
}

export interface StudyLoader {
  /** Loads every instance under the study folder; throws a permanent error (errors.ts) for unusable data. */
  load(studyDir: string): Promise<LoadedStudy>;
  close(): Promise<void>;
}

export interface ImageEmbedder {
  /** Image vectors for a batch of canonical volumes of one sequence (batch size bounded by the caller). */
  embed(sequence: Sequence, volumes: Volume[]): Promise<Float32Array[]>;
}

export interface TextEmbedder {
  /** Unit-length sentence vectors (mean-pooled, normalised as the manifest says). */
  embed(texts: string[]): Promise<Float32Array[]>;
}

export interface ModelBundle {
  manifest: Manifest;
  /** Execution provider actually in use, e.g. "cuda" or "cpu". */
  provider: string;
  image: ImageEmbedder;
  text: TextEmbedder;
  /** Sequences the bundle has image encoders for. */
  sequences: Sequence[];
  /** The bundle's normal-appearance atlas, when it has one: localisation candidates (localise.ts). */
  atlas?: NormalAtlas | null;
  close(): Promise<void>;
}
