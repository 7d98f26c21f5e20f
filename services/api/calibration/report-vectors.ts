// The sentence vectors of stored final reports (shared/models/pseudo-labels.ts embedReport), cached in Redis per
// text-model version (reportKeys.sentenceVectors: one hash field per version), computed when a report arrives
// (warm, on the reported channel) and otherwise when a calibration first needs them. Only final (F) and corrected
// (C) reports are read; a preliminary report is no ground for a label.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { embedReport, encodeReportVectors, decodeReportVectors, type Embed, type ReportVectors } from '../../../shared/models/pseudo-labels';
import { reportKeys, type StoredReport } from '../../../shared/reports';

export interface ReportVectorCache {
  /** Report vectors by StudyInstanceUID; null for a study without a usable report. Missing ones are computed. */
  many(uids: string[]): Promise<(ReportVectors | null)[]>;
  /** Computes and stores one report's vectors if not cached yet (the reported-channel hook). */
  warm(uid: string): Promise<boolean>;
}

const USABLE: ReadonlySet<StoredReport['status']> = new Set(['F', 'C']);
/** Sentences per text-encoder call when filling the cache. */
const EMBED_BATCH = 256;

/** KEYS: report, sentence-vector hash. ARGV: sha1 of the report as read, field, value. */
const CACHE_IF_SAME = `
local report = redis.call('GET', KEYS[1])
if report and redis.sha1hex(report) == ARGV[1] then return redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end
return false
`;

const sha1 = (text: string): string => createHash('sha1').update(text, 'utf8').digest('hex');

/** A stored report, or null when it cannot be read (the study then has no usable report). */
function parseReport(raw: string): StoredReport | null {
  try {
    const r = JSON.parse(raw) as StoredReport;
    return r && typeof r.text === 'string' ? r : null;
  } catch {
    return null;
  }
}

function decodeCached(raw: string): ReportVectors | null {
  try {
    const r = decodeReportVectors(raw);
    return r.vectors.every((v) => v.length === r.vectors[0].length && v.length > 0) ? r : null;
  } catch {
    return null;
  }
}

export function createReportVectorCache(redis: Redis, textModel: string, embed: Embed): ReportVectorCache {
  async function compute(uids: string[]): Promise<(ReportVectors | null)[]> {
    if (uids.length === 0) return [];
    const raw = await redis.mget(uids.map((u) => reportKeys.report(u)));
    const reports = raw.map((r) => (r ? parseReport(r) : null));
    // All sentences of all reports through the encoder in a few large batches, then split back per report.
    const texts: string[] = [];
    const split = await Promise.all(reports.map((r) => (r && USABLE.has(r.status) ? embedReport(r.text, async (t) => {
      texts.push(...t);
      return t.map(() => new Float32Array(0));
    }) : null)));
    const vectors: Float32Array[] = [];
    for (let i = 0; i < texts.length; i += EMBED_BATCH) vectors.push(...(await embed(texts.slice(i, i + EMBED_BATCH))));
    let at = 0;
    const out = split.map((r) => {
      if (!r) return null;
      const v = vectors.slice(at, at + r.sentences.length);
      at += r.sentences.length;
      return { sentences: r.sentences, vectors: v };
    });
    // Cached only if the report is still the one read: a corrected report stored while these were embedded (seconds
    // on a large site) deletes the cache, and this older reading must not be written back over it.
    const write = redis.pipeline();
    out.forEach((r, i) => {
      if (r) write.eval(CACHE_IF_SAME, 2, reportKeys.report(uids[i]), reportKeys.sentenceVectors(uids[i]), sha1(raw[i]!), textModel, encodeReportVectors(r));
    });
    await write.exec();
    return out;
  }

  return {
    async many(uids) {
      const read = redis.pipeline();
      for (const u of uids) read.hget(reportKeys.sentenceVectors(u), textModel);
      const rows = (await read.exec()) ?? [];
      // A cached entry that cannot be decoded is computed again (it made every calibration fail).
      const out: (ReportVectors | null)[] = rows.map(([err, v]) => (err || typeof v !== 'string' ? null : decodeCached(v)));
      const missing = uids.filter((_, i) => out[i] === null);
      const computed = await compute(missing);
      let j = 0;
      return out.map((r) => r ?? computed[j++]);
    },
    async warm(uid) {
      if ((await redis.hexists(reportKeys.sentenceVectors(uid), textModel)) === 1) return false;
      return (await compute([uid]))[0] !== null;
    },
  };
}
