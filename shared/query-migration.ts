// One-time move of what earlier versions left in the queries hash to the layered contract of shared/queries.ts.
// Earlier versions seeded the hash with a copy of the first bundle's defaults (schemaVersion 1 calibrations: a
// raw-score threshold, no record of the text or bundle they were fitted for) and edited it in place, so the hash
// mixes untouched copies of bundle defaults with a site's own queries and edits. Rule (docs/worker.md):
//   - an entry identical to a default (same id, text, contrast sentence, priority and sequences) of the running
//     bundle or of a bundle an earlier release shipped is dropped: the running bundle's default, with its own
//     calibration, is what applies now;
//   - every other entry stays, as a site query (origin 'site'); a calibration in the current contract is kept (its
//     fingerprint and bundle version decide whether it still applies), an older one is dropped and its target
//     sensitivity kept, so the query shows "uncalibrated" until the service re-calibrates it from reports;
//   - entries that are not queries at all are left in place and reported (readSiteLayer skips them).
// Idempotent and guarded by a marker key; the first worker or API process to start runs it.
import { Value } from '@sinclair/typebox/value';
import type { Redis } from 'ioredis';
import { CalibrationSchema, type TriageQuery } from './model-manifest';
import { QUERY_SCHEMA_VERSION, queryKeys } from './queries';

type Definition = Pick<TriageQuery, 'id' | 'text' | 'negativeText' | 'priority' | 'sequences'>;

/**
 * The default queries of the bundles earlier releases shipped (onnx-models/manifest.json in this repository's
 * history: 2026.11.28-3a281321 read every query on all sequences, 2026.11.28-19a12c0c named sequences).
 */
const SHIPPED: Definition[] = (() => {
  const base: Definition[] = [
    { id: 'acute_infarct', text: 'Acute ischaemic infarction.', negativeText: 'There is no diffusion restriction.', priority: 'STAT', sequences: ['DWI'] },
    { id: 'haemorrhage', text: 'Intraparenchymal haematoma with surrounding oedema.', negativeText: 'No intracranial haemorrhage.', priority: 'STAT', sequences: ['DWI'] },
    { id: 'hydrocephalus', text: 'Hydrocephalus with dilated lateral and third ventricles.', negativeText: 'The ventricles are normal in size; no hydrocephalus.', priority: 'STAT' },
    { id: 'mass', text: 'Intra-axial mass lesion with vasogenic oedema.', negativeText: 'Normal MRI brain.', priority: 'URGENT', sequences: ['T2', 'FLAIR', 'ADC'] },
    { id: 'white_matter_disease', text: 'White matter hyperintensities in keeping with small vessel disease.', negativeText: 'The white matter is normal in signal.', priority: 'ROUTINE', sequences: ['FLAIR', 'T2'] },
    { id: 'atrophy', text: 'Generalised cerebral atrophy.', negativeText: 'Normal MRI brain.', priority: 'ROUTINE' },
  ];
  const allSequences = base.map(({ sequences: _unused, ...d }) => d);
  return [...base, ...allSequences];
})();

const norm = (s: string | undefined) => (s ?? '').trim();

export function sameDefinition(a: Definition, b: Definition): boolean {
  const seqs = (q: Definition) => [...(q.sequences ?? [])].sort().join(',');
  return a.id === b.id && norm(a.text) === norm(b.text) && norm(a.negativeText) === norm(b.negativeText) && a.priority === b.priority && seqs(a) === seqs(b);
}

export interface MigrationOutcome {
  migrated: boolean;
  dropped: string[];
  kept: string[];
  /** Kept, with a calibration of the old contract removed (uncalibrated until re-calibrated). */
  uncalibrated: string[];
  unreadable: string[];
}

/** What the migration does to one stored entry: drop it, keep it (rewritten), or leave it alone (unreadable). */
export function migrateEntry(raw: string, defaults: readonly Definition[]): { action: 'drop' } | { action: 'keep'; query: TriageQuery; calibrationDropped: boolean } | { action: 'unreadable' } {
  let e: Record<string, unknown>;
  try {
    e = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return { action: 'unreadable' };
  }
  if (!e || typeof e !== 'object' || typeof e.id !== 'string' || typeof e.text !== 'string' || typeof e.priority !== 'string') return { action: 'unreadable' };
  const def = e as unknown as Definition;
  if ([...defaults, ...SHIPPED].some((d) => sameDefinition(d, def))) return { action: 'drop' };
  const { calibration, origin: _origin, ...rest } = e as Record<string, unknown> & { calibration?: { targetSensitivity?: unknown } };
  const keepCalibration = calibration !== undefined && Value.Check(CalibrationSchema, calibration);
  const target = typeof calibration?.targetSensitivity === 'number' ? calibration.targetSensitivity : undefined;
  const query = {
    ...rest,
    ...(keepCalibration ? { calibration } : {}),
    ...(!keepCalibration && target !== undefined && rest.targetSensitivity === undefined ? { targetSensitivity: target } : {}),
    origin: 'site',
  } as TriageQuery;
  return { action: 'keep', query, calibrationDropped: calibration !== undefined && !keepCalibration };
}

/**
 * Applies the computed changes only to entries still holding what was read (compare-and-set per field), then sets
 * the marker: an edit made by a newer process meanwhile is never overwritten by the migration.
 * KEYS: hash, schema marker, version, seeded flag. ARGV: schema version, then triples id, expected JSON, new JSON ('' deletes).
 */
const APPLY = `
for i = 2, #ARGV, 3 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    if ARGV[i + 2] == '' then redis.call('HDEL', KEYS[1], ARGV[i]) else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2]) end
  end
end
redis.call('DEL', KEYS[4])
redis.call('SET', KEYS[2], ARGV[1])
return redis.call('INCR', KEYS[3])
`;

/** Runs the migration once per Redis (marker queryKeys.schema()); later calls return migrated: false at once. */
export async function migrateQueries(redis: Redis, defaults: readonly Definition[]): Promise<MigrationOutcome> {
  const outcome: MigrationOutcome = { migrated: false, dropped: [], kept: [], uncalibrated: [], unreadable: [] };
  if ((await redis.get(queryKeys.schema())) === QUERY_SCHEMA_VERSION) return outcome;
  const key = queryKeys.queries();
  const raw = await redis.hgetall(key);
  const args: string[] = [QUERY_SCHEMA_VERSION];
  outcome.migrated = true;
  for (const [id, json] of Object.entries(raw)) {
    const m = migrateEntry(json, defaults);
    if (m.action === 'drop') {
      args.push(id, json, '');
      outcome.dropped.push(id);
    } else if (m.action === 'keep') {
      args.push(id, json, JSON.stringify(m.query));
      outcome.kept.push(id);
      if (m.calibrationDropped) outcome.uncalibrated.push(id);
    } else outcome.unreadable.push(id);
  }
  const version = await redis.eval(APPLY, 4, key, queryKeys.schema(), queryKeys.version(), `${key}:seeded`, ...args);
  await redis.publish(queryKeys.changedChannel(), String(version));
  return outcome;
}
