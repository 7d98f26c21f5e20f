// What the API does with triage queries, apart from HTTP: the effective set as the page shows it (the running
// bundle's defaults layered with the site's queries, shared/queries.ts), each with the calibration state and the
// threshold it is judged with; and the rules of a create or edit:
//   - a client never sends a calibration or an origin (refused: the service computes both); it may send
//     targetSensitivity;
//   - the text and contrast sentence must be text the model knows (shared/language/check.ts; 422 with the reasons),
//     and the sequences it names ones the running bundle reads (422 naming those it reads);
//   - a query without a contrast sentence gets the bundle's normal-study sentence, stored explicitly;
//   - a calibration is kept only while it was fitted for the same text, contrast sentence and sequences on the
//     running bundle (a new target sensitivity re-picks the threshold from its table of operating points);
//     otherwise the query is calibrated from this site's reports at once, or stored uncalibrated with the reason;
//   - an edit of a bundle default becomes a site query (origin 'site'); an edit that equals the default again
//     removes the site's copy. Deleting a site copy of a default brings the default back; deleting a default turns
//     it off.
import type { Redis } from 'ioredis';
import { queryFingerprint, type Calibration, type TriageQuery } from '../../shared/model-manifest';
import { calibrationState, thresholdFromTable, type CalibrationState } from '../../shared/models/calibration';
import { classThresholds, queryThreshold, type ClassThresholds } from '../../shared/models/decision';
import type { TextCheck } from '../../shared/language/check';
import {
  changeQuery, changeQueryIf, DEFAULT_TARGET_SENSITIVITY, queryKeys, dropCalibration, readCalibrationAttempts, readJudging, readQuerySet, readSiteLayer, recordCalibrationAttempt, restoreDefault,
  setDefaultDisabled,
  type CalibrationAttempt, type JudgingInUse,
} from '../../shared/queries';
import { flagsNearlyEverything, pseudoPositiveWords } from '../../shared/models/pseudo-labels';
import { sameDefinition } from '../../shared/query-migration';
import { loadedModel, type ModelStatus } from './app';
import type { Calibrator } from './calibration/calibrator';
import { targetSensitivityOf } from './calibration/calibrator';
import { sameSentence } from './free-text';
import { assertUsable, checkTexts } from './language';
import { HttpProblem } from './plugins/problems';
import type { EmbedText } from './report-check';

export interface QueryView extends TriageQuery {
  /** Whether its calibration may be applied (calibrated), or why not. */
  calibrationState: CalibrationState;
  /** The probability threshold studies are judged with now; null: it cannot be flagged. */
  thresholdInUse: number | null;
  /** class: the bundle's study-level threshold of its priority class; query: its own calibrated threshold. */
  judgedBy: 'class' | 'query' | null;
  /** The query's own target sensitivity: it picks its own threshold, used when judgedBy is 'query'. */
  targetSensitivity: number;
  /**
   * The sensitivity the threshold in use was chosen for: the class's study-level sensitivity (the site's
   * TRIAGE_<class>_SENSITIVITY, else the bundle's) when judged by the class threshold, else targetSensitivity; null
   * when it cannot flag.
   */
  judgedAtSensitivity: number | null;
  /** A default of the running bundle has this id (a site query of the same id replaces it). */
  bundleDefault: boolean;
  /** A bundle default the site turned off: not scored, so no threshold is in use. */
  disabled: boolean;
  /** Why it cannot be flagged, for the page's warning; null when calibrated. */
  warning: string | null;
  /** The service's last attempt to calibrate it from reports, when it was for this text and bundle. */
  lastAttempt: CalibrationAttempt | null;
}

export interface QueryList {
  version: number;
  bundle: { bundleId: string; version: string } | null;
  queries: QueryView[];
  /** Bundle defaults the site turned off: listed, not scored. */
  disabled: QueryView[];
  /** Said above the list: queries that cannot flag, a bundle that is not loaded. */
  warnings: string[];
  problems: string[];
}

/** What a client may send: the query's definition and the sensitivity it wants; never calibration or origin. */
export type QueryInput = Omit<TriageQuery, 'calibration' | 'origin'> & { calibration?: unknown; origin?: unknown };

export interface SaveOutcome {
  version: number;
  action: 'created' | 'replaced' | 'restored-default';
  query: QueryView;
  language: { text: TextCheck; negativeText: TextCheck | null };
  calibration: { state: CalibrationState; detail: string };
}

export interface QueryServiceDeps {
  redis: Redis;
  model: () => ModelStatus;
  embed: EmbedText;
  /** Null while the bundle is not loaded. */
  calibrator: () => Calibrator | null;
}

function warningFor(q: TriageQuery, state: CalibrationState, bundleVersion: string, attempt: CalibrationAttempt | null): string | null {
  if (state === 'calibrated') return null;
  const why = {
    uncalibrated: 'it has no calibration yet',
    'stale-text': 'its calibration was fitted for other text',
    'stale-bundle': `its calibration was fitted on model bundle ${q.calibration?.bundleVersion ?? '?'}, not the running ${bundleVersion}`,
  }[state];
  const tried = attempt ? ` Last calibration attempt (${attempt.at}): ${attempt.detail}.` : '';
  return `Not calibrated: ${why}, so it is scored but never flagged until it is calibrated from this site's reports.${tried}`;
}

export function createQueryService(deps: QueryServiceDeps) {
  const { redis } = deps;

  async function inUse(model: ReturnType<typeof loadedModel>): Promise<{ thresholds: ClassThresholds; judging: JudgingInUse | null; sensitivities: ClassThresholds }> {
    const judging = await readJudging(redis, model);
    const decision = model.manifest.decision;
    // The study-level sensitivity each class threshold was chosen for (GET /api/v1/decision shows the same).
    const sensitivities: ClassThresholds = {};
    for (const cls of ['STAT', 'URGENT'] as const) {
      const s = judging?.sensitivity[cls] ?? decision?.[cls]?.targetSensitivity;
      if (s !== undefined) sensitivities[cls] = s;
    }
    return { thresholds: judging?.classThresholds ?? classThresholds(decision), judging, sensitivities };
  }

  function view(
    q: TriageQuery, bundleVersion: string, thresholds: ClassThresholds, defaults: ReadonlySet<string>, attempts: Map<string, CalibrationAttempt>,
    disabled = false, sensitivities: ClassThresholds = {},
  ): QueryView {
    const t = queryThreshold(q, bundleVersion, thresholds);
    const raw = attempts.get(q.id);
    const attempt = raw && raw.fittedFor === queryFingerprint(q) && raw.bundleVersion === bundleVersion ? raw : null;
    const usesClass = t.threshold !== null && (q.origin ?? 'bundle') === 'bundle' && q.priority !== 'ROUTINE' && thresholds[q.priority] !== undefined;
    const judgedBy = disabled || t.threshold === null ? null : usesClass ? 'class' : 'query';
    const own = targetSensitivityOf(q);
    return {
      ...q,
      calibrationState: t.state,
      thresholdInUse: disabled ? null : t.threshold,
      judgedBy,
      targetSensitivity: own,
      judgedAtSensitivity: judgedBy === 'class' ? sensitivities[q.priority as 'STAT' | 'URGENT'] ?? null : judgedBy === 'query' ? own : null,
      bundleDefault: defaults.has(q.id),
      disabled,
      warning: disabled ? `Turned off: studies are not scored for it; POST /api/v1/queries/${q.id}/restore turns it on.` : warningFor(q, t.state, bundleVersion, attempt),
      lastAttempt: attempt,
    };
  }

  async function list(): Promise<QueryList> {
    const status = deps.model();
    if (!status.loaded || !status.manifest) {
      const site = await readSiteLayer(redis);
      const attempts = await readCalibrationAttempts(redis);
      const views = site.queries.map((q) => view(q, '', {}, new Set(), attempts));
      return {
        version: site.version, bundle: null, queries: views, disabled: [], problems: site.problems,
        warnings: [`The model bundle is not loaded (${status.detail ?? 'starting'}): its default queries are not listed and calibration states are unknown.`],
      };
    }
    const model = loadedModel(status);
    const [set, { thresholds, sensitivities }, attempts] = await Promise.all([readQuerySet(redis, model.manifest.queries), inUse(model), readCalibrationAttempts(redis)]);
    const defaults = new Set(model.manifest.queries.map((q) => q.id));
    const queries = set.queries.map((q) => view(q, model.version, thresholds, defaults, attempts, false, sensitivities));
    const cannot = queries.filter((q) => q.thresholdInUse === null);
    return {
      version: set.version,
      bundle: { bundleId: model.bundleId, version: model.version },
      queries,
      disabled: set.disabled.map((q) => view(q, model.version, thresholds, defaults, attempts, true, sensitivities)),
      problems: set.problems,
      warnings: cannot.length > 0 ? [`${cannot.length} ${cannot.length === 1 ? 'query is' : 'queries are'} not calibrated and cannot flag a study: ${cannot.map((q) => q.id).join(', ')}.`] : [],
    };
  }

  async function find(id: string): Promise<QueryView | null> {
    const all = await list();
    return [...all.queries, ...all.disabled].find((q) => q.id === id) ?? null;
  }

  /** The calibration an edited query may keep, re-picked for a new target sensitivity; null when it must be redone. */
  function keptCalibration(previous: TriageQuery | null, next: TriageQuery, bundleVersion: string, target: number): Calibration | null {
    const c = previous?.calibration;
    if (!c || calibrationState({ ...next, calibration: c }, bundleVersion) !== 'calibrated' || flagsNearlyEverything(c)) return null;
    if (Math.abs(c.targetSensitivity - target) < 1e-9) return c;
    if (c.operatingPoints.length === 0) return null;
    const row = thresholdFromTable(c.operatingPoints, target);
    const repicked = { ...c, threshold: row.threshold, targetSensitivity: target, estimated: { sensitivity: row.sensitivity, specificity: 1 - row.falsePositiveRate } };
    // A report calibration re-picked at a point that flags (nearly) every study is redone, as a new one would be.
    return flagsNearlyEverything(repicked) ? null : repicked;
  }

  async function save(input: QueryInput, mode: 'create' | 'replace'): Promise<SaveOutcome> {
    const model = loadedModel(deps.model());
    const refused: { field: string; message: string }[] = [];
    if (input.calibration !== undefined) refused.push({ field: 'body/calibration', message: 'is computed by the service (from the bundle\'s calibration cohort or this site\'s reports), never sent; send targetSensitivity to choose the operating point' });
    if (input.origin !== undefined) refused.push({ field: 'body/origin', message: 'is set by the service (a query written through the API is a site query)' });
    if (refused.length > 0) throw HttpProblem.forFields(422, refused);

    const { calibration: _c, origin: _o, ...definition } = input;
    const text = definition.text.trim();
    if (text.length < 3) throw new HttpProblem(400, 'body/text must have at least 3 characters besides spaces');
    const normal = model.manifest.normalQuery?.text;
    const negativeText = definition.negativeText?.trim() || (normal && !sameSentence(normal, text) ? normal : undefined);
    if (negativeText !== undefined && sameSentence(negativeText, text)) {
      throw new HttpProblem(400, 'body/negativeText must differ from body/text: the score would always be 0');
    }
    const [textCheck, negativeCheck] = await checkTexts(model.language, deps.embed, [text, ...(negativeText && definition.negativeText ? [negativeText] : [])]);
    assertUsable([{ field: 'body/text', check: textCheck }, ...(negativeCheck ? [{ field: 'body/negativeText', check: negativeCheck }] : [])]);

    // The site entry as it is before the (possibly slow) calibration: the write below happens only if it still is.
    const expected = await redis.hget(queryKeys.queries(), definition.id);
    const current = await find(definition.id);
    if (mode === 'create' && current) {
      throw new HttpProblem(409, `a triage query "${definition.id}" exists already${current.bundleDefault && current.origin !== 'site' ? ' (a default of the model bundle)' : ''}; PUT /api/v1/queries/${definition.id} replaces it`);
    }
    if (mode === 'replace' && !current) throw new HttpProblem(404, `no triage query "${definition.id}"; POST /api/v1/queries creates one`);
    // A sequence the running bundle has no encoder for would silently score the query on every other sequence. One
    // the stored query already names (written under an older bundle) may stay, so that the query can still be edited.
    const reads = Object.keys(model.manifest.imageEncoders);
    const unread = (definition.sequences ?? []).filter((s) => !reads.includes(s) && !(current?.sequences ?? []).includes(s));
    if (unread.length > 0) {
      const problem = { field: 'body/sequences', message: `names ${unread.join(', ')}, which the running model bundle does not read (it reads ${reads.join(', ')}); leave sequences out to read on all of them` };
      throw new HttpProblem(422, `${problem.field} ${problem.message}`, {}, [problem]);
    }
    const bundleDefault = model.manifest.queries.find((q) => q.id === definition.id) ?? null;
    const target = definition.targetSensitivity ?? (current ? current.targetSensitivity : DEFAULT_TARGET_SENSITIVITY);
    const next: TriageQuery = {
      id: definition.id,
      text,
      ...(negativeText ? { negativeText } : {}),
      priority: definition.priority,
      ...(definition.sequences ? { sequences: definition.sequences } : {}),
      targetSensitivity: target,
      origin: 'site',
    };
    const language = { text: textCheck, negativeText: negativeCheck ?? null };

    // Back to exactly the bundle's default: the site's copy goes, the default (and its class threshold) applies.
    if (bundleDefault && sameDefinition(bundleDefault, next) && (definition.targetSensitivity === undefined || Math.abs(target - targetSensitivityOf(bundleDefault)) < 1e-9)) {
      const version = await restoreDefault(redis, definition.id);
      const restored = await find(definition.id);
      return { version, action: 'restored-default', query: restored!, language, calibration: { state: restored!.calibrationState, detail: 'the bundle\'s own default and calibration apply' } };
    }

    const previous = current && current.origin === 'site' ? current : bundleDefault ?? current;
    let calibration = keptCalibration(previous, next, model.version, target);
    let detail: string;
    // The attempt made for this edit, recorded only with it (never when another change was saved meanwhile).
    let attempt: CalibrationAttempt | undefined;
    if (calibration) {
      detail = calibration === previous?.calibration ? 'kept: fitted for the same text, contrast sentence and sequences on this bundle' : `threshold re-picked for sensitivity ${target} from its table of operating points`;
    } else {
      const calibrator = deps.calibrator();
      const outcome = calibrator ? await calibrator.calibrate(next) : null;
      attempt = outcome?.attempt;
      if (outcome?.ok) {
        calibration = outcome.calibration;
        detail = `calibrated on ${calibration.studies} past studies of this site (${calibration.positives} ${pseudoPositiveWords(next).one})`;
      } else {
        detail = outcome ? outcome.reason : 'no calibrator is running';
      }
    }
    const stored: TriageQuery = { ...next, ...(calibration ? { calibration } : {}) };
    const version = await changeQueryIf(redis, definition.id, expected, { put: stored }, attempt);
    if (version === null) {
      throw new HttpProblem(409, mode === 'create'
        ? `a triage query "${definition.id}" was created by another request while this one was being calibrated; PUT /api/v1/queries/${definition.id} replaces it`
        : `the triage query "${definition.id}" was changed (edited, calibrated or deleted) while this edit was being calibrated; nothing was saved: read it again and send the edit again`);
    }
    const saved = await find(definition.id);
    return {
      version,
      action: mode === 'create' ? 'created' : 'replaced',
      query: saved!,
      language,
      calibration: { state: saved!.calibrationState, detail },
    };
  }

  /** DELETE: a site query goes (a bundle default of its id comes back); a bundle default is turned off. */
  async function remove(id: string): Promise<{ version: number; action: 'deleted' | 'restored-default' | 'disabled' }> {
    const model = loadedModel(deps.model());
    const site = await readSiteLayer(redis);
    const isDefault = model.manifest.queries.some((q) => q.id === id);
    if (site.queries.some((q) => q.id === id)) {
      const version = await changeQuery(redis, { delete: id });
      return { version, action: isDefault ? 'restored-default' : 'deleted' };
    }
    if (!isDefault) throw new HttpProblem(404, `no triage query "${id}"`);
    if (site.disabled.includes(id)) throw new HttpProblem(404, `the bundle default "${id}" is turned off already; POST /api/v1/queries/${id}/restore turns it on`);
    return { version: await setDefaultDisabled(redis, id, true), action: 'disabled' };
  }

  /** Back to the bundle's default: the site's copy removed and the default turned on again. */
  async function restore(id: string): Promise<{ version: number }> {
    const model = loadedModel(deps.model());
    if (!model.manifest.queries.some((q) => q.id === id)) throw new HttpProblem(404, `the model bundle has no default query "${id}"`);
    return { version: await restoreDefault(redis, id) };
  }

  /** Calibrates a site query from reports now (POST …/calibrate). */
  async function recalibrate(id: string): Promise<{ version: number | null; query: QueryView; calibration: { state: CalibrationState; detail: string } }> {
    const model = loadedModel(deps.model());
    const site = await readSiteLayer(redis);
    const q = site.queries.find((x) => x.id === id);
    const expected = site.stored[id];
    if (!q) {
      // Only a bundle default (turned on or off) is calibrated by the bundle; any other id is simply unknown.
      if (model.manifest.queries.some((d) => d.id === id)) {
        throw new HttpProblem(404, `"${id}" is a default of the model bundle, not a site query: bundle defaults carry the bundle's own calibration (PUT /api/v1/queries/${id} makes a site copy that can be calibrated)`);
      }
      throw new HttpProblem(404, `no triage query "${id}"`);
    }
    const calibrator = deps.calibrator();
    if (!calibrator) throw new HttpProblem(503, 'no calibrator is running (the model bundle is not loaded)');
    const outcome = await calibrator.calibrate(q);
    let version: number | null = null;
    // Written (with the attempt) only onto the query as it was read: an edit or delete made while it was calibrating
    // stands, and the attempt is dropped with it.
    const changedMeanwhile = () => new HttpProblem(409, `the triage query "${id}" was changed (edited, calibrated or deleted) while it was being calibrated; this calibration was not stored`);
    if (outcome.ok) {
      version = await changeQueryIf(redis, id, expected, { put: { ...q, calibration: outcome.calibration } }, outcome.attempt);
      if (version === null) throw changedMeanwhile();
    } else if (q.calibration && flagsNearlyEverything(q.calibration)) {
      version = await dropCalibration(redis, q, expected, outcome.attempt);
      if (version === null) throw changedMeanwhile();
    } else {
      await recordCalibrationAttempt(redis, id, expected, outcome.attempt);
    }
    const saved = (await find(id))!;
    return { version, query: saved, calibration: { state: saved.calibrationState, detail: outcome.ok ? `calibrated on ${outcome.calibration.studies} past studies (${outcome.calibration.positives} ${pseudoPositiveWords(q).one})` : outcome.reason } };
  }

  return { list, find, save, remove, restore, recalibrate, inUse };
}

export type QueryService = ReturnType<typeof createQueryService>;
