// The refused-instance record on a real private Redis: counts per (series, code, status), a resent instance
// counted once, a cap on entries, on remembered instances and on studies with a record, expiry, and instances stored
// after all left out.
import { connectRedis } from './redis';
import { startPrivateRedis, type PrivateRedis } from './private-redis';
import { readRefusals, recordRefusal, REFUSED_ENTRIES_CAP, REFUSED_INSTANCES_CAP, REFUSED_STUDIES_CAP, REFUSED_TTL_S } from './refusals';
import { keys } from './studies';

let server: PrivateRedis;
let redis: ReturnType<typeof connectRedis>;
let n = 0;
/** A fresh study UID per test. */
const study = () => `1.2.826.0.1.7.${++n}`;

beforeAll(async () => {
  server = await startPrivateRedis({ stdio: 'ignore' });
  redis = connectRedis(server.url, 'worker');
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

describe('recordRefusal / readRefusals', () => {
  it('counts instances per series, code and status; a resent instance once', async () => {
    const uid = study();
    const t2 = `${uid}.2`;
    const flair = `${uid}.3`;
    for (let i = 1; i <= 3; i++) expect(await recordRefusal(redis, { StudyInstanceUID: uid, SeriesInstanceUID: t2, SOPInstanceUID: `${t2}.${i}`, refusal: 'invalid-image', status: 0xa900 })).toBe(1);
    // The PACS retries the same three: not counted again.
    for (let i = 1; i <= 3; i++) expect(await recordRefusal(redis, { StudyInstanceUID: uid, SeriesInstanceUID: t2, SOPInstanceUID: `${t2}.${i}`, refusal: 'invalid-image', status: 0xa900 })).toBe(0);
    await recordRefusal(redis, { StudyInstanceUID: uid, SeriesInstanceUID: flair, SOPInstanceUID: `${flair}.1`, refusal: 'malformed-dataset', status: 0xc000 });
    // No usable SOP Instance UID: counted each time it comes.
    await recordRefusal(redis, { StudyInstanceUID: uid, SeriesInstanceUID: flair, SOPInstanceUID: 'garbage', refusal: 'malformed-dataset', status: 0xc000 });
    await recordRefusal(redis, { StudyInstanceUID: uid, SeriesInstanceUID: flair, refusal: 'malformed-dataset', status: 0xc000 });
    expect(await readRefusals(redis, uid)).toEqual([
      { SeriesInstanceUID: t2, refusal: 'invalid-image', status: 'A900', images: 3 },
      { SeriesInstanceUID: flair, refusal: 'malformed-dataset', status: 'C000', images: 3 },
    ]);
    expect(await redis.hlen(keys.studyRefusedInstances(uid))).toBe(4);
  });

  it('reads back every code the listener records, 0122 sop-class-not-on-context among them', async () => {
    const uid = study();
    await recordRefusal(redis, { StudyInstanceUID: uid, SeriesInstanceUID: `${uid}.4`, SOPInstanceUID: `${uid}.4.1`, refusal: 'sop-class-not-on-context', status: 0x0122 });
    expect(await readRefusals(redis, uid)).toEqual([{ SeriesInstanceUID: `${uid}.4`, refusal: 'sop-class-not-on-context', status: '0122', images: 1 }]);
  });

  it('nothing refused: an empty list', async () => {
    expect(await readRefusals(redis, study())).toEqual([]);
  });

  it('refuses to record without a study and series UID', async () => {
    await expect(recordRefusal(redis, { StudyInstanceUID: 'not a uid', SeriesInstanceUID: '1.2', refusal: 'invalid-image', status: 0xa900 })).rejects.toThrow(/study and series UID/);
    await expect(recordRefusal(redis, { StudyInstanceUID: '1.2', SeriesInstanceUID: '', refusal: 'invalid-image', status: 0xa900 })).rejects.toThrow(/study and series UID/);
  });

  it('an instance stored after all (a resend that passed) is not reported as refused', async () => {
    const uid = study();
    const s = `${uid}.2`;
    for (let i = 1; i <= 4; i++) await recordRefusal(redis, { StudyInstanceUID: uid, SeriesInstanceUID: s, SOPInstanceUID: `${s}.${i}`, refusal: 'invalid-image', status: 0xa900 });
    await redis.hset(keys.studyInstances(uid), `${s}.1`, `store/${uid}/${s}/${s}.1.dcm`, `${s}.2`, `store/${uid}/${s}/${s}.2.dcm`);
    expect(await readRefusals(redis, uid)).toEqual([{ SeriesInstanceUID: s, refusal: 'invalid-image', status: 'A900', images: 2 }]);
    await redis.hset(keys.studyInstances(uid), `${s}.3`, 'x', `${s}.4`, 'y');
    expect(await readRefusals(redis, uid)).toEqual([]);
  });

  it('is bounded: at most REFUSED_ENTRIES_CAP entries, REFUSED_INSTANCES_CAP instances remembered, and it expires', async () => {
    const uid = study();
    for (let i = 1; i <= REFUSED_ENTRIES_CAP; i++) {
      expect(await recordRefusal(redis, { StudyInstanceUID: uid, SeriesInstanceUID: `${uid}.${i}`, refusal: 'dataset-mismatch', status: 0xa900 })).toBe(1);
    }
    // A new entry past the cap is not recorded; an existing one still counts.
    expect(await recordRefusal(redis, { StudyInstanceUID: uid, SeriesInstanceUID: `${uid}.999`, refusal: 'dataset-mismatch', status: 0xa900 })).toBe(-1);
    expect(await recordRefusal(redis, { StudyInstanceUID: uid, SeriesInstanceUID: `${uid}.1`, refusal: 'invalid-image', status: 0xa900 })).toBe(-1);
    expect(await recordRefusal(redis, { StudyInstanceUID: uid, SeriesInstanceUID: `${uid}.1`, refusal: 'dataset-mismatch', status: 0xa900 })).toBe(1);
    const read = await readRefusals(redis, uid);
    expect(read).toHaveLength(REFUSED_ENTRIES_CAP);
    expect(read.find((r) => r.SeriesInstanceUID === `${uid}.1`)?.images).toBe(2);
    expect(read.some((r) => r.SeriesInstanceUID === `${uid}.999`)).toBe(false);
    const ttl = await redis.ttl(keys.studyRefused(uid));
    expect(ttl).toBeGreaterThan(REFUSED_TTL_S - 60);
    expect(ttl).toBeLessThanOrEqual(REFUSED_TTL_S);

    // The remembered instances stop at their cap; the counts go on.
    const big = study();
    const s = `${big}.2`;
    const fill = redis.pipeline();
    for (let i = 0; i < REFUSED_INSTANCES_CAP; i++) fill.hset(keys.studyRefusedInstances(big), `${s}.${i}`, `${s}|invalid-image|A900`);
    fill.hset(keys.studyRefused(big), `${s}|invalid-image|A900`, REFUSED_INSTANCES_CAP);
    await fill.exec();
    expect(await recordRefusal(redis, { StudyInstanceUID: big, SeriesInstanceUID: s, SOPInstanceUID: `${s}.x`, refusal: 'invalid-image', status: 0xa900 })).toBe(1);
    expect(await redis.hlen(keys.studyRefusedInstances(big))).toBe(REFUSED_INSTANCES_CAP);
    expect(await readRefusals(redis, big)).toEqual([{ SeriesInstanceUID: s, refusal: 'invalid-image', status: 'A900', images: REFUSED_INSTANCES_CAP + 1 }]);
  });

  it('at most REFUSED_STUDIES_CAP studies hold a record: refusals under ever new Study UIDs stop adding keys', async () => {
    await redis.del(keys.refusedStudies());
    const kept = study();
    const rec = (uid: string) => recordRefusal(redis, { StudyInstanceUID: uid, SeriesInstanceUID: `${uid}.2`, SOPInstanceUID: `${uid}.2.${++n}`, refusal: 'invalid-image', status: 0xa900 });
    expect(await rec(kept)).toBe(1);
    const index = await redis.zscore(keys.refusedStudies(), kept);
    expect(Number(index) - Date.now() / 1000).toBeGreaterThan(REFUSED_TTL_S - 60);
    // Fill the index to the cap with records that expire in a day (as if written by refusals under fresh UIDs).
    const later = Math.floor(Date.now() / 1000) + 86_400;
    const fill = redis.pipeline();
    for (let i = 1; i < REFUSED_STUDIES_CAP; i++) fill.zadd(keys.refusedStudies(), later, `9.9.${i}`);
    await fill.exec();
    const keysBefore = await redis.dbsize();
    const fresh = study();
    expect(await rec(fresh)).toBe(-1);
    expect(await redis.dbsize()).toBe(keysBefore);
    expect(await readRefusals(redis, fresh)).toEqual([]);
    // A study that has its record still counts.
    expect(await rec(kept)).toBe(1);
    expect((await readRefusals(redis, kept))[0].images).toBe(2);
    // Records past their expiry leave the index at the next new study, which is then recorded.
    await redis.zadd(keys.refusedStudies(), 1, '9.9.1', 1, '9.9.2');
    expect(await rec(fresh)).toBe(1);
    expect(await redis.zscore(keys.refusedStudies(), '9.9.1')).toBeNull();
    expect(await redis.zcard(keys.refusedStudies())).toBe(REFUSED_STUDIES_CAP - 1);
    expect(await redis.ttl(keys.refusedStudies())).toBeGreaterThan(REFUSED_TTL_S - 60);
    await redis.del(keys.refusedStudies());
  });

  it('ignores fields it did not write (a record from another version is not trusted)', async () => {
    const uid = study();
    await redis.hset(keys.studyRefused(uid), 'not-a-uid|invalid-image|A900', 3, `${uid}.2|unknown-code|A900`, 1, `${uid}.3|invalid-image|a9`, 2, `${uid}.4|invalid-image|A900`, 5);
    expect(await readRefusals(redis, uid)).toEqual([{ SeriesInstanceUID: `${uid}.4`, refusal: 'invalid-image', status: 'A900', images: 5 }]);
  });
});
